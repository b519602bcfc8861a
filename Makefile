# The two quick-start commands: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test examples lint docs bench bench-quick clean

serve: $(VENV)/.installed examples  ## serve the bundled proxy.ini on port 8069
	$(BIN)/flexilib serve

test: $(VENV)/.installed examples  ## unit tests (tests/unit), then real server processes (tests/e2e)
	$(BIN)/python -m pytest -q

examples:  ## build the example native libraries into lib/
	$(MAKE) -s -C examples

lint: $(VENV)/.installed  ## ruff, and the architecture's import contracts (pyproject.toml)
	$(BIN)/ruff check src tests bench docs/hooks.py
	$(BIN)/ruff format --check src tests bench docs/hooks.py
	$(BIN)/lint-imports

docs: $(VENV)/.installed  ## the user's guide (docs/, mkdocs.yml) -> site/; a broken link fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(VENV)/.installed examples  ## full benchmark suite -> bench/RESULTS.md
	$(BIN)/python bench/run.py --full

bench-quick: $(VENV)/.installed examples
	$(BIN)/python bench/run.py --quick

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,docs]'
	touch $@

clean:
	$(MAKE) -s -C examples clean
	rm -rf $(VENV) build site src/*.egg-info
