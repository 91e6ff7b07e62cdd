"""Shared pieces of the workflow tests: a throw-away repository copy, a tiny grid, bounded subprocesses.

Every workflow runs in a copy, never in the checkout: Snakemake, DVC and MLflow write state next to the
workflow (.snakemake/, .dvc/cache, mlflow.db), and a test must neither read a developer's results nor
leave files behind. Subprocesses are bounded with `timeout -k 30`, start in their own session and read
/dev/null, because Snakemake answers SIGTERM by waiting for its running jobs, and an interactive prompt
would hang CI.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from shipped_params import deep_update, narrowed, write_yaml

from pipeline.config import GridConfig

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Never copied even where .gitignore lacks them: environments, results and tool state of the checkout.
_NOT_COPIED = (".git", ".venv", "results", "logs", ".snakemake", ".dvc/cache", ".dvc/tmp", "mlflow.db",
               "mlartifacts", ".pytest_cache", ".ruff_cache", "pipeline.egg-info", "dvc.lock")

# The smallest grid that still has two methods (so "only the edited method reruns" can be observed) and
# exercises every stage, transfer and a direct ImageNet search included, on the smallest networks the
# schema allows. Tracking is off (each test that tracks turns it on); resources stay small so a one-node
# SLURM cluster fits them. It is also a two-space grid: darts_2nd searches S3 of Zela et al. (none, skip,
# sep_conv_3x3 on every edge), a second CNN space.
TINY_METHODS = ("darts_1st", "darts_2nd")
TINY_SPACES = {"darts_1st": "darts", "darts_2nd": "s3"}
TINY_IMAGENET_METHODS = ("ddsas_imagenet",)
TINY: dict[str, Any] = {
    "grid": {"seeds": [0], "transfer": True},
    "search": {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8, "layers": 3, "channels": 4,
               "analysis": {"hessian_every": 0},
               "methods": {name: {"space": space} for name, space in TINY_SPACES.items()}},
    "retrain": {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8, "layers": 3, "channels": 4},
    "transfer": {"epochs": 1, "max_steps_per_epoch": 2, "batch_size": 8, "layers": 3, "channels": 4,
                 "image_size": 16},
    "resources": {stage: {"gpu": 0, "mem_mb": 1000, "runtime": 15, "cpus_per_task": 1}
                  for stage in ("prepare", "search", "derive", "retrain", "transfer", "tables")},
}


# The recurrent sub-grid of the Snakemake fixture run and of the DVC repro test (never_stale's runs leave it
# out): the demo's variant searched on the demo corpus and transferred to the second one, on the smallest
# language models (3 nodes; the search's BatchNorm statistics need a few steps before evaluation).
TINY_RNN_METHOD = "rnn_darts_1st"
_TINY_LM = {"epochs": 1, "size": 4, "batch_size": 4, "max_steps_per_epoch": 2}


def tiny_rnn_edit() -> dict[str, Any]:
    """The params edit adding the tiny recurrent sub-grid to a tiny params file."""
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())["search"]["methods"][TINY_RNN_METHOD]
    spec = deep_update(shipped, {"overrides": {"epochs": 1, "max_steps_per_epoch": 6, "batch_size": 4,
                                               "channels": 4, "nodes": 3}})
    return {"grid": {"rnn": {"datasets": ["text_demo"], "methods": [TINY_RNN_METHOD], "transfer": True,
                             "transfer_to": "text_demo2"}},
            "search": {"methods": {TINY_RNN_METHOD: spec}},
            "prepare": {"text_demo": {"vocab_size": 300}},
            "language_model": {"retrain": _TINY_LM, "transfer": _TINY_LM}}


# The edit that adds a NAS-Bench-201 sub-grid to the tiny grid: the demo's GDAS variant on digits, searched,
# derived and retrained. Only the fixture runs of Snakemake and DVC take it (never_stale's runs do not).
_SHIPPED_METHODS = yaml.safe_load((REPO / "params.yaml").read_text())["search"]["methods"]
TINY_NB201: dict[str, Any] = {
    "grid": {"nb201": {"datasets": ["digits"], "methods": ["gdas_nb201"], "retrain": True}},
    "search": {"methods": {"gdas_nb201": _SHIPPED_METHODS["gdas_nb201"]}},
}


def assert_nb201_cell_ran(root: Path) -> None:
    """The tiny NB201 cell searched on its own prepared data, derived an architecture string, was retrained,
    and its retrain's test accuracy is the NB201 table's number."""
    from pipeline.space.genotype import load_genotype

    assert (root / "results/data/nb201/digits/manifest.json").is_file()
    arch = load_genotype(root / "results/genotypes/digits/gdas_nb201/seed0.json")
    assert arch.search_space == "nb201"
    assert (root / "results/genotypes/digits/gdas_nb201/seed0.txt").read_text().strip() == arch.to_string()
    metrics = json.loads((root / "results/retrain/digits/gdas_nb201/seed0/metrics.json").read_text())
    rows = list(csv.DictReader((root / "results/tables/nb201_accuracy.csv").open()))
    (ours,) = [row for row in rows if row["method"] == "gdas_nb201"]
    assert (ours["status"], ours["evaluated_by"]) == ("ok", "retrain")
    assert abs(float(ours["digits_test_mean"]) - metrics["test_acc"]) < 1e-6  # the CSV keeps 10 digits


def _excluded(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _NOT_COPIED) or "__pycache__" in path


def repo_files() -> list[str]:
    """The checkout as git sees it: tracked files plus untracked ones that are not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()
    files = {p for p in out.split("\0") if p}
    return sorted(p for p in files if not _excluded(p) and (REPO / p).exists())


def copy_repo(dst: Path) -> Path:
    """Copy the checkout's files (not its results or environments) into `dst`."""
    for rel in repo_files():
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target, follow_symlinks=False)
    return dst


def write_params(root: Path, *edits: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite root/params.yaml with `edits` applied (in order); returns the new params."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for edit in edits:
        params = deep_update(params, edit)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def write_tiny_params(root: Path, *edits: Mapping[str, Any]) -> dict[str, Any]:
    """root/params.yaml as the tiny grid (then `edits`), defining only the grid's methods: the demo's other
    variants are validated against the search length (e.g. DrNAS stages must sum to the epochs)."""
    path = root / "params.yaml"
    params = narrowed([*TINY_METHODS, *TINY_IMAGENET_METHODS], TINY_IMAGENET_METHODS, source=path)
    for edit in (TINY, *edits):
        params = deep_update(params, edit)
    write_yaml(path, params)
    return params


def tool_env(**extra: str) -> dict[str, str]:
    """The environment of a workflow subprocess: this interpreter's tools first on PATH, no tracking
    server inherited from the developer's shell (each test chooses its own), and one torch thread per
    stage. Tests share a couple of cores with other work; torch's default of a thread per core then
    oversubscribes them several times over (a tiny search took 6x longer). Snakemake sets
    OMP_NUM_THREADS per job itself; DVC and direct stage runs rely on this."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra)
    return env


def run(cmd: Sequence[str], cwd: Path, timeout: int, env: Mapping[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `cmd` bounded by `timeout -k 30`; on failure (when `check`) the assertion shows its output."""
    proc = subprocess.run(
        ["timeout", "-k", "30", str(timeout), *cmd], cwd=cwd, env=dict(env or tool_env()),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode} in {cwd}\n"
            f"--- stdout (tail)\n{proc.stdout[-6000:]}\n--- stderr (tail)\n{proc.stderr[-6000:]}"
        )
    return proc


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_tables(params: Mapping[str, Any]) -> list[str]:
    """The table files the tables stage must write for `params`' grid (index.md included)."""
    grid = GridConfig.model_validate(params["grid"])
    names = [*grid.datasets, *(["imagenet"] if grid.trains_cells_on_imagenet() else [])]
    formats = params["tables"]["formats"]
    return [f"results/tables/{name}.{fmt}" for name in names for fmt in formats] + ["results/tables/index.md"]


def free_port() -> int:
    """A local TCP port that was free a moment ago (nothing listens there unless a test starts it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(home: Path, port: int | None = None) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 over the SQLite store home/mlflow.db; yields its URI.

    It runs in its own process group and is stopped by that group's id (the server forks workers). Leaving
    the block stops it, so a test can stop a server halfway and start another on the same store.
    """
    port = port or free_port()
    env = tool_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log_path = home / "server.log"
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mlflow server did not come up:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_each_variant_searched_its_space(root: Path) -> None:
    """The tiny grid's genotypes name the space their variant searched, and use only its operations."""
    from pipeline.space.genotype import load_genotype

    for name, space in TINY_SPACES.items():
        path = root / f"results/genotypes/digits/{name}/seed0.json"
        assert load_genotype(path).search_space == space, name  # loading checks each op against its edge
        summary = json.loads((root / f"results/search/digits/{name}/seed0/summary.json").read_text())
        assert summary["genotype"]["search_space"] == space, name
