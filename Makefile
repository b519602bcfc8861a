# The two quick-start commands: `make serve` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: serve test examples lint docs bench bench-quick dist fuzz clean

serve: $(VENV)/.installed examples  ## serve the bundled proxy.ini on port 8069
	$(BIN)/flexilib serve

test: $(VENV)/.installed examples  ## unit tests (tests/unit), then real server processes (tests/e2e)
	$(BIN)/python -m pytest -q

examples:  ## build the example native libraries into lib/ (Zig with the venv's ziglang)
	$(MAKE) -s -C examples ZIG_PYTHON=$(abspath $(BIN))/python

lint: $(VENV)/.installed  ## ruff, and the architecture's import contracts (pyproject.toml)
	$(BIN)/ruff check src tests bench docs/hooks.py
	$(BIN)/ruff format --check src tests bench docs/hooks.py
	$(BIN)/lint-imports

docs: $(VENV)/.installed  ## the user's guide (docs/, mkdocs.yml) -> site/; a broken link fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

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

# Release artifacts, byte-for-byte reproducible from a clean checkout: every timestamp
# is the last commit's (SOURCE_DATE_EPOCH), the build backend is pinned
# (deploy/release/build-constraints.txt), the C extension's debug info names paths
# relative to the checkout, and the sdist is re-packed with sorted names, fixed owners
# and modes, and no gzip timestamp (setuptools writes the build time into both).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct)
SDIST_TAR = --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner \
            --mode=go-w --format=pax --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime

dist: $(VENV)/.installed  ## sdist + wheel into dist/, reproducible, with dist/SHA256SUMS
	rm -rf dist build
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	PIP_CONSTRAINT=$(CURDIR)/deploy/release/build-constraints.txt \
	CFLAGS="-ffile-prefix-map=$(CURDIR)=." \
	$(BIN)/python -m build --sdist --wheel --outdir dist .
	set -e; for sdist in dist/*.tar.gz; do \
	    tree=$$(mktemp -d); tar -xzf $$sdist -C $$tree; \
	    tar -C $$tree $(SDIST_TAR) -cf - $$(basename $$sdist .tar.gz) | gzip -9n > $$sdist; \
	    rm -rf $$tree; \
	done
	cd dist && sha256sum *.tar.gz *.whl > SHA256SUMS

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,docs]'
	touch $@

clean:
	$(MAKE) -s -C examples clean
	rm -rf $(VENV) build dist site src/*.egg-info
