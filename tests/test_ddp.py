"""Retraining under real `torchrun` with two gloo processes on the CPU: one set of files, global numbers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.data import load_splits
from pipeline.space.genotype import GENOTYPE_DARTS_V2, save_genotype

REPO = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).parent / "torchrun"


def write_params(path: Path, batch_size: int) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["runtime"]["device"] = "cpu"  # the bit-exact and bookkeeping checks are CPU claims
    params["prepare"]["test_fraction"] = 0.2  # 359 test images: an odd count two shards cannot split evenly
    params["retrain"].update(epochs=1, batch_size=batch_size, layers=3, channels=4, cutout=2,
                             max_steps_per_epoch=0)
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    save_genotype(tmp_path / "genotype.json", dataclasses.replace(
        GENOTYPE_DARTS_V2, provenance={"method": "darts_1st", "dataset": "digits", "seed": 0}))
    params = write_params(tmp_path / "single.yaml", batch_size=32)
    assert main(["prepare", "--params", str(params), "--dataset", "digits", "--out", "results/data/digits"]) == 0
    yield tmp_path
    torch.set_num_threads(threads)


def retrain_argv(params: str, out: str) -> list[str]:
    return ["retrain", "--params", params, "--genotype", "genotype.json", "--dataset", "digits", "--seed", "0",
            "--out", out, "--no-progress"]


def test_two_process_run_matches_the_single_process_bookkeeping(workspace: Path) -> None:
    assert main(retrain_argv("single.yaml", "single")) == 0
    # Half the batch per process: both runs take the same global batches and the same number of steps.
    write_params(workspace / "ddp.yaml", batch_size=16)
    result = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "pipeline",
         *retrain_argv("ddp.yaml", "ddp")],
        cwd=workspace, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    single = json.loads((workspace / "single/metrics.json").read_text())
    ddp = json.loads((workspace / "ddp/metrics.json").read_text())
    # Only rank 0 writes: one set of files, no per-rank leftovers.
    assert sorted(p.name for p in (workspace / "ddp").iterdir()) == ["checkpoint.pt", "history.csv", "metrics.json"]
    assert (single["device_count"], ddp["device_count"]) == (1, 2)
    splits = load_splits(workspace / "results/data/digits/splits.npz")
    n_test = len(splits["test"])
    assert n_test % 2 == 1
    assert single["samples_seen"] == ddp["samples_seen"] == len(splits["train"]) // 32 * 32
    assert single["test_samples"] == ddp["test_samples"] == n_test
    # Each test image counted once: the accuracy is a whole number of correct images out of n_test.
    correct = ddp["test_acc"] * n_test / 100
    assert correct == pytest.approx(round(correct), abs=1e-6)
    assert 0 <= ddp["test_error"] <= 100
    assert len((workspace / "ddp/history.csv").read_text().splitlines()) == 2
    saved = load_checkpoint(workspace / "ddp")
    assert saved["config"]["world_size"] == 2 and len(saved["rng"]) == 2
