"""Checkpoint files: checksums, rotation, what happens when the settings or the inputs changed, and that
loading one never runs code (planted pickles are refused unexecuted; what the pipeline saves reads back exactly)."""

import hashlib
import io
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from faultlib import plant_checkpoint, runs_code_when_unpickled

from pipeline.checkpoint import (
    CURRENT,
    PICKLE_FORMAT_MAGIC,
    PREVIOUS,
    load_checkpoint,
    load_resumable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pipeline.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
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


@pytest.mark.parametrize("as_torch_save", [True, False], ids=["torch-save-archive", "bare-pickle"])
def test_planted_checkpoint_is_refused_and_its_code_never_runs(tmp_path, as_torch_save):
    marker = tmp_path / "pwned"
    pickled = plant_checkpoint(tmp_path / "run", marker, as_torch_save=as_torch_save)
    assert runs_code_when_unpickled(pickled, marker)  # the control: the full unpickler would run it
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(tmp_path / "run")
    assert "refused, it asks to import posix.system" in str(refused.value)
    assert "nothing in it was run" in str(refused.value)
    assert not marker.exists()


def test_checkpoint_of_the_pickle_format_is_refused_unread_saying_how_to_restart(tmp_path):
    """Format 1 files were whole pickles: even a harmless-looking one is not unpickled."""
    marker = tmp_path / "pwned"
    plant_checkpoint(tmp_path, marker)
    blob = (tmp_path / CURRENT).read_bytes()
    (tmp_path / CURRENT).write_bytes(PICKLE_FORMAT_MAGIC + blob.split(b"\n", 1)[1])
    with pytest.raises(CheckpointError) as refused:
        load_checkpoint(tmp_path)
    message = str(refused.value)
    assert "earlier version of the pipeline" in message and "not read" in message
    assert f"move {tmp_path / CURRENT} and {tmp_path / PREVIOUS} aside" in message
    assert "rerun the same command to start afresh" in message
    assert not marker.exists()


@pytest.mark.parametrize(("entry", "kind"), [(np.float64(0.5), "numpy.float64"), (np.zeros(2), "numpy.ndarray"),
                                             ({1, 2}, "builtins.set"), (Path("x"), "pathlib.PosixPath")])
def test_saving_a_value_the_restricted_loader_would_refuse_fails_naming_its_key(tmp_path, entry, kind):
    state = {"config": {"lr": 0.1}, "state": {"history": [{"loss": 1.0}, {"loss": entry}]}}
    with pytest.raises(CheckpointError, match=re.escape(f"checkpoint.state.history[1].loss is a {kind}")):
        save_checkpoint(tmp_path, state)
    assert not (tmp_path / CURRENT).exists()


def test_what_is_saved_reads_back_with_the_same_types_and_values(tmp_path):
    """Every plain type a checkpoint holds survives the restricted loader unchanged."""
    state = {"config": {"lr": 0.025, "betas": (0.5, 0.999), "name": "darts", "flag": True, "none": None},
             "weights": torch.arange(6, dtype=torch.float64).reshape(2, 3), "mask": torch.ones(3, dtype=torch.bool),
             "blob": b"\x00\xff", "rows": [{"epoch": 0, "acc": float("inf")}], 7: "int key"}
    save_checkpoint(tmp_path, state)
    loaded = load_checkpoint(tmp_path)
    assert loaded.keys() == state.keys()
    assert loaded["config"] == state["config"] and type(loaded["config"]["betas"]) is tuple
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["weights"].dtype == torch.float64
    assert torch.equal(loaded["mask"], state["mask"])
    assert (loaded["blob"], loaded["rows"], loaded[7]) == (b"\x00\xff", state["rows"], "int key")


def test_restored_rng_states_draw_what_the_saved_ones_would_have(tmp_path):
    """The oracle is each library's own generator: draws after restoring equal draws right after saving."""
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in numpy's legacy state, which must survive too
    save_checkpoint(tmp_path, {"config": {}, "rng": rng_state()})
    expected = (random.random(), np.random.normal(), np.random.randint(0, 2**31, 4).tolist(), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path)["rng"])
    drawn = (random.random(), np.random.normal(), np.random.randint(0, 2**31, 4).tolist(), torch.rand(3))
    assert drawn[:3] == expected[:3] and torch.equal(drawn[3], expected[3])


def test_checkpoint_holding_a_non_dict_is_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save([torch.zeros(1)], buffer)
    payload = buffer.getvalue()
    blob = b"PIPECKPT2\n" + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n" + payload
    (tmp_path / CURRENT).write_bytes(blob)
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint's dict"):
        load_checkpoint(tmp_path)


def test_the_package_reads_torch_files_only_with_the_restricted_loader():
    """ruff's S rules catch pickle, eval, exec and unsafe YAML; torch.load has no rule, so this looks."""
    calls = [(path, line) for path in sorted((REPO / "pipeline").rglob("*.py"))
             for line in path.read_text(encoding="utf-8").splitlines() if "torch.load(" in line]
    assert calls, "checkpoint.py reads checkpoints with torch.load"
    assert all("weights_only=True" in line for _, line in calls), calls
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
