"""The transfer stage on the demo ImageFolder tree (its schedules: tests/test_schedule.py)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml
from faultlib import TIMING, assert_identical

from pipeline.checkpoint import CURRENT, PREVIOUS, load_checkpoint
from pipeline.cli import main
from pipeline.data import folder_dataset
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import save_genotype

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Params pointing data.imagenet_root at a demo tree written by `prepare --dataset imagenet_demo`."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets on a shared 2-core machine run faster without oversubscription
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["runtime"]["device"] = "cpu"  # like CI, also where a GPU is visible
    params["prepare"]["imagenet_demo"]["image_size"] = 16
    params["data"]["imagenet_root"] = str(tmp_path / "demo")
    params["transfer"].update(epochs=2, batch_size=16, layers=3, channels=8, image_size=16, max_steps_per_epoch=3,
                              lr_schedule="step", warmup_epochs=1)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    save_genotype(tmp_path / "genotype.json", dataclasses.replace(
        GENOTYPE_DARTS_V2, provenance={"method": "darts_2nd", "dataset": "digits", "seed": 1}))
    assert main(["prepare", "--params", "params.yaml", "--dataset", "imagenet_demo", "--out", "demo"]) == 0
    yield tmp_path
    torch.set_num_threads(threads)


def test_transfer_on_the_demo_tree_reports_top1_and_top5(workspace: Path) -> None:
    out = workspace / "results/transfer/imagenet/digits/darts_2nd/seed1"
    assert main(["transfer", "--params", "params.yaml", "--genotype", "genotype.json", "--seed", "1",
                 "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["top5_error"] <= metrics["top1_error"] <= 100
    assert metrics["params_m"] > 0 and metrics["mult_adds_m"] > 0
    assert metrics["dataset"] == "imagenet_demo" and metrics["searched_on"] == "digits"
    assert metrics["epochs"] == 2 and metrics["samples_seen"] == 2 * 3 * 16
    assert metrics["test_samples"] == len(list((workspace / "demo/val").rglob("*.png")))
    record = metrics["provenance"]
    assert (record["stage"], record["dataset"], record["method"], record["seed"]) == ("transfer", "digits",
                                                                                       "darts_2nd", 1)
    header, *rows = (out / "history.csv").read_text().splitlines()
    assert "test_top5" in header.split(",")
    lrs = [float(row.split(",")[1]) for row in rows]
    assert lrs == pytest.approx([0.1, 0.1 * 0.97])  # a one-epoch warm-up reaches the first rate at once


def test_transfer_resumes_from_its_first_epoch_checkpoint_bit_identically(workspace: Path) -> None:
    """What transfer saves passes the restricted loader and restores exactly: resumed from the first
    epoch's checkpoint, the run ends with the uninterrupted run's checkpoint and metrics."""
    runs = workspace / "results/transfer/imagenet/digits/darts_2nd"
    reference, out = runs / "seed1", runs / "seed1-resumed"

    def transfer(directory: Path) -> None:
        assert main(["transfer", "--params", "params.yaml", "--genotype", "genotype.json", "--seed", "1",
                     "--out", str(directory), "--no-progress"]) == 0

    transfer(reference)
    out.mkdir()
    shutil.copy2(reference / PREVIOUS, out / CURRENT)
    assert load_checkpoint(out)["state"]["epoch"] == 1
    transfer(out)
    assert_identical(load_checkpoint(out), load_checkpoint(reference), "checkpoint")
    metrics, expected = (json.loads((d / "metrics.json").read_text()) for d in (out, reference))
    volatile = {*TIMING, "provenance"}  # provenance records when each run finished
    assert {k: v for k, v in metrics.items() if k not in volatile} == \
        {k: v for k, v in expected.items() if k not in volatile}


def test_a_tree_without_the_demo_manifest_is_imagenet(tmp_path: Path) -> None:
    assert folder_dataset(tmp_path) == "imagenet"
    (tmp_path / "manifest.json").write_text(json.dumps({"dataset": "imagenet_demo"}))
    assert folder_dataset(tmp_path) == "imagenet_demo"
