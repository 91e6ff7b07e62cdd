"""The retrain stage end to end on digits: outputs, exact resume after SIGTERM, refused config changes,
non-finite losses, and the cosine schedule."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from faultlib import assert_identical
from torch.utils.data import TensorDataset

from pipeline.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.config import RuntimeConfig
from pipeline.errors import EXIT_PREEMPTED, NumericalError
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import save_genotype
from pipeline.train import DistContext, LrSchedule, TrainJob, TrainSettings, train

REPO = Path(__file__).resolve().parent.parent
# Big enough that a SIGTERM sent when the first checkpoint appears lands before the run ends.
RETRAIN = {"epochs": 3, "batch_size": 16, "layers": 3, "channels": 4, "cutout": 2, "max_steps_per_epoch": 6}


pytestmark = pytest.mark.usefixtures("one_thread")


def write_params(path: Path, **retrain: object) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"]["enabled"] = False
    params["runtime"]["device"] = "cpu"  # the bit-exact and bookkeeping checks are CPU claims
    params["retrain"].update(RETRAIN, **retrain)
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with params, a genotype and the prepared digits splits (prepare run via the CLI)."""
    root = tmp_path_factory.mktemp("retrain")
    params = write_params(root / "params.yaml")
    save_genotype(root / "genotype.json", dataclasses.replace(
        GENOTYPE_DARTS_V2, provenance={"method": "darts_1st", "dataset": "digits", "seed": 0}))
    assert main(["prepare", "--params", str(params), "--dataset", "digits", "--out",
                 str(root / "results/data/digits")]) == 0
    return root


def retrain_argv(root: Path, out: Path, params: Path | None = None) -> list[str]:
    return ["retrain", "--params", str(params or root / "params.yaml"), "--genotype", str(root / "genotype.json"),
            "--dataset", "digits", "--seed", "0", "--prepared", str(root / "results/data/digits"),
            "--out", str(out), "--no-progress"]


@pytest.fixture(scope="module")
def reference(workspace: Path) -> Path:
    """An uninterrupted run (in this process, through the CLI)."""
    out = workspace / "results/retrain/digits/darts_1st/seed0"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        torch.set_num_threads(1)
        assert main(retrain_argv(workspace, out)) == 0
    return out


def test_retrain_writes_history_and_sane_metrics(reference: Path) -> None:
    metrics = json.loads((reference / "metrics.json").read_text())
    assert 0 <= metrics["test_error"] <= 100
    assert metrics["test_acc"] == pytest.approx(100 - metrics["test_error"])
    assert metrics["params_m"] > 0 and metrics["mult_adds_m"] > 0
    assert metrics["epochs"] == 3 and metrics["device"] == "cpu" and metrics["device_count"] == 1
    assert metrics["samples_seen"] == 3 * 6 * 16
    assert metrics["test_samples"] == 450
    assert metrics["provenance"]["stage"] == "retrain"
    assert metrics["provenance"]["method"] == "darts_1st"  # taken from the genotype's provenance
    lines = (reference / "history.csv").read_text().splitlines()
    assert lines[0].split(",")[:7] == ["epoch", "lr", "drop_path_prob", "train_loss", "train_acc", "test_loss",
                                       "test_acc"]
    assert len(lines) == 4
    drop_paths = [float(line.split(",")[2]) for line in lines[1:]]
    assert drop_paths == pytest.approx([0.0, 0.2 / 3, 0.4 / 3])


def test_sigterm_mid_epoch_then_rerun_matches_an_uninterrupted_run_bit_for_bit(
        workspace: Path, reference: Path) -> None:
    out = workspace / "results/retrain/digits/darts_1st/seed0-resumed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "pipeline", *retrain_argv(workspace, out)], cwd=workspace,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not (out / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == EXIT_PREEMPTED, output
    stopped = load_checkpoint(out)["state"]
    assert stopped["epoch"] < 3 and stopped["step_in_epoch"] > 0, "the stop should land mid-epoch"
    assert not (out / "metrics.json").exists()

    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        assert main(retrain_argv(workspace, out)) == 0
    # The whole final checkpoint (weights, optimiser, per-rank RNG states, history), through the restricted
    # loader, bit for bit; only wall-clock fields may differ.
    assert_identical(load_checkpoint(out), load_checkpoint(reference), "checkpoint")


def test_checkpoint_written_under_other_settings_is_refused_naming_the_keys(
        workspace: Path, reference: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workspace / "changed"
    shutil.copytree(reference, out)
    params = write_params(workspace / "changed.yaml", lr=0.05, drop_path=0.3)
    assert main(retrain_argv(workspace, out, params)) == 2
    error = capsys.readouterr().err
    assert "retrain.lr: checkpoint 0.025 vs params 0.05" in error
    assert "retrain.drop_path" in error


def test_genotype_without_method_needs_the_method_option(workspace: Path, capsys) -> None:
    bare = workspace / "bare.json"
    save_genotype(bare, dataclasses.replace(GENOTYPE_DARTS_V2, provenance={}))
    argv = retrain_argv(workspace, workspace / "bare-out")
    argv[argv.index("--genotype") + 1] = str(bare)
    assert main(argv) == 2
    assert "pass --method NAME" in capsys.readouterr().err


class _Diverged(torch.nn.Module):
    """Produces NaN logits from the third batch on, like a run whose loss has blown up."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 3)
        self.calls = 0
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        self.calls += self.training
        logits = self.linear(x)
        return (logits * float("nan") if self.training and self.calls >= 3 else logits), None


def _nan_job(tmp_path: Path, allow: int) -> TrainJob:
    data = TensorDataset(torch.randn(32, 4), torch.randint(0, 3, (32,)))
    settings = TrainSettings(epochs=2, batch_size=8, schedule=LrSchedule("cosine", 0.1, 2), momentum=0.9,
                             weight_decay=0.0, grad_clip=5.0, auxiliary_weight=0.0)
    return TrainJob(kind="retrain", settings=settings, build_model=_Diverged, train_set=data, test_set=data,
                    seed=0, out_dir=tmp_path, config={}, inputs={}, runtime=RuntimeConfig(device="cpu"),
                    allow_nan_skip=allow, progress=False)


def test_non_finite_loss_names_epoch_and_step(tmp_path: Path) -> None:
    with pytest.raises(NumericalError, match=r"epoch 0, step 2 of retrain"):
        train(_nan_job(tmp_path, allow=0), DistContext(0, 1, torch.device("cpu")))


def test_allow_nan_skip_skips_bad_batches_and_counts_them(tmp_path: Path) -> None:
    result = train(_nan_job(tmp_path, allow=6), DistContext(0, 1, torch.device("cpu")))
    assert result.state.nan_skips == 6
    assert result.state.samples_seen == 2 * 8  # only the first two batches were trained on


def test_cosine_schedule_runs_from_lr_to_lr_min() -> None:
    schedule = LrSchedule("cosine", 0.1, epochs=4, lr_min=0.01)
    assert [schedule.at(e) for e in range(5)] == pytest.approx(
        [0.1, 0.01 + 0.09 * (1 + 2**-0.5) / 2, 0.055, 0.01 + 0.09 * (1 - 2**-0.5) / 2, 0.01])
