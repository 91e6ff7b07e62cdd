"""Provenance's git commit: `+dirty` for edited code or params, never for the outputs the pipeline writes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pipeline.provenance


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=root,
                          capture_output=True, text=True, check=True).stdout.strip()


def _commit_seen_by_the_package(root: Path) -> str:
    """git_commit() of the package copy in `root`, in a fresh interpreter (the answer is cached)."""
    code = "from pipeline.provenance import git_commit; print(git_commit())"
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"}).stdout.strip()


def test_outputs_the_pipeline_writes_do_not_make_a_run_dirty_but_edited_params_do(tmp_path: Path) -> None:
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline/__init__.py").write_text("")
    shutil.copy(pipeline.provenance.__file__, tmp_path / "pipeline/provenance.py")
    files = {"params.yaml": "seed: 0\n", "dvc.lock": "stages: {}\n", "results/search/summary.json": "{}\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "demo record")
    head = _git(tmp_path, "rev-parse", "HEAD")

    (tmp_path / "dvc.lock").write_text("stages: {search: {}}\n")
    (tmp_path / "results/search/summary.json").write_text('{"wall_time_s": 2.0}\n')
    assert _commit_seen_by_the_package(tmp_path) == head

    (tmp_path / "params.yaml").write_text("seed: 1\n")
    assert _commit_seen_by_the_package(tmp_path) == f"{head}+dirty"
