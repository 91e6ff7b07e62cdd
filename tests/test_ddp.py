"""Retraining under real `torchrun` with two gloo processes on the CPU: one set of files, global numbers,
and the params' batch size as the global batch."""

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
from pipeline.errors import ConfigError
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import save_genotype
from pipeline.train.distributed import per_process_batch

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


def torchrun_retrain(workspace: Path, params: str, out: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "pipeline", *retrain_argv(params, out)],
        cwd=workspace, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=240,
    )


def test_two_process_run_matches_the_single_process_bookkeeping(workspace: Path) -> None:
    assert main(retrain_argv("single.yaml", "single")) == 0
    # The same params file: batch_size 32 is the global batch, so each of the two processes takes 16.
    result = torchrun_retrain(workspace, "single.yaml", "ddp")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "global batch 32 = 2 process(es) x 16" in result.stdout + result.stderr
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


def test_a_global_batch_two_processes_cannot_split_is_refused_naming_the_key(workspace: Path) -> None:
    write_params(workspace / "odd.yaml", batch_size=33)
    result = torchrun_retrain(workspace, "odd.yaml", "odd")
    assert result.returncode != 0
    assert "retrain.batch_size = 33 is the global batch" in result.stdout + result.stderr
    assert not (workspace / "odd/metrics.json").exists()


def test_per_process_batch_divides_the_global_batch_by_the_world_size() -> None:
    # The papers' ImageNet batch 1024 on the 8 GPUs of configs/paper.yaml, and DARTS' 128 on them.
    assert per_process_batch(1024, 8, "transfer.batch_size") == 128
    assert per_process_batch(128, 8, "transfer.batch_size") == 16
    assert per_process_batch(96, 1, "retrain.batch_size") == 96
    with pytest.raises(ConfigError, match=r"transfer.batch_size = 100 .* 8 does not divide it"):
        per_process_batch(100, 8, "transfer.batch_size")
