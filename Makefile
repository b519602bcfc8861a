# The two quick-start commands: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test examples lint bench bench-quick fuzz clean

serve: $(VENV)/.installed examples  ## serve the bundled proxy.ini on port 8069
	$(BIN)/flexilib serve

test: $(VENV)/.installed examples  ## unit tests (tests/unit), then real server processes (tests/e2e)
	$(BIN)/python -m pytest -q

examples:  ## build the example native libraries into lib/
	$(MAKE) -s -C examples

lint: $(VENV)/.installed  ## ruff, and the architecture's import contracts (pyproject.toml)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

# Each target runs FUZZ_SECONDS (CI: about a minute each). New inputs go to a scratch
# folder; fuzz/corpus/<target>/ is the small seed corpus kept in the repository.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = protocol config

fuzz: $(VENV)/.installed  ## atheris fuzz targets (fuzz/), FUZZ_SECONDS each; a crash fails
	$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install -q -e '.[fuzz]'
	@for target in $(FUZZ_TARGETS); do \
		scratch=$$(mktemp -d); \
		echo "fuzz: $$target for $(FUZZ_SECONDS)s"; \
		if $(BIN)/python fuzz/fuzz_$$target.py $$scratch fuzz/corpus/$$target \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=fuzz/crash- >$$scratch.log 2>&1; then \
			grep -E "^stat::number_of_executed_units" $$scratch.log; \
			rm -rf $$scratch $$scratch.log; \
		else \
			tail -40 $$scratch.log; rm -rf $$scratch $$scratch.log; \
			echo "fuzz: $$target failed (the input is in fuzz/crash-*)"; exit 1; \
		fi; \
	done

bench: $(VENV)/.installed examples  ## full benchmark suite -> bench/RESULTS.md
	$(BIN)/python bench/run.py --full

bench-quick: $(VENV)/.installed examples
	$(BIN)/python bench/run.py --quick

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

clean:
	$(MAKE) -s -C examples clean
	rm -rf $(VENV) build src/*.egg-info
