"""Checkpoint files: checksums, rotation, and what happens when the settings or the inputs changed."""

import pytest
import torch

from pipeline.checkpoint import CURRENT, PREVIOUS, load_checkpoint, load_resumable, save_checkpoint
from pipeline.errors import CheckpointError

OLD_SPLITS = {"splits.npz": "a" * 64}
NEW_SPLITS = {"splits.npz": "b" * 64}


def _state(config: dict, value: float, inputs: dict | None = None) -> dict:
    return {"config": config, "inputs": OLD_SPLITS if inputs is None else inputs,
            "weights": torch.full((3,), value)}


def test_rotation_keeps_the_previous_checkpoint(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.1}, 1.0))
    save_checkpoint(tmp_path, _state({"lr": 0.1}, 2.0))
    assert torch.equal(load_checkpoint(tmp_path)["weights"], torch.full((3,), 2.0))
    (tmp_path / CURRENT).write_bytes((tmp_path / CURRENT).read_bytes()[:-7])
    assert torch.equal(load_checkpoint(tmp_path)["weights"], torch.full((3,), 1.0))


def test_changed_settings_are_refused_by_default(tmp_path):
    save_checkpoint(tmp_path, _state({"retrain": {"lr": 0.025}}, 1.0))
    with pytest.raises(CheckpointError, match=r"retrain\.lr: checkpoint 0.025 vs params 0.05"):
        load_resumable(tmp_path, {"retrain": {"lr": 0.05}}, OLD_SPLITS, restart_on_change=False)
    assert (tmp_path / CURRENT).exists()


def test_restart_on_change_sets_the_old_checkpoint_aside(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0))
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 2.0))
    assert load_resumable(tmp_path, {"lr": 0.05}, OLD_SPLITS, restart_on_change=True) is None
    assert not (tmp_path / CURRENT).exists() and not (tmp_path / PREVIOUS).exists()
    assert (tmp_path / "checkpoint.stale.pt").exists() and (tmp_path / "checkpoint.prev.stale.pt").exists()


def test_restart_on_change_resumes_when_nothing_changed(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 3.0))
    saved = load_resumable(tmp_path, {"lr": 0.025}, OLD_SPLITS, restart_on_change=True)
    assert torch.equal(saved["weights"], torch.full((3,), 3.0))


def test_changed_input_is_refused_by_hand_naming_the_input(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0))
    expected = r"input splits\.npz changed: checkpoint aaaaaaaaaaaa vs now bbbbbbbbbbbb"
    with pytest.raises(CheckpointError, match=expected):
        load_resumable(tmp_path, {"lr": 0.025}, NEW_SPLITS, restart_on_change=False)
    assert (tmp_path / CURRENT).exists()


def test_changed_input_restarts_with_restart_on_change(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0))
    assert load_resumable(tmp_path, {"lr": 0.025}, NEW_SPLITS, restart_on_change=True) is None
    assert (tmp_path / "checkpoint.stale.pt").exists() and not (tmp_path / CURRENT).exists()


def test_an_input_added_or_recorded_by_no_checkpoint_counts_as_changed(tmp_path):
    save_checkpoint(tmp_path, {"config": {}, "weights": torch.zeros(1)})  # written before inputs existed
    with pytest.raises(CheckpointError, match=r"input splits\.npz changed: checkpoint none vs now aaaa"):
        load_resumable(tmp_path, {}, OLD_SPLITS, restart_on_change=False)


@pytest.mark.parametrize("restart_on_change", [False, True])
def test_a_lone_previous_checkpoint_is_set_aside_not_resumed(tmp_path, restart_on_change):
    # What DVC leaves when it clears a non-persistent checkpoint.pt before a rerun: same key, still stale.
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0))
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 2.0))
    (tmp_path / CURRENT).unlink()
    assert load_checkpoint(tmp_path) is None
    assert load_resumable(tmp_path, {"lr": 0.025}, OLD_SPLITS, restart_on_change=restart_on_change) is None
    assert not (tmp_path / PREVIOUS).exists() and (tmp_path / "checkpoint.prev.stale.pt").exists()


def test_the_fallback_to_the_previous_checkpoint_passes_the_same_key_check(tmp_path):
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 1.0, OLD_SPLITS))
    save_checkpoint(tmp_path, _state({"lr": 0.025}, 2.0, NEW_SPLITS))
    (tmp_path / CURRENT).write_bytes((tmp_path / CURRENT).read_bytes()[:-7])  # damaged: falls back
    with pytest.raises(CheckpointError, match=r"input splits\.npz changed"):
        load_resumable(tmp_path, {"lr": 0.025}, NEW_SPLITS, restart_on_change=False)
