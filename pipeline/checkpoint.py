"""Checksummed, rotating checkpoints and the signals that ask for one.

A checkpoint file is `MAGIC + sha256(payload) + payload` where payload is a `torch.save` blob. Saving
writes atomically and keeps the previous checkpoint as `checkpoint.prev.pt`, so a write that dies halfway
(or a file later truncated) costs at most one epoch: loading verifies the checksum and falls back to the
previous file with a warning. Each checkpoint records its resume key: the params slice it was trained
with (`config`) and the fingerprints of the files it read (`inputs`, see pipeline/inputs.py). Resuming
with a different key is refused naming the keys or inputs that differ, instead of silently mixing
settings or data. The previous checkpoint is only a fallback for a damaged `checkpoint.pt`: when
`checkpoint.pt` is gone (deleted to start afresh, or removed by a workflow engine before a rerun), the
previous one is set aside, never resumed, and whatever is loaded passes the same key check.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import random
import re
import signal
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.atomic import atomic_write_bytes
from pipeline.errors import CheckpointError

log = logging.getLogger(__name__)

# Checkpoints travel (shared cluster directories, DVC remotes, colleagues), and a checksum proves nothing
# about who wrote a file. So a checkpoint holds only tensors and plain containers, numbers and strings, and
# is read with PyTorch's restricted unpickler (`weights_only=True`), which builds exactly those and refuses
# any other class or function by name: loading one can never run code. Saving checks the same contract, so
# a state the loader would refuse fails at once, naming its key, not at the resume weeks later.
MAGIC = b"PIPECKPT2\n"
# Format 1 (before the restricted loader) pickled numpy RNG states, which only the full unpickler reads;
# such files are recognised by their header and refused unread.
PICKLE_FORMAT_MAGIC = b"PIPECKPT1\n"
CURRENT = "checkpoint.pt"
PREVIOUS = "checkpoint.prev.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    """Write `state` as the newest checkpoint, keeping the one before it."""
    directory = Path(directory)
    require_plain(state, "checkpoint")
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    blob = MAGIC + hashlib.sha256(payload).hexdigest().encode("ascii") + b"\n" + payload
    current = directory / CURRENT
    tmp_link = directory / f".{PREVIOUS}.link"
    if current.exists():
        # Hard-link first so the previous checkpoint survives even if the new write fails midway.
        try:
            tmp_link.unlink(missing_ok=True)
            os.link(current, tmp_link)
            os.replace(tmp_link, directory / PREVIOUS)
        except OSError as exc:  # a read-only or full filesystem: say so instead of a traceback
            raise CheckpointError(f"cannot write a checkpoint in {directory}: {exc.strerror or exc}; "
                                  f"the previous checkpoint {current} is kept") from exc
    atomic_write_bytes(current, blob)
    return current


_PLAIN_SCALARS = (str, int, float, bool, bytes, type(None))


def require_plain(value: Any, where: str) -> None:
    """Raise naming the first entry of `value` that the restricted loader would refuse to read back.

    Exact types, not `isinstance`: numpy scalars subclass float but pickle as numpy objects.
    """
    if type(value) in (dict, OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise CheckpointError(f"{where}: key {key!r} is a {type(key).__name__}; a checkpoint keys "
                                      f"its entries by str or int")
            require_plain(item, f"{where}.{key}")
    elif type(value) in (list, tuple):
        for index, item in enumerate(value):
            require_plain(item, f"{where}[{index}]")
    elif not (type(value) in _PLAIN_SCALARS or isinstance(value, torch.Tensor)):
        raise CheckpointError(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only tensors, "
            f"dicts, lists, tuples, str, int, float, bool, bytes and None (convert it before saving)"
        )


def _read(path: Path) -> dict[str, Any]:
    blob = path.read_bytes()
    if blob.startswith(PICKLE_FORMAT_MAGIC):
        raise CheckpointError(
            f"{path}: written by an earlier version of the pipeline as a full pickle, which can run code when "
            f"loaded, so it was not read. This version cannot resume it: move {path.parent / CURRENT} and "
            f"{path.parent / PREVIOUS} aside (or delete them) and rerun the same command to start afresh"
        )
    if not blob.startswith(MAGIC):
        raise CheckpointError(f"{path}: not a pipeline checkpoint (bad header)")
    header_end = blob.index(b"\n", len(MAGIC))
    digest = blob[len(MAGIC) : header_end].decode("ascii")
    payload = blob[header_end + 1 :]
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"{path}: checksum mismatch (truncated or corrupted)")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused, {_refusal(exc)}. A pipeline checkpoint holds only tensors "
                              f"and plain data, so this file was made by something else; nothing in it was "
                              f"run. Delete it, or restore the run's checkpoint from a copy you trust") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint's dict of entries")
    return state


def _refusal(exc: pickle.UnpicklingError) -> str:
    """What the restricted loader refused, in a few words; its own message is not shown, because it
    suggests loading the file with `weights_only=False`, which is exactly what must not happen."""
    found = re.search(r"GLOBAL (\S+?)\s", str(exc))
    if found:
        return f"it asks to import {found.group(1)}"
    found = re.search(r"WeightsUnpickler error: \s*(.+)", str(exc))
    detail = f" ({found.group(1).strip()})" if found else ""
    return f"its pickle uses what the restricted loader does not allow{detail}"


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The newest intact checkpoint in `directory`, or None when there is none."""
    directory = Path(directory)
    if not (directory / CURRENT).exists():
        return None  # a lone previous checkpoint is an orphan (see the module docstring), not a fallback
    candidates = [p for p in (directory / CURRENT, directory / PREVIOUS) if p.exists()]
    problems = []
    for path in candidates:
        try:
            state = _read(path)
        except (CheckpointError, ValueError, EOFError, RuntimeError) as exc:
            problems.append(str(exc))
            log.warning("ignoring unusable checkpoint: %s", exc)
            continue
        if problems:
            log.warning("resuming from the previous checkpoint %s", path)
        return state
    if problems:
        # Starting afresh would overwrite the evidence (and maybe weeks of training): the user decides.
        raise CheckpointError(f"no usable checkpoint in {directory}: " + "; ".join(problems)
                              + ". Restore one from a backup, or delete them to start the run afresh.")
    return None


def resume_key_differences(saved: dict[str, Any], config: dict[str, Any], inputs: dict[str, str]) -> list[str]:
    """What differs between a checkpoint's resume key and the current run's, one phrase per key or input.

    A checkpoint written before inputs were recorded has none, so each input counts as changed.
    """
    settings = [f"{key}: checkpoint {a!r} vs params {b!r}" for key, a, b in _diff(saved["config"], config)]
    recorded = saved.get("inputs") or {}
    changed = [f"input {name} changed: checkpoint {_short(recorded.get(name))} vs now {_short(inputs.get(name))}"
               for name in sorted(set(recorded) | set(inputs)) if recorded.get(name) != inputs.get(name)]
    return settings + changed


def _short(fingerprint: str | None) -> str:
    return "none" if fingerprint is None else fingerprint[:12]


def load_resumable(directory: Path, config: dict[str, Any], inputs: dict[str, str], *, restart_on_change: bool,
                   may_modify: bool = True) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None to start afresh.

    `config` and `inputs` are the current run's resume key (what `save_checkpoint` must be given as the
    state's "config" and "inputs"). A checkpoint with another key is refused naming what differs, unless
    `restart_on_change`: then it is renamed `*.stale.pt` with a warning naming what changed, and the run
    starts over. The workflow engines pass that flag, because they rerun a stage precisely when its
    params or inputs changed; by hand, mixing settings or data by accident is the bigger risk. A lone
    `checkpoint.prev.pt` is set aside the same way in either mode. Under DDP only rank 0 (`may_modify`)
    renames.
    """
    directory = Path(directory)
    if not (directory / CURRENT).exists() and (directory / PREVIOUS).exists():
        _set_aside(directory, may_modify, f"{directory / CURRENT} is missing (deleted, or cleared by a workflow "
                                          f"engine before a rerun), so {PREVIOUS} is not resumed")
        return None
    saved = load_checkpoint(directory)
    if saved is None:
        return None
    differing = resume_key_differences(saved, config, inputs)
    if not differing:
        return saved
    shown = "; ".join(differing[:8])
    if not restart_on_change:
        raise CheckpointError(
            f"{directory / CURRENT} was written with different settings or inputs ({shown}). Delete the "
            f"directory to start afresh, restore what it was trained with, or pass --restart-on-change."
        )
    _set_aside(directory, may_modify, f"settings or inputs changed ({shown}); starting afresh")
    return None


def _set_aside(directory: Path, may_modify: bool, reason: str) -> None:
    """Rename the checkpoints to `*.stale.pt` (kept as evidence, never loaded) and say why."""
    if may_modify:
        for name in (CURRENT, PREVIOUS):
            path = directory / name
            if path.exists():
                os.replace(path, path.with_suffix(".stale.pt"))
    log.warning("%s: %s; the old checkpoints are kept as *.stale.pt", directory, reason)


def _diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[tuple[str, Any, Any]] = []
        for key in sorted(set(a) | set(b), key=str):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def rng_state() -> dict[str, Any]:
    """Every global RNG the training loop draws from."""
    name, key, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state as plain numbers: its uint32 key array would need numpy's pickling to be stored.
        "numpy": (name, key.tolist(), int(position), int(has_gauss), float(cached_gaussian)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, key, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class StopRequest:
    """Set by SIGTERM / SIGUSR1 (SLURM's warning before the time limit or preemption).

    The training loop polls `requested` after each step, writes a checkpoint and exits; the same command
    run again resumes from it.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.requested = signal.Signals(signum).name
        log.warning("%s received: checkpointing and stopping after this step", self.requested)


