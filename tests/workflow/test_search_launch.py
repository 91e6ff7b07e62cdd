"""The search rule starts the data-parallel search under torchrun when its job asks for several GPUs (with
one GPU the other workflow tests see the plain `python -m pipeline search`), the direct ImageNet searches
with their own GPU count."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_plan import plan
from workflow_support import TINY_IMAGENET_METHODS, copy_repo, write_tiny_params

pytestmark = pytest.mark.slow


def test_search_jobs_launch_one_process_per_gpu_of_their_request(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    write_tiny_params(root, {"resources": {"search": {"gpu": 2}, "search_imagenet": {"gpu": 4}}})
    direct = TINY_IMAGENET_METHODS[0]
    # A retrained CIFAR-style cell (its search and retrain) and a direct ImageNet search.
    jobs = plan(root, "results/retrain/digits/darts_1st/seed0/metrics.json",
                f"results/search/imagenet/{direct}/seed0/summary.json")
    launches = {(job.rule, job.wildcards.get("dataset")): str(job.shell) for job in jobs}
    torchrun = "exec torchrun --standalone --nproc_per_node {} -m pipeline search "
    assert launches[("search", "digits")].startswith(torchrun.format(2))
    assert launches[("search", "imagenet")].startswith(torchrun.format(4))
    # Only the searches asked for several GPUs: retrain still runs as one process.
    assert launches[("retrain", "digits")].startswith("exec python -m pipeline retrain ")
