"""Shared by the resume and fault-injection tests: tiny params files, directory snapshots, the bit-exact
comparison of two searches, the CLI in a child process, and the tally that `conftest.py` prints as the
fault module's summary.

The searches here are the real `python -m pipeline search` on prepared digits, shrunk until one epoch
takes about a second on a loaded 2-core machine; what they prove is about bookkeeping (checkpoints,
resume, errors), which does not need a network that learns anything.

The planted files (`plant_checkpoint`, `plant_cifar_batch`) are what an attacker with write access to a
shared directory would leave: well-formed on the outside, with a pickle that runs `touch MARKER` when the
full unpickler reads it (`runs_code_when_unpickled` proves that it would).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import pickle
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shipped_params import deep_update, narrowed, write_yaml

from pipeline.checkpoint import CURRENT, MAGIC, load_checkpoint

TINY_SEARCH: dict[str, Any] = {"epochs": 2, "batch_size": 8, "layers": 3, "channels": 4,
                               "max_steps_per_epoch": 2}
# Wall-clock fields: the only ones allowed to differ between an interrupted and an uninterrupted run.
TIMING = frozenset({"epoch_time_s", "wall_time_s"})


def tiny_params(path: Path, methods: dict[str, dict[str, Any]], edits: dict[str, Any] | None = None) -> Path:
    """The shipped params.yaml on CPU, deterministic, untracked, with a tiny search of `methods`; its path.

    `edits` are merged last, so a test can break exactly one key of an otherwise valid file.
    """
    raw = narrowed(methods)
    raw["runtime"].update(device="cpu", deterministic=True)
    raw["search"].update(TINY_SEARCH)
    raw["search"]["analysis"]["hessian_every"] = 0
    return write_yaml(path, deep_update(raw, edits or {}))


def search_argv(params: Path, prepared: Path, out: Path, method: str, *extra: str) -> list[str]:
    """The arguments of `python -m pipeline search` for digits, seed 0."""
    return ["search", "--params", str(params), "--dataset", "digits", "--method", method, "--seed", "0",
            "--prepared", str(prepared), "--out", str(out), "--no-progress", *extra]


def snapshot(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory` by relative path: equal snapshots mean nothing was touched."""
    if not directory.exists():
        return {}
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_identical(actual: Any, expected: Any, where: str) -> None:
    """Equal structure and bit-equal tensors, arrays and floats (NaN equals NaN), ignoring `TIMING` keys;
    the assertion message names the first difference, e.g. `checkpoint.method.saliency`."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), where
        for key in expected:
            if key not in TIMING:
                assert_identical(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list | tuple):
        assert type(actual) is type(expected) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_identical(a, e, f"{where}[{i}]")
    elif isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor) and actual.dtype == expected.dtype, where
        assert torch.equal(actual, expected), where
    elif isinstance(expected, np.ndarray):
        assert np.array_equal(actual, expected), where
    elif isinstance(expected, float) and math.isnan(expected):
        assert isinstance(actual, float) and math.isnan(actual), where
    else:
        assert actual == expected, where


def history_rows(out: Path) -> list[dict[str, str]]:
    """The rows of a search's history.csv."""
    return list(csv.DictReader(io.StringIO((out / "history.csv").read_text())))


def history_without_timing(out: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history_rows(out)]


def assert_same_run(out: Path, reference: Path) -> None:
    """The search in `out` ended exactly where the one in `reference` did: final checkpoint (weights,
    method state, optimisers, scheduler, RNG states, loop state), history, architecture weights and
    genotype, bit for bit."""
    resumed, uninterrupted = load_checkpoint(out), load_checkpoint(reference)
    assert resumed is not None and uninterrupted is not None
    assert_identical(resumed, uninterrupted, "checkpoint")
    assert history_without_timing(out) == history_without_timing(reference)
    assert (out / "arch_weights.jsonl").read_bytes() == (reference / "arch_weights.jsonl").read_bytes()
    summary, expected = (json.loads((d / "summary.json").read_text()) for d in (out, reference))
    assert summary["genotype"] == expected["genotype"]
    assert summary["steps"] == expected["steps"]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released): connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cli(argv: list[str], cwd: Path) -> subprocess.Popen[str]:
    """`python -m pipeline ARGV` as a child process, single-threaded like the tests' in-process runs.

    Bit-exact comparisons between the child and the test process need the same thread count; a 2-core
    machine shared by several jobs also runs these tiny networks fastest on one thread.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "pipeline", *argv], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail (killing the child) if the child exits or time runs out first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0]
            raise AssertionError(f"never saw {what} (exit code {process.returncode}):\n{output}")
        time.sleep(0.01)


def kill(process: subprocess.Popen[str], sig: signal.Signals) -> str:
    """Send `sig` to the child and return its output once it has exited."""
    process.send_signal(sig)
    return process.communicate(timeout=300)[0]


class Plant:
    """Pickles as a call of `os.system("touch MARKER")`: unpickling it runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def runs_code_when_unpickled(payload: bytes, marker: Path) -> bool:
    """Whether the full unpickler, given `payload`, creates `marker` (the control for the refusal tests)."""
    with contextlib.suppress(Exception):
        pickle.loads(payload)  # noqa: S301 -- the point: show what the unrestricted loader would do
    created = marker.exists()
    marker.unlink(missing_ok=True)
    return created


def plant_checkpoint(directory: Path, marker: Path, *, as_torch_save: bool = True) -> bytes:
    """Write a checkpoint with a valid header and checksum whose payload runs `touch marker` when fully
    unpickled: a `torch.save` archive like a real checkpoint's, or (`as_torch_save=False`) a bare pickle.
    Returns the payload's pickle, for `runs_code_when_unpickled`."""
    state = {"kind": "search", "config": {"seed": 0}, "state": Plant(marker)}
    pickled = pickle.dumps(state, protocol=2)  # torch's own protocol, so the refusal is about the global
    if as_torch_save:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
    else:
        payload = pickled
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(payload).hexdigest().encode("ascii")
    (directory / CURRENT).write_bytes(MAGIC + digest + b"\n" + payload)
    return pickled


def plant_cifar_batch(path: Path, marker: Path, images: int = 4) -> bytes:
    """A CIFAR-10 batch file, `images` well-formed images and labels plus an entry that runs `touch marker`
    when fully unpickled; returns its bytes."""
    batch = {b"data": np.zeros((images, 3 * 32 * 32), dtype=np.uint8), b"labels": [0] * images,
             b"batch_label": Plant(marker)}
    payload = pickle.dumps(batch, protocol=2)  # the protocol of the original Python 2 batches
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return payload


class Tally:
    """Counts of the faults injected and bad inputs tried, and how many of each the pipeline handled.

    A test wraps its injection and its checks in `fault(...)` or `bad_input(...)`; the success count only
    moves when the block finishes, i.e. when every assertion about the outcome held.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @contextlib.contextmanager
    def fault(self) -> Iterator[None]:
        self.counts["faults"] += 1
        yield
        self.counts["survived"] += 1

    @contextlib.contextmanager
    def bad_input(self) -> Iterator[None]:
        self.counts["bad_inputs"] += 1
        yield
        self.counts["clear_errors"] += 1


def summary_lines(counts: Mapping[str, int]) -> list[str]:
    """The evidence lines the issue asks the fault module to print at the end of the session (`counts` may be
    the sum of several test processes' tallies)."""
    c = Counter(counts)
    return [f"faults injected: {c['faults']}, survived: {c['survived']}",
            f"bad inputs tried: {c['bad_inputs']}, clear errors: {c['clear_errors']}"]


TALLY = Tally()
