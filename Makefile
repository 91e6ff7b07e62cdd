# Two commands on a fresh machine:
#   make demo   set up (venv + install) and run the whole chain on the offline digits demo
#   make test   set up and run the whole test suite (what CI runs)

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)
# The demo runs in its own working directory (params.yaml linked in), so it never rewrites the committed
# demo record under results/ (DVC's: dvc.lock's metrics, read by `dvc metrics show/diff` in a fresh clone)
# and the checkout stays clean.
DEMO_DIR ?= demo
DEMO_SNAKEMAKE = mkdir -p $(DEMO_DIR) && ln -sfn $(CURDIR)/params.yaml $(DEMO_DIR)/params.yaml && \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --directory $(DEMO_DIR) --cores $(CORES)

.PHONY: setup demo test lint report clean-results

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(DEMO_SNAKEMAKE) all_tables
	@echo "tables: $(DEMO_DIR)/results/tables/index.md   figures: $(DEMO_DIR)/results/figures/   runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO_DIR))/mlflow.db"

lint: setup
	$(BIN)/ruff check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

test: setup lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

report: setup
	$(DEMO_SNAKEMAKE) all_tables --report report.html

clean-results:
	rm -rf results logs .snakemake mlflow.db mlflow.db.lock mlartifacts $(DEMO_DIR)
