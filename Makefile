# cvm — the four commands a developer needs. Each sets up .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO_DIR ?= cvm-demo
DEV_STAMP := $(VENV)/.dev-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test lint bench bench-models clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev,spark]"
	touch $@

## demo: install cvm and run it on the real data bundled with the package
demo: $(STAMP)
	$(BIN)/cvm demo --dir $(DEMO_DIR)

## test: install cvm with test dependencies and run the whole test suite
test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q

## lint: ruff and mypy --strict
lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## bench: run the foundation benchmark; results land in bench/results/
bench: $(DEV_STAMP)
	$(BIN)/python bench/run_foundation.py

## bench-models: install the peers (lifetimes, pymc-marketing, clvkit) and compare the models
bench-models: $(DEV_STAMP)
	bash bench/peers/setup.sh
	$(BIN)/python bench/run_models.py --sizes 10000 100000 1000000

clean:
	rm -rf $(VENV) cvm-demo .pytest_cache .mypy_cache .ruff_cache
