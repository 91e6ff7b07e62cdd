# Two commands on a fresh machine:
#   make demo   set up (venv + install) and run the whole chain on the offline digits demo
#   make test   set up and run the whole test suite (what CI runs)

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup demo test lint report clean-results

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) all_tables
	@echo "tables: results/tables/index.md   figures: results/figures/   runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db"

lint: setup
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

test: setup lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

report: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --cores $(CORES) all_tables --report report.html

clean-results:
	rm -rf results logs .snakemake mlflow.db mlflow.db.lock mlartifacts
