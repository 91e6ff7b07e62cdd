"""Shared by the method tests: the real `prepare` and `search` stage commands on a tiny digits search.

Each method is checked once through the command line users run (`pipeline.cli.main` with the same
arguments as `python -m pipeline ...`, in-process: the test machines have 2 cores shared by several jobs
and a fresh interpreter costs more than the search), with the shipped params.yaml shrunk to the smallest
supernet: 3 cells, 2 nodes, C=8, batch 4, 2 epochs of 2 steps.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from shipped_params import narrowed, write_yaml

from pipeline.cli import main

TINY_SEARCH: dict[str, Any] = {"epochs": 2, "batch_size": 4, "layers": 3, "channels": 8, "nodes": 2,
                               "max_steps_per_epoch": 2}


def tiny_params(directory: Path, methods: dict[str, dict[str, Any]], **search: Any) -> Path:
    """params.yaml with only `methods` in the grid and search, tracking off, a tiny search (search keys
    overridden by `search`); its path."""
    raw = narrowed(methods)
    raw["search"].update(TINY_SEARCH, **search)
    raw["search"]["analysis"].update(hessian_every=1, hessian_iterations=2)
    return write_yaml(directory / "params.yaml", raw)


def prepare_digits(directory: Path) -> Path:
    """`pipeline prepare` of digits into `directory`/data; that path."""
    params = tiny_params(directory, {"darts_1st": {"algorithm": "darts"}})
    out = directory / "data"
    assert main(["prepare", "--params", str(params), "--dataset", "digits", "--out", str(out)]) == 0
    return out


def search_via_cli(directory: Path, prepared: Path, methods: dict[str, dict[str, Any]],
                   method: str, **search: Any) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """`pipeline search` of `method` (one of `methods`) on prepared digits, with search keys overridden by
    `search`; (summary.json, history rows)."""
    params, out = tiny_params(directory, methods, **search), directory / "search" / method
    status = main(["search", "--params", str(params), "--dataset", "digits", "--method", method,
                   "--seed", "0", "--prepared", str(prepared), "--out", str(out), "--no-progress"])
    assert status == 0, f"search of {method} exited with {status}"
    with (out / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    return json.loads((out / "summary.json").read_text()), rows


def search_and_derive_in_fresh_processes(directory: Path, params: Path, prepared: Path, method: str) -> Path:
    """`python -m pipeline search` (one epoch) then `derive` of `method`, each a fresh interpreter in
    `directory` importing this checkout: what a Snakemake or DVC job runs, so a module listed under the
    params' `plugins:` is imported exactly as a job imports it. The search goes to `directory`/search; the
    genotype file's path is returned."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    search_dir, genotype_file = directory / "search", directory / "genotype.json"
    commands = [
        ["search", "--dataset", "digits", "--method", method, "--seed", "0", "--prepared", str(prepared),
         "--out", str(search_dir), "--no-progress"],
        ["derive", "--search-dir", str(search_dir), "--out", str(genotype_file)],
    ]
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "pipeline", *command, "--params", str(params)],
                              cwd=directory, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    return genotype_file
