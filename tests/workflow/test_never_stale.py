"""Never stale, same bits on either engine: real Snakemake and real DVC in temporary git repositories.

One tiny 3-epoch search of one cell is the unit throughout. Snakemake runs it with OMP_NUM_THREADS=1 (the
rule's `threads`), DVC with OMP_NUM_THREADS=2, so only `runtime.threads` can make them agree; the oracle
is the other engine's bytes. An edited `prepare.split_seed` must train again (other alphas than before),
an interrupted `dvc repro` must resume (its log says so) and end with the uninterrupted bits, and the
demo command must leave the checkout as git committed it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from workflow_support import BIN, REPO, copy_repo, run, sha256, tool_env, write_params, write_tiny_params

pytestmark = pytest.mark.slow

SNAKEMAKE = str(BIN / "snakemake")
DVC = str(BIN / "dvc")
CELL = "digits/darts_1st/seed0"
SEARCH_DIR = f"results/search/{CELL}"
DVC_STAGE = "search@digits-darts_1st-0"
EPOCHS = {"search": {"epochs": 3}}


def _git(root: Path, *args: str) -> str:
    return run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", *args], cwd=root, timeout=60).stdout


def _repo(root: Path, *edits: dict) -> Path:
    """A committed copy of the checkout with the tiny grid (3 search epochs) and `edits`."""
    copy_repo(root)
    write_tiny_params(root, EPOCHS, *edits)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copy")
    return root


def _snakemake_search(root: Path) -> None:
    run([SNAKEMAKE, "--cores", "1", f"{SEARCH_DIR}/summary.json"], cwd=root, timeout=900)


def _dvc_env() -> dict[str, str]:
    return tool_env(OMP_NUM_THREADS="2")


def _search_log(root: Path) -> str:
    return (root / "logs/search" / f"{CELL}.log").read_text()


@pytest.fixture(scope="module")
def snakemake_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The cell searched by Snakemake, and its arch_weights.jsonl as it was then."""
    root = _repo(tmp_path_factory.mktemp("smk"))
    _snakemake_search(root)
    return root, (root / SEARCH_DIR / "arch_weights.jsonl").read_bytes()


def test_dvc_and_snakemake_compute_identical_alphas_then_an_edited_split_seed_trains_again(
        snakemake_run: tuple[Path, bytes], tmp_path: Path) -> None:
    _, reference = snakemake_run
    root = _repo(tmp_path)
    run([DVC, "repro", DVC_STAGE], cwd=root, timeout=900, env=_dvc_env())
    out = root / SEARCH_DIR
    assert (out / "arch_weights.jsonl").read_bytes() == reference
    assert json.loads((out / "summary.json").read_text())["provenance"]["threads"] == 1

    old_splits = sha256(root / "results/data/digits/splits.npz")
    write_params(root, {"prepare": {"split_seed": 1}})
    proc = run([DVC, "repro", DVC_STAGE], cwd=root, timeout=900, env=_dvc_env())
    assert "resuming" not in proc.stdout + proc.stderr
    assert "input splits.npz changed" in proc.stdout + proc.stderr
    assert sha256(root / "results/data/digits/splits.npz") != old_splits
    assert (out / "arch_weights.jsonl").read_bytes() != reference
    assert (out / "checkpoint.stale.pt").is_file()


def test_interrupted_dvc_repro_resumes_and_ends_with_the_uninterrupted_bits(
        snakemake_run: tuple[Path, bytes], tmp_path: Path) -> None:
    _, reference = snakemake_run
    root = _repo(tmp_path)
    out = root / SEARCH_DIR
    proc = subprocess.Popen([DVC, "repro", DVC_STAGE], cwd=root, env=_dvc_env(), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (out / "checkpoint.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: DVC and the stage it runs
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert (out / "checkpoint.pt").is_file() and not (out / "summary.json").exists(), "not interrupted mid-search"

    rerun = run([DVC, "repro", DVC_STAGE], cwd=root, timeout=900, env=_dvc_env())
    assert f"resuming {SEARCH_DIR} at epoch" in rerun.stdout + rerun.stderr
    assert (out / "arch_weights.jsonl").read_bytes() == reference


def test_snakemake_trains_again_after_an_edited_split_seed(snakemake_run: tuple[Path, bytes]) -> None:
    root, before = snakemake_run
    write_params(root, {"prepare": {"split_seed": 1}})
    _snakemake_search(root)
    log = _search_log(root)
    assert "resuming" not in log and "input splits.npz changed" in log
    assert (root / SEARCH_DIR / "arch_weights.jsonl").read_bytes() != before


def test_the_demo_command_leaves_the_checkout_clean_and_its_provenance_undirty(tmp_path: Path) -> None:
    root = tmp_path
    # The committed demo record comes along: the demo must not rewrite it.
    committed = _git(REPO, "ls-files", "results").split()
    assert committed, "the checkout commits no demo results"
    _repo(root, {"grid": {"methods": ["darts_1st"], "imagenet_methods": [], "transfer": False}})
    for rel in committed:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((REPO / rel).read_bytes())
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "committed demo record")
    head = _git(root, "rev-parse", "HEAD").strip()

    # `make demo` minus its setup step (the environment exists), importing this copy's package.
    run(["make", "-o", "setup", "demo", f"VENV={BIN.parent}", "CORES=2"], cwd=root, timeout=1200,
        env=tool_env(PYTHONPATH=str(root)))
    assert (root / "demo/results/tables/index.md").is_file()
    assert _git(root, "status", "--porcelain") == ""
    summary = json.loads((root / "demo" / SEARCH_DIR / "summary.json").read_text())
    assert summary["provenance"]["git_commit"] == head
