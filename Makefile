# quant_pipelines — the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/dagster_home
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install demo test lint format dev bench bench-peers browser-deps mongo-start mongo-stop mongo-status clean

install: $(STAMP)

# torch is installed first, pinned to the CPU build that lies on this disk, so that
# stable-baselines3 never makes pip fetch a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) "torch==2.13.0"
	$(PIP) -e ".[dev]"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check quant_pipelines quant_pipelines_tests
	$(BIN)/ruff format --check quant_pipelines quant_pipelines_tests

format: install
	$(BIN)/ruff format quant_pipelines quant_pipelines_tests
	$(BIN)/ruff check --fix quant_pipelines quant_pipelines_tests

browser-deps:
	test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

# Two workers, one test file each at a time (module fixtures are built once), the slow modules
# first (conftest.py); the suite took 19 minutes on the 2-core machine on 2026-12-02 (30 CPU-min).
PYTEST_ARGS ?= -n 2 --dist loadfile
test: lint browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: install
	$(BIN)/quant-pipelines demo

dev: install
	$(BIN)/quant-pipelines mongo start
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: install bench-peers
	$(BIN)/quant-pipelines bench

# Peers the benchmarks compare with, in their own venv (vectorbt pulls ipython and plotly),
# with the pandas and numpy of .venv. bench/portfolio.py runs vectorbt from here.
PEERS := .venv-peers
bench-peers: $(PEERS)/.installed
$(PEERS)/.installed: constraints.txt | $(STAMP)
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt vectorbt==1.2.0 \
		"pandas==$$($(BIN)/python -c 'import pandas; print(pandas.__version__)')" \
		"numpy==$$($(BIN)/python -c 'import numpy; print(numpy.__version__)')"
	touch $@

mongo-start: install
	$(BIN)/quant-pipelines mongo start
mongo-stop: install
	$(BIN)/quant-pipelines mongo stop
mongo-status: install
	$(BIN)/quant-pipelines mongo status

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .ruff_cache
