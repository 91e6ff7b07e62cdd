# Two commands on a fresh machine:
#   make demo   set up (venv + install) and run the whole chain on the offline digits demo
#   make test   set up and run the whole test suite (what CI runs)
# The papers' grid (configs/paper.yaml), for a GPU machine or a SLURM cluster:
#   make paper         run it locally on $(CORES) cores
#   make paper-slurm   submit it as SLURM jobs (slurm/config.yaml; export SLURM_PARTITION etc. first)
# SNAKEMAKE_ARGS is appended to either, e.g. `make paper-slurm SNAKEMAKE_ARGS=-n` lists the jobs without running.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= $(shell nproc 2>/dev/null || echo 2)
SNAKEMAKE_ARGS ?=
# The target comes before --configfile: that option takes every following word as a file, so
# `snakemake --configfile configs/paper.yaml all_tables` reads all_tables as a second config file.
PAPER := all_tables --configfile configs/paper.yaml
# The demo runs in its own working directory (params.yaml linked in), so it never rewrites the committed
# demo record under results/ (DVC's: dvc.lock's metrics, read by `dvc metrics show/diff` in a fresh clone)
# and the checkout stays clean.
DEMO_DIR ?= demo
DEMO_SNAKEMAKE = mkdir -p $(DEMO_DIR) && ln -sfn $(CURDIR)/params.yaml $(DEMO_DIR)/params.yaml && \
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --directory $(DEMO_DIR) --cores $(CORES)

.PHONY: setup demo test lint ruff report clean-results paper paper-slurm

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(DEMO_SNAKEMAKE) all_tables
	@echo "tables: $(DEMO_DIR)/results/tables/index.md   figures: $(DEMO_DIR)/results/figures/   runs: $(BIN)/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO_DIR))/mlflow.db"

paper: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake $(PAPER) --cores $(CORES) $(SNAKEMAKE_ARGS)

paper-slurm: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake $(PAPER) --profile slurm $(SNAKEMAKE_ARGS)

lint: ruff
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

ruff: setup
	$(BIN)/ruff check .

# Not `lint`: the suite runs `snakemake --lint` itself (tests/workflow/test_snakemake.py), so CI would lint twice.
# One pytest-xdist worker per core (one torch thread each, tests/conftest.py); a test file stays on one worker,
# so its module fixtures (the Snakemake run, the DVC repro) are made once.
TEST_WORKERS ?= $(CORES)
test: ruff
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

report: setup
	$(DEMO_SNAKEMAKE) all_tables --report report.html

clean-results:
	rm -rf results logs .snakemake mlflow.db mlflow.db.lock mlartifacts $(DEMO_DIR)
