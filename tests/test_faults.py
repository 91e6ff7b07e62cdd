"""Fault injection on the demo config: every failure of the reliability issue, through the real commands.

Each fault test injects one failure into a tiny digits search and proves the pipeline survives it: the
run resumes or finishes with the uninterrupted result, or it stops with a message that names the problem
and leaves the last good checkpoint untouched. Each bad-input test feeds one broken input to a command and
proves it exits 2 with a message naming the key or file (no traceback) and writes no output besides the
FAILED.json marker. The session ends with the counts (tests/conftest.py prints them):

    faults injected: N, survived: N
    bad inputs tried: N, clear errors: N

Faults: a checkpoint with a flipped byte, or truncated (falls back to the previous one); both checkpoints
damaged (refused, nothing overwritten); a checkpoint from other settings (refused, keys named); a search
checkpoint from other splits, a retrain checkpoint from other splits and a transfer checkpoint from
another ImageNet tree (refused by hand naming the input; --restart-on-change trains afresh, exactly as a
fresh run on the new data); a lone previous checkpoint, as DVC leaves it (set aside, not resumed); a NaN/Inf
architecture parameter and a NaN loss (stop naming epoch, step and tensor; --allow-nan-skip finishes); a
full and a read-only disk under the checkpoint; an unreachable MLflow server (then sync-tracking); SIGKILL
(derive refuses the unfinished search; the rerun finishes it); SIGUSR1 (exit 75, then resume).

Bad inputs besides broken params, options and genotypes: planted files that would run code if loaded
with the full unpickler (a checkpoint with a valid header and checksum, through `python -m pipeline
search` in a child process; a CIFAR batch, through prepare) are refused by name and their marker file
never appears; a checkpoint of the old pickle format is refused saying how to restart; a damaged MLflow
spool is refused naming its line.

Commands run in this process (`pipeline.cli.main`, what `python -m pipeline` calls), except where the
fault is the process dying; a fresh interpreter costs more than these searches on a loaded machine.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from faultlib import (
    TALLY,
    TIMING,
    assert_same_run,
    closed_port,
    kill,
    plant_checkpoint,
    plant_cifar_batch,
    runs_code_when_unpickled,
    search_argv,
    snapshot,
    start_cli,
    tiny_params,
    wait_for,
)

from pipeline.checkpoint import CURRENT, PICKLE_FORMAT_MAGIC, PREVIOUS, load_checkpoint
from pipeline.cli import main
from pipeline.errors import EXIT_PREEMPTED
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import genotype_to_dict

METHODS: dict[str, dict[str, Any]] = {
    "darts_1st": {"algorithm": "darts", "order": 1},
    # lr_min far above lr bends the cosine schedule upwards: epoch 0 trains at lr 0.025 and checkpoints,
    # epoch 1 steps at lr ~5e37, so its first weight step overflows and the next step is non-finite.
    # DARTS meets it first in the architecture parameters (its architecture step comes first) ...
    "diverging_darts": {"algorithm": "darts", "overrides": {"weights": {"lr_min": 1.0e38}}},
    # ... PC-DARTS still warming up (architecture frozen) meets it in the training loss.
    "diverging_pc": {"algorithm": "pc_darts", "partial_k": 2, "warmup_epochs": 2,
                     "overrides": {"weights": {"lr_min": 1.0e38}}},
}
MARKER = "FAILED.json"
LEFT_FREE = 2**19  # on the "full" disk: room for a third of the tiny supernet's 1.4 MB checkpoint


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo params shrunk to a 2-epoch, 2-step search, and digits prepared with them."""
    root = tmp_path_factory.mktemp("faults")
    tiny_params(root / "params.yaml", METHODS)
    assert cli(root, ["prepare", "--params", str(root / "params.yaml"), "--dataset", "digits", "--out",
                      str(root / "prepared")]) == 0
    return root


@pytest.fixture(scope="module")
def reference(workspace: Path) -> Path:
    """An undisturbed search: what every surviving run must end up identical to."""
    out = workspace / "reference"
    assert cli(workspace, search(workspace, out)) == 0
    return out


def cli(root: Path, argv: list[str]) -> int:
    """`python -m pipeline ARGV` from `root`, in this process; argparse's own errors exit via SystemExit."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        try:
            return main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)


def search(root: Path, out: Path, method: str = "darts_1st", *extra: str, params: Path | None = None) -> list[str]:
    return search_argv(params or root / "params.yaml", root / "prepared", out, method, *extra)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def without_marker(files: dict[str, str]) -> dict[str, str]:
    return {name: digest for name, digest in files.items() if name != MARKER}


def copy_checkpoints(source: Path, out: Path) -> Path:
    """Only the checkpoints of `source`: every other output a rerun must write again from them."""
    out.mkdir(parents=True)
    for name in (CURRENT, PREVIOUS):
        shutil.copy2(source / name, out / name)
    return out


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# ------------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize("damage", [flip_a_byte, truncate], ids=["flipped-byte", "truncated"])
def test_damaged_checkpoint_falls_back_to_the_previous_one_with_a_warning(
        workspace: Path, reference: Path, tmp_path: Path, damage: Callable[[Path], None],
        caplog: pytest.LogCaptureFixture) -> None:
    with TALLY.fault():
        out = copy_checkpoints(reference, tmp_path / "run")
        damage(out / CURRENT)
        assert cli(workspace, search(workspace, out)) == 0
        warnings = warnings_of(caplog)
        assert any(f"{out / CURRENT}: checksum mismatch" in w for w in warnings), warnings
        assert any(f"resuming from the previous checkpoint {out / PREVIOUS}" in w for w in warnings), warnings
        assert_same_run(out, reference)  # the lost epoch was trained again, exactly


def test_both_checkpoints_damaged_is_refused_and_nothing_is_overwritten(
        workspace: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = copy_checkpoints(reference, tmp_path / "run")
        flip_a_byte(out / CURRENT)
        truncate(out / PREVIOUS)
        before = snapshot(out)
        assert cli(workspace, search(workspace, out)) == 2
        error = capsys.readouterr().err
        assert f"no usable checkpoint in {out}" in error and f"{out / PREVIOUS}: checksum mismatch" in error
        assert "delete them to start the run afresh" in error
        assert without_marker(snapshot(out)) == before  # not silently restarted over the evidence


def test_checkpoint_from_other_settings_is_refused_naming_the_keys(
        workspace: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        shutil.copytree(reference, out)
        before = snapshot(out)
        edited = tiny_params(tmp_path / "edited.yaml", METHODS, {"search": {"batch_size": 16, "weights": {"lr": 0.05}}})
        assert cli(workspace, search(workspace, out, params=edited)) == 2
        error = capsys.readouterr().err
        assert "search.batch_size: checkpoint 8 vs params 16" in error
        assert "search.weights.lr: checkpoint 0.025 vs params 0.05" in error
        assert without_marker(snapshot(out)) == before


@pytest.fixture(scope="module")
def other_splits(workspace: Path) -> Path:
    """Digits prepared with another split seed: the same params slice of every stage, other data."""
    params = tiny_params(workspace / "other-seed.yaml", METHODS, {"prepare": {"split_seed": 1}})
    assert cli(workspace, ["prepare", "--params", str(params), "--dataset", "digits", "--out",
                           str(workspace / "prepared-seed1")]) == 0
    return workspace / "prepared-seed1"


def with_prepared(argv: list[str], prepared: Path) -> list[str]:
    argv = list(argv)
    argv[argv.index("--prepared") + 1] = str(prepared)
    return argv


def refused_then_restarted(workspace: Path, argv: list[str], fresh_argv: list[str], out: Path, fresh: Path,
                           expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    """By hand (`argv`) the stage refuses the checkpoint in `out`, naming `expected`, and touches nothing;
    with --restart-on-change it sets it aside and ends exactly where a run in an empty `fresh` does."""
    before = snapshot(out)
    assert cli(workspace, argv) == 2
    assert expected in capsys.readouterr().err
    assert without_marker(snapshot(out)) == before
    assert cli(workspace, [*argv, "--restart-on-change"]) == 0
    assert (out / "checkpoint.stale.pt").is_file()
    assert cli(workspace, fresh_argv) == 0
    restarted, fresh_run = load_checkpoint(out), load_checkpoint(fresh)
    assert_identical_but_timing(restarted["state"]["history"], fresh_run["state"]["history"])


def assert_identical_but_timing(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    strip = [{k: v for k, v in row.items() if k not in TIMING} for row in (*actual, *expected)]
    assert strip[: len(actual)] == strip[len(actual):]


def test_search_checkpoint_from_other_splits_is_refused_by_hand_and_restarted_by_the_engines(
        workspace: Path, reference: Path, other_splits: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        shutil.copytree(reference, out)
        argv = with_prepared(search(workspace, out), other_splits)
        fresh = tmp_path / "fresh"
        refused_then_restarted(workspace, argv, with_prepared(search(workspace, fresh), other_splits), out, fresh,
                               "input splits.npz changed", capsys)
        assert_same_run(out, fresh)
        assert (out / "arch_weights.jsonl").read_bytes() != (reference / "arch_weights.jsonl").read_bytes()


def test_lone_previous_checkpoint_is_set_aside_not_resumed(
        workspace: Path, reference: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        out.mkdir()
        shutil.copy2(reference / PREVIOUS, out / PREVIOUS)  # checkpoint.pt cleared, as DVC does without persist
        with caplog.at_level(logging.INFO):
            assert cli(workspace, search(workspace, out)) == 0
        messages = [record.getMessage() for record in caplog.records]
        assert any(f"{PREVIOUS} is not resumed" in m for m in messages), messages
        assert not any(m.startswith("resuming") for m in messages), messages
        assert (out / "checkpoint.prev.stale.pt").is_file()
        assert_same_run(out, reference)


@pytest.fixture(scope="module")
def training_params(workspace: Path) -> Path:
    """Retrain and transfer shrunk to 2 steps of a 3-cell, 4-channel network; the demo ImageNet tree."""
    tiny = {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8, "layers": 3, "channels": 4}
    return tiny_params(workspace / "training.yaml", METHODS, {
        "retrain": tiny, "transfer": {**tiny, "image_size": 16},
        "data": {"imagenet_root": str(workspace / "imagenet")}})


def retrain_argv(workspace: Path, params: Path, prepared: Path, out: Path) -> list[str]:
    genotype = genotype_file(workspace, None)
    return ["retrain", "--params", str(params), "--genotype", str(genotype), "--dataset", "digits", "--seed", "0",
            "--prepared", str(prepared), "--out", str(out), "--no-progress"]


def test_retrain_checkpoint_from_other_splits_is_refused_by_hand_and_restarted_by_the_engines(
        workspace: Path, training_params: Path, other_splits: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        assert cli(workspace, retrain_argv(workspace, training_params, workspace / "prepared", out)) == 0
        refused_then_restarted(workspace, retrain_argv(workspace, training_params, other_splits, out),
                               retrain_argv(workspace, training_params, other_splits, tmp_path / "fresh"),
                               out, tmp_path / "fresh", "input splits.npz changed", capsys)


def test_transfer_checkpoint_from_another_imagenet_tree_is_refused_by_hand_and_restarted_by_the_engines(
        workspace: Path, training_params: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        tree = workspace / "imagenet"
        argv = ["transfer", "--params", str(training_params), "--genotype", str(genotype_file(tmp_path, None)),
                "--seed", "0", "--searched-on", "digits", "--out", str(tmp_path / "run"), "--no-progress"]
        assert cli(workspace, ["prepare", "--params", str(training_params), "--dataset", "imagenet_demo",
                               "--out", str(tree)]) == 0
        assert cli(workspace, argv) == 0
        # The stand-in rewritten with another validation share: another tree at the same path.
        edited = tiny_params(tmp_path / "tree.yaml", METHODS, {"prepare": {"imagenet_demo": {"val_fraction": 0.3}}})
        assert cli(workspace, ["prepare", "--params", str(edited), "--dataset", "imagenet_demo", "--out",
                               str(tree)]) == 0
        fresh = [*argv[:-2], str(tmp_path / "fresh"), "--no-progress"]
        refused_then_restarted(workspace, argv, fresh, tmp_path / "run", tmp_path / "fresh",
                               "input source data changed", capsys)


@pytest.mark.parametrize(("method", "tensor"), [("diverging_darts", "architecture parameter"),
                                                ("diverging_pc", "training loss")])
def test_non_finite_value_stops_naming_epoch_step_and_tensor_and_allow_nan_skip_finishes(
        workspace: Path, tmp_path: Path, method: str, tensor: str, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        assert cli(workspace, search(workspace, out, method)) == 2
        error = capsys.readouterr().err
        assert re.search(rf"non-finite {tensor} at epoch 1, step \d+ of the search", error), error
        assert "--allow-nan-skip" in error and "Traceback" not in error
        kept = load_checkpoint(out)
        assert kept is not None and (kept["state"]["epoch"], kept["state"]["step_in_epoch"]) == (1, 0)
        assert all(torch.isfinite(t).all() for t in kept["net"].values() if t.is_floating_point())
        assert not (out / "summary.json").exists()
        assert "NumericalError" in json.loads((out / MARKER).read_text())["error"]

        assert cli(workspace, search(workspace, out, method, "--allow-nan-skip", "10")) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert 1 <= summary["nan_skips"] <= 10
        assert any("batch skipped" in w for w in warnings_of(caplog))
        assert not (out / MARKER).exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A private 8 MiB tmpfs. Tests run as root, whom permissions and chmod do not stop, so a full or
    read-only filesystem is the honest way to make a write fail; mounting one needs CAP_SYS_ADMIN."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount_point)],
                                 capture_output=True, text=True)
    except OSError as exc:
        pytest.skip(f"cannot run mount: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill or make read-only: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def fill_disk(directory: Path) -> Callable[[], None]:
    """Fill the filesystem of `directory` but for `LEFT_FREE` bytes, so the next checkpoint write fails
    part-way; returns what frees the space again."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(shutil.disk_usage(directory).free - LEFT_FREE, 0))
    return filler.unlink


def make_read_only(directory: Path) -> Callable[[], None]:
    """Remount the filesystem of `directory` read-only; returns what makes it writable again."""
    subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
    return lambda: subprocess.run(["mount", "-o", "remount,rw", str(directory)], check=True)


@pytest.mark.parametrize(("break_disk", "reason"), [(fill_disk, "No space left on device"),
                                                    (make_read_only, "Read-only file system")],
                         ids=["disk-full", "read-only"])
def test_failed_checkpoint_write_keeps_the_previous_checkpoint_and_exits_with_a_clear_message(
        workspace: Path, reference: Path, small_disk: Path, break_disk: Callable[[Path], Callable[[], None]],
        reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = small_disk / "run"
        out.mkdir()
        # The reference's first-epoch checkpoint: the rerun trains epoch 2 and then fails to save it.
        shutil.copy2(reference / PREVIOUS, out / CURRENT)
        first_epoch = (out / CURRENT).read_bytes()
        assert len(first_epoch) > LEFT_FREE
        repair = break_disk(small_disk)
        assert cli(workspace, search(workspace, out)) == 2
        error = capsys.readouterr().err
        assert "Traceback" not in error and reason in error and "previous" in error, error
        assert str(out) in error
        assert (out / CURRENT).read_bytes() == first_epoch
        assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".link"))]

        repair()
        assert cli(workspace, search(workspace, out)) == 0
        assert_same_run(out, reference)


def test_unreachable_tracking_server_warns_once_spools_and_sync_uploads_once(
        workspace: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    with TALLY.fault():
        server = f"http://127.0.0.1:{closed_port()}"
        params = tiny_params(tmp_path / "params.yaml", METHODS, {"tracking": {"enabled": True, "uri": server}})
        out = tmp_path / "run"
        assert cli(workspace, search(workspace, out, params=params)) == 0
        assert len([w for w in warnings_of(caplog) if f"MLflow tracking at {server} failed" in w]) == 1
        assert_same_run(out, reference)  # tracking is a side channel: the results are the same
        records = [json.loads(line) for line in (out / "tracking_spool.jsonl").read_text().splitlines()]
        assert {"start", "metrics", "artifact", "end"} <= {r["op"] for r in records}

        store = f"sqlite:///{tmp_path / 'mlflow.db'}"
        for uploaded in (len(records), 0):  # the second sync finds nothing new
            assert cli(workspace, ["sync-tracking", "--results", str(out), "--uri", store]) == 0
            assert f"uploaded {uploaded} records" in capsys.readouterr().out
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=store)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.stage = 'search'")
        assert len(runs) == 1
        assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "valid_acc")] == [0, 1]


def test_sigkill_leaves_nothing_downstream_consumes_and_rerun_finishes_identically(
        workspace: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with TALLY.fault():
        out = tmp_path / "run"
        process = start_cli(search(workspace, out), cwd=workspace)
        # Killed right after its first checkpoint: between a checkpoint and the files written from it.
        wait_for(lambda: (out / CURRENT).exists(), process, 600, "the first checkpoint")
        output = kill(process, signal.SIGKILL)
        assert process.returncode == -signal.SIGKILL, output
        assert not (out / "summary.json").exists()

        genotype = tmp_path / "genotype.json"
        derive = ["derive", "--params", str(workspace / "params.yaml"), "--search-dir", str(out), "--out",
                  str(genotype)]
        assert cli(workspace, derive) == 2
        assert "is not finished" in capsys.readouterr().err
        assert not genotype.exists()

        assert cli(workspace, search(workspace, out)) == 0
        assert_same_run(out, reference)
        assert cli(workspace, derive) == 0 and genotype.exists()


def test_sigusr1_checkpoints_mid_epoch_exits_75_and_rerun_finishes_identically(
        workspace: Path, reference: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SLURM's warning before a time limit or preemption (`--signal=USR1@...`), sent to this very process
    once the first epoch is checkpointed, so the stop lands inside the second epoch."""
    with TALLY.fault():
        out = tmp_path / "run"

        def warn_after_first_checkpoint() -> None:
            deadline = time.monotonic() + 600
            while not (out / CURRENT).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGUSR1)

        # Outside the run SIGUSR1 would terminate pytest; ignored there, a late signal only fails the test.
        previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        sender = threading.Thread(target=warn_after_first_checkpoint)
        try:
            sender.start()
            status = cli(workspace, search(workspace, out))
            sender.join()
        finally:
            signal.signal(signal.SIGUSR1, previous)
        error = capsys.readouterr().err
        assert status == EXIT_PREEMPTED, error
        stopped = load_checkpoint(out)
        assert stopped is not None
        epoch, step = stopped["state"]["epoch"], stopped["state"]["step_in_epoch"]
        assert epoch == 1 and step >= 1
        assert f"SIGUSR1: checkpoint saved at epoch {epoch} step {step}" in error
        assert not (out / "summary.json").exists()

        assert cli(workspace, search(workspace, out)) == 0
        assert_same_run(out, reference)


# -------------------------------------------------------------------------------------------- bad inputs

PARAMS_EDITS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "unknown-key": ({"search": {"epoch": 3}}, ["search.epoch: unknown key (did you mean 'epochs'?)"]),
    "wrong-type": ({"search": {"batch_size": "eight"}}, ["search.batch_size", "valid integer", "'eight'"]),
    "zero-epochs": ({"search": {"epochs": 0}}, ["search.epochs", "greater than 0"]),
    "negative-lr": ({"search": {"weights": {"lr": -0.1}}}, ["search.weights.lr", "greater than 0"]),
    "k-not-dividing-channels": ({"search": {"methods": {"pc": {"algorithm": "pc_darts", "partial_k": 3}}}},
                                ["search.methods.pc.partial_k", "K = 3 does not divide search.channels = 4"]),
    "ddsas-l-out-of-range": ({"search": {"methods": {"dd": {"algorithm": "ddsas", "num_sampled": 200}}}},
                             ["search.methods.dd.num_sampled", "L = 200 is outside [15, 112]"]),
    "ddsas-m-zero": ({"search": {"methods": {"dd": {"algorithm": "ddsas", "update_every": 0}}}},
                     ["search.methods.dd.update_every", "greater than or equal to 1"]),
    "data-m-zero": ({"search": {"methods": {"data_m0": {"algorithm": "data", "samples": 0}}}},
                    ["search.methods.data_m0.samples", "greater than or equal to 1"]),
    "fractional-seed": ({"grid": {"seeds": [0, 1.5]}}, ["grid.seeds.1", "valid integer", "1.5"]),
    "unknown-algorithm": ({"search": {"methods": {"darts_1st": {"algorithm": "dart"}}}},
                          ["search.methods.darts_1st", "unknown algorithm 'dart' (did you mean 'darts'"]),
    "unknown-dataset": ({"grid": {"datasets": ["cifar11"]}},
                        ["grid.datasets", "unknown dataset 'cifar11' (did you mean 'cifar10'"]),
    "undefined-grid-method": ({"grid": {"methods": ["darts_3rd"]}},
                              ["grid.methods: 'darts_3rd' is not defined under search.methods"]),
}


def assert_clear_error(status: int, error: str, expected: list[str], out: Path) -> None:
    """Exit 2, one message with every expected fragment, no traceback, and no output but the marker."""
    assert status == 2, error
    assert "Traceback" not in error
    for fragment in expected:
        assert fragment in error, error
    assert not set(snapshot(out)) - {MARKER}, f"{out} holds output of a failed command"


@pytest.mark.parametrize("case", list(PARAMS_EDITS))
def test_bad_params_value_is_refused_naming_the_key(
        workspace: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    edits, expected = PARAMS_EDITS[case]
    with TALLY.bad_input():
        params = tiny_params(tmp_path / "params.yaml", METHODS, edits)
        out = tmp_path / "out"
        status = cli(workspace, search(workspace, out, params=params))
        assert_clear_error(status, capsys.readouterr().err, [str(params), *expected], out)


def broken_params_file(root: Path, tmp_path: Path) -> list[str]:
    (tmp_path / "params.yaml").write_text("search: {epochs: 2\n")
    return search(root, tmp_path / "out", params=tmp_path / "params.yaml")


def missing_params_file(root: Path, tmp_path: Path) -> list[str]:
    return search(root, tmp_path / "out", params=tmp_path / "nowhere.yaml")


def fractional_seed_option(root: Path, tmp_path: Path) -> list[str]:
    argv = search(root, tmp_path / "out")
    argv[argv.index("--seed") + 1] = "1.5"
    return argv


def unknown_method_option(root: Path, tmp_path: Path) -> list[str]:
    return search(root, tmp_path / "out", "darts_2st")


def unknown_dataset_option(root: Path, tmp_path: Path) -> list[str]:
    argv = search(root, tmp_path / "out")
    argv[argv.index("--dataset") + 1] = "cifar11"
    return argv


def search_before_prepare(root: Path, tmp_path: Path) -> list[str]:
    argv = search(root, tmp_path / "out")
    argv[argv.index("--prepared") + 1] = str(tmp_path / "not-prepared")
    return argv


def genotype_file(tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None, text: str | None = None) -> Path:
    """A genotype JSON (DARTS-V2 as retrain reads it) after `edit`, or with raw `text` instead."""
    obj = genotype_to_dict(GENOTYPE_DARTS_V2) | {"provenance": {"method": "darts_1st"}}
    if edit is not None:
        edit(obj)
    path = tmp_path / "genotype.json"
    path.write_text(text if text is not None else json.dumps(obj))
    return path


def retrain(root: Path, tmp_path: Path, genotype: Path) -> list[str]:
    return ["retrain", "--params", str(root / "params.yaml"), "--genotype", str(genotype), "--dataset", "digits",
            "--seed", "0", "--prepared", str(root / "prepared"), "--out", str(tmp_path / "out"), "--no-progress"]


def truncated_genotype(root: Path, tmp_path: Path) -> list[str]:
    text = json.dumps(genotype_to_dict(GENOTYPE_DARTS_V2))
    return retrain(root, tmp_path, genotype_file(tmp_path, None, text[: len(text) // 2]))


def genotype_with_unknown_op(root: Path, tmp_path: Path) -> list[str]:
    def edit(obj: dict[str, Any]) -> None:
        obj["normal"][1][0][0] = "sep_conv_9x9"

    return retrain(root, tmp_path, genotype_file(tmp_path, edit))


def genotype_with_bad_input_index(root: Path, tmp_path: Path) -> list[str]:
    def edit(obj: dict[str, Any]) -> None:
        obj["reduce"][0][1][1] = 7

    return retrain(root, tmp_path, genotype_file(tmp_path, edit))


def inspect_unknown_op(root: Path, tmp_path: Path) -> list[str]:
    genotype_with_unknown_op(root, tmp_path)
    return ["inspect", str(tmp_path / "genotype.json"), "--dataset", "cifar10"]


def cifar_missing(root: Path, tmp_path: Path) -> list[str]:
    params = tiny_params(tmp_path / "params.yaml", METHODS, {"data": {"root": str(tmp_path / "data")}})
    return ["prepare", "--params", str(params), "--dataset", "cifar10", "--out", str(tmp_path / "out")]


def cifar_partial(root: Path, tmp_path: Path) -> list[str]:
    batches = tmp_path / "data" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"")
    return cifar_missing(root, tmp_path)


def cifar_planted(root: Path, tmp_path: Path) -> list[str]:
    """A complete CIFAR-10 tree whose first batch also runs `touch pwned` when fully unpickled."""
    batches = tmp_path / "data" / "cifar-10-batches-py"
    marker = tmp_path / "pwned"
    assert runs_code_when_unpickled(plant_cifar_batch(batches / "data_batch_1", marker), marker)
    for name in [f"data_batch_{i}" for i in range(2, 6)] + ["test_batch"]:
        (batches / name).write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}))
    return cifar_missing(root, tmp_path)


def spool_damaged(root: Path, tmp_path: Path) -> list[str]:
    spool = tmp_path / "results" / "search" / "tracking_spool.jsonl"
    spool.parent.mkdir(parents=True)
    spool.write_text('{"op": "start", "run_key": "k"}\n{"op": "metrics", "run_key": \n')
    return ["sync-tracking", "--results", str(tmp_path / "results"), "--uri", f"sqlite:///{tmp_path / 'out.db'}"]


COMMAND_CASES: dict[str, tuple[Callable[[Path, Path], list[str]], list[str]]] = {
    "params-not-yaml": (broken_params_file, ["params.yaml: not valid YAML"]),
    "params-missing": (missing_params_file, ["params file not found", "nowhere.yaml"]),
    "fractional-seed-option": (fractional_seed_option, ["argument --seed: invalid int value: '1.5'"]),
    "unknown-method-option": (unknown_method_option,
                              ["no method variant 'darts_2st' (did you mean 'darts_1st'?)"]),
    "unknown-dataset-option": (unknown_dataset_option, ["unknown dataset 'cifar11'", "digits"]),
    "search-before-prepare": (search_before_prepare,
                              ["not-prepared/splits.npz not found", "python -m pipeline prepare"]),
    "genotype-not-json": (truncated_genotype, ["genotype.json: not valid JSON (line 1, column"]),
    "genotype-unknown-op": (genotype_with_unknown_op,
                            ["genotype.json: normal cell, node 3, pair 0: unknown operation 'sep_conv_9x9'"]),
    "genotype-bad-input-index": (genotype_with_bad_input_index,
                                 ["genotype.json: reduce cell, node 2, pair 1", "input 7 is out of range"]),
    "inspect-unknown-op": (inspect_unknown_op, ["genotype.json", "unknown operation 'sep_conv_9x9'"]),
    "cifar-missing": (cifar_missing, ["cifar10: missing file(s)", "cifar-10-batches-py/data_batch_1",
                                      "cifar-10-python.tar.gz"]),
    "cifar-partial": (cifar_partial, ["cifar10: missing file(s)", "cifar-10-batches-py/data_batch_2",
                                      "cifar-10-python.tar.gz"]),
    # The marker the planted batch would create is a new file under tmp_path: the test below sees it.
    "cifar-planted": (cifar_planted, ["data_batch_1 is not a CIFAR batch pickle (refused to import posix.system"]),
    "spool-damaged": (spool_damaged, ["tracking_spool.jsonl: line 2 after the synced offset is not a JSON record"]),
}


@pytest.mark.parametrize("case", list(COMMAND_CASES))
def test_bad_command_input_is_refused_naming_the_file_or_option(
        workspace: Path, tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    make_argv, expected = COMMAND_CASES[case]
    with TALLY.bad_input():
        argv = make_argv(workspace, tmp_path)
        inputs, beside = snapshot(tmp_path), set(os.listdir(workspace))
        status = cli(workspace, argv)
        error = capsys.readouterr().err
        assert_clear_error(status, error, expected, tmp_path / "out")
        if case == "cifar-partial":
            assert "data_batch_1\n" not in error  # the file that is there is not reported missing
        # Nothing else appears beside the inputs or in the working directory (inspect has no --out at all).
        assert set(snapshot(tmp_path)) - set(inputs) <= {f"out/{MARKER}"}
        assert set(os.listdir(workspace)) == beside


def old_format(directory: Path, marker: Path) -> None:
    """A checkpoint of the pickle format (header `PIPECKPT1`) whose payload would run `touch marker`."""
    plant_checkpoint(directory, marker)
    blob = (directory / CURRENT).read_bytes()
    (directory / CURRENT).write_bytes(PICKLE_FORMAT_MAGIC + blob.split(b"\n", 1)[1])


def planted(directory: Path, marker: Path) -> None:
    assert runs_code_when_unpickled(plant_checkpoint(directory, marker), marker)


CHECKPOINT_CASES: dict[str, tuple[Callable[[Path, Path], None], list[str]]] = {
    "planted": (planted, ["checkpoint.pt: refused, it asks to import posix.system", "nothing in it was run"]),
    "pickle-format": (old_format, ["checkpoint.pt: written by an earlier version of the pipeline",
                                   "rerun the same command to start afresh"]),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_checkpoint_that_could_run_code_is_refused_by_the_command_line_and_nothing_runs(
        workspace: Path, tmp_path: Path, case: str) -> None:
    """`python -m pipeline search --out DIR` in a child process, DIR holding only the planted checkpoint."""
    plant, expected = CHECKPOINT_CASES[case]
    with TALLY.bad_input():
        out, marker = tmp_path / "run", tmp_path / "pwned"
        plant(out, marker)
        before = snapshot(out)
        process = start_cli(search(workspace, out), cwd=workspace)
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 2, output
        assert "Traceback" not in output
        for fragment in expected:
            assert fragment in output, output
        assert not marker.exists()
        assert without_marker(snapshot(out)) == before
