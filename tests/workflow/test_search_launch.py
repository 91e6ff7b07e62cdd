"""The search rule starts the data-parallel search under torchrun when its job asks for several GPUs (with
one GPU the other workflow tests see the plain `python -m pipeline search`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_plan import plan
from workflow_support import copy_repo, write_tiny_params

pytestmark = pytest.mark.slow


def test_search_jobs_with_two_gpus_launch_two_processes(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    write_tiny_params(root, {"resources": {"search": {"gpu": 2}}})
    # One retrained cell: its search and retrain (the smallest plan that holds both).
    jobs = plan(root, "results/retrain/digits/darts_1st/seed0/metrics.json")
    by_rule = {job.rule: job.shell for job in jobs}
    assert str(by_rule["search"]).startswith("exec torchrun --standalone --nproc_per_node 2 -m pipeline search ")
    # Only the search asked for two GPUs: retrain still runs as one process.
    assert str(by_rule["retrain"]).startswith("exec python -m pipeline retrain ")
