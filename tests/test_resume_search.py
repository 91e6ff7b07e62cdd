"""Resuming a search is exact: a run killed mid-epoch (SIGKILL) or stopped by SIGTERM and then rerun with
the same command ends with the same weights, method state, optimiser state, RNG states, history,
architecture weights and genotype, bit for bit, as a run that was never interrupted.

The method is a stateful one (DDSAS: UCB counts, saliency, sampled subspace, a shrinking available set;
DrNAS where DDSAS is not registered), because a method whose state is only its parameters would let a
forgotten buffer or counter slip through. The settings make that state change inside an epoch (a new
subspace every 3 steps of 4) and between epochs (the available set shrinks every epoch), so a kill lands
between bandit periods as well as between schedule events.

Every other method variant of the shipped grid (one at least per registered algorithm) is resumed from
its first epoch's checkpoint, the cheap way to prove that what each method saves passes the restricted
loader and restores exactly.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from faultlib import assert_same_run, history_rows, kill, search_argv, start_cli, tiny_params, wait_for
from shipped_params import REPO

from pipeline.checkpoint import CURRENT, PREVIOUS, load_checkpoint
from pipeline.cli import main
from pipeline.errors import EXIT_PREEMPTED
from pipeline.methods import list_methods

STATEFUL = {
    "ddsas": {"algorithm": "ddsas", "num_sampled": 20, "update_every": 3, "schedule": "shrink",
              "schedule_every": 1, "shrink_count": 8},
    "drnas": {"algorithm": "drnas", "warmup_epochs": 1, "partial_k": 2},
}
METHOD = next(name for name in STATEFUL if name in list_methods())
EPOCHS = 3


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml with a 3-epoch, 4-step search of the stateful method, and digits prepared for it."""
    root = tmp_path_factory.mktemp("resume")
    tiny_params(root / "params.yaml", {METHOD: STATEFUL[METHOD]},
                {"search": {"epochs": EPOCHS, "max_steps_per_epoch": 4, "analysis": {"hessian_every": 1,
                                                                                    "hessian_iterations": 2}}})
    assert main(["prepare", "--params", str(root / "params.yaml"), "--dataset", "digits", "--out",
                 str(root / "prepared")]) == 0
    return root


def argv(root: Path, out: Path) -> list[str]:
    return search_argv(root / "params.yaml", root / "prepared", out, METHOD)


def rerun(root: Path, out: Path) -> None:
    """The same command again, in this process (a fresh interpreter costs more than the search here)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(argv(root, out)) == 0


@pytest.fixture(scope="module")
def reference(workspace: Path) -> Path:
    """The uninterrupted run."""
    out = workspace / "uninterrupted"
    rerun(workspace, out)
    return out


def test_the_uninterrupted_run_covers_every_epoch_and_step(reference: Path) -> None:
    """The baseline the resumed runs are held to really ran 3 epochs of 4 steps."""
    assert len(history_rows(reference)) == EPOCHS
    assert json.loads((reference / "summary.json").read_text())["steps"] == EPOCHS * 4


def into_second_epoch(root: Path, out: Path, reference: Path) -> subprocess.Popen[str]:
    """Start the search as a child process and return it a while into its second epoch.

    history.csv first appears right after the first epoch's checkpoint, so from then on the child trains
    epoch 2. Waiting a fifth of an epoch (4 steps and an evaluation, timed on the uninterrupted run) puts
    it about a step in, with room for the child to run several times faster than the reference did.
    """
    epoch_s = float(history_rows(reference)[1]["epoch_time_s"])
    process = start_cli(argv(root, out), cwd=root)
    wait_for(lambda: (out / "history.csv").exists(), process, 600, "the first epoch's history.csv")
    time.sleep(epoch_s / 5)
    return process


def test_sigkill_mid_epoch_then_rerun_is_bit_identical_to_an_uninterrupted_run(
        workspace: Path, reference: Path) -> None:
    out = workspace / "sigkill"
    process = into_second_epoch(workspace, out, reference)
    output = kill(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, output
    killed = load_checkpoint(out)
    assert killed is not None
    # Still the first epoch's checkpoint: the kill landed inside the second epoch, whose steps are lost.
    assert (killed["state"]["epoch"], killed["state"]["step_in_epoch"]) == (1, 0)
    assert not (out / "summary.json").exists()
    rerun(workspace, out)
    assert_same_run(out, reference)


def test_sigterm_mid_epoch_exits_75_with_a_checkpoint_at_that_step_and_rerun_is_bit_identical(
        workspace: Path, reference: Path) -> None:
    out = workspace / "sigterm"
    process = into_second_epoch(workspace, out, reference)
    output = kill(process, signal.SIGTERM)
    assert process.returncode == EXIT_PREEMPTED, output
    stopped = load_checkpoint(out)
    assert stopped is not None
    state = stopped["state"]
    assert f"checkpoint saved at epoch {state['epoch']} step {state['step_in_epoch']}; rerun the same command" \
        in output
    assert 1 <= state["epoch"] < EPOCHS and state["step_in_epoch"] > 0, "the stop should land mid-epoch"
    assert state["global_step"] == 4 * state["epoch"] + state["step_in_epoch"]
    assert not (out / "summary.json").exists()
    rerun(workspace, out)
    assert_same_run(out, reference)


SHIPPED = yaml.safe_load((REPO / "params.yaml").read_text())
GRID_METHODS: list[str] = SHIPPED["grid"]["methods"]


def test_the_grid_covers_every_registered_algorithm() -> None:
    """So the per-method resume below reaches every method's checkpoint code."""
    assert {SHIPPED["search"]["methods"][name]["algorithm"] for name in GRID_METHODS} == set(list_methods())


@pytest.fixture(scope="module")
def grid_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml with the shipped grid's variants in a 2-epoch, 2-step search, and digits prepared."""
    root = tmp_path_factory.mktemp("resume_every_method")
    tiny_params(root / "params.yaml", GRID_METHODS)
    assert main(["prepare", "--params", str(root / "params.yaml"), "--dataset", "digits", "--out",
                 str(root / "prepared")]) == 0
    return root


@pytest.mark.parametrize("method", GRID_METHODS)
def test_every_method_resumes_from_its_first_epoch_checkpoint_bit_identically(
        grid_workspace: Path, method: str) -> None:
    reference, out = grid_workspace / method / "uninterrupted", grid_workspace / method / "resumed"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(grid_workspace)
        assert main(search_argv(grid_workspace / "params.yaml", grid_workspace / "prepared", reference, method)) == 0
        out.mkdir()
        shutil.copy2(reference / PREVIOUS, out / CURRENT)
        first_epoch = load_checkpoint(out)
        assert first_epoch is not None and (first_epoch["state"]["epoch"], first_epoch["state"]["step_in_epoch"]) \
            == (1, 0)
        assert main(search_argv(grid_workspace / "params.yaml", grid_workspace / "prepared", out, method)) == 0
    assert_same_run(out, reference)
