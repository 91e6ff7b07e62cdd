"""Checkpoint files: checksums, rotation, and what happens when the settings changed."""

import pytest
import torch

from pipeline.checkpoint import CURRENT, PREVIOUS, load_checkpoint, load_resumable, save_checkpoint
from pipeline.errors import CheckpointError


def _state(config: dict, value: float) -> dict:
    return {"config": config, "weights": torch.full((3,), value)}


def test_rotation_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.1}, 1.0))
    save_checkpoint(tmp_path, _state({"lr": 0.1}, 2.0))
    assert torch.equal(load_checkpoint(tmp_path)["weights"], torch.full((3,), 2.0))
    (tmp_path / CURRENT).write_bytes((tmp_path / CURRENT).read_bytes()[:-7])
    assert torch.equal(load_checkpoint(tmp_path)["weights"], torch.full((3,), 1.0))


def test_changed_settings_are_refused_by_default(tmp_path):
    save_checkpoint(tmp_path, _state({"retrain": {"lr": 0.025}}, 1.0))
    with pytest.raises(CheckpointError, match=r"retrain\.lr: checkpoint 0.025 vs params 0.05"):
        load_resumable(tmp_path, {"retrain": {"lr": 0.05}}, restart_on_change=False)
    assert (tmp_path / CURRENT).exists()


def test_restart_on_change_sets_the_old_checkpoint_aside(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0))
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 2.0))
    assert load_resumable(tmp_path, {"lr": 0.05}, restart_on_change=True) is None
    assert not (tmp_path / CURRENT).exists() and not (tmp_path / PREVIOUS).exists()
    assert (tmp_path / "checkpoint.stale.pt").exists() and (tmp_path / "checkpoint.prev.stale.pt").exists()


def test_restart_on_change_resumes_when_nothing_changed(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 3.0))
    saved = load_resumable(tmp_path, {"lr": 0.025}, restart_on_change=True)
    assert torch.equal(saved["weights"], torch.full((3,), 3.0))
