# Two entry points on a fresh machine with Python >= 3.10 and make:
#   make demo   creates .venv, installs mlmol (CPU PyTorch), trains and evaluates the double well
#   make test   the same install plus the test and docs extras, then the fast tests, smoke tests and the docs
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# PyTorch comes from PyTorch's own index: its CPU wheels by default (PyPI's "torch" is the multi-GB
# CUDA build). For a GPU: make demo TORCH_INDEX=https://download.pytorch.org/whl/cu126 (see README).
TORCH ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP := $(BIN)/python -m pip install --progress-bar on
DEMO_RUN ?= runs/demo
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-fast test-slow smoke bench clean install install-test docs

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	@echo "installing PyTorch ($(TORCH) from $(TORCH_INDEX)), then mlmol: a few minutes on a fresh machine"
	$(PIP) --index-url "$(TORCH_INDEX)" "$(TORCH)"
	$(PIP) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) -e ".[test,docs]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	rm -rf $(DEMO_RUN)
	$(BIN)/mlmol train double-well --out $(DEMO_RUN) --seed 0
	$(BIN)/mlmol sample $(DEMO_RUN) --n 100000 --out $(DEMO_RUN)/samples.npz
	$(BIN)/mlmol evaluate $(DEMO_RUN) --samples $(DEMO_RUN)/samples.npz
	$(BIN)/mlmol report $(DEMO_RUN)
	@echo "report: $(DEMO_RUN)/report.html"

# Fast suite, then a few slow smoke tests. pytest's exit 5 (nothing collected) fails too.
test: install-test
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m "slow and smoke" -q
	$(BIN)/mkdocs build --strict --quiet

# The documentation (MkDocs Material, the API from the docstrings) into site/; results tables and
# the command-line reference are checked against their sources by the tests.
docs: install-test
	$(BIN)/mkdocs build --strict

test-slow: install-test
	$(BIN)/python -m pytest -m slow -q

bench: install
	$(BIN)/python benchmarks/flows.py

clean:
	rm -rf $(VENV) runs .pytest_cache site
