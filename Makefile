# Two entry points on a fresh machine with Python >= 3.10 and make:
#   make demo   creates .venv, installs mlmol (CPU PyTorch), trains and evaluates the double well
#   make test   creates .venv, installs mlmol with test extras, runs the fast tests and slow smoke tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of PyTorch; for a GPU see README ("GPU install").
TORCH ?= torch==2.13.0
DEMO_RUN ?= runs/demo
export OMP_NUM_THREADS ?= 1

.PHONY: demo test test-fast test-slow smoke bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf $(DEMO_RUN)
	$(BIN)/mlmol train double-well --out $(DEMO_RUN) --seed 0
	$(BIN)/mlmol sample $(DEMO_RUN) --n 100000 --out $(DEMO_RUN)/samples.npz
	$(BIN)/mlmol evaluate $(DEMO_RUN) --samples $(DEMO_RUN)/samples.npz
	$(BIN)/mlmol report $(DEMO_RUN)
	@echo "report: $(DEMO_RUN)/report.html"

# Fast suite, then a few slow smoke tests. pytest's exit 5 (nothing collected) fails too.
test: install
	$(BIN)/python -m pytest -m "not slow" -q
	$(BIN)/python -m pytest -m "slow and smoke" -q

test-slow: install
	$(BIN)/python -m pytest -m slow -q

bench: install
	$(BIN)/python benchmarks/flows.py

clean:
	rm -rf $(VENV) runs .pytest_cache
