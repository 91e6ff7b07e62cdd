"""Provenance: which params, seed and commit produced an artefact."""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent


@functools.cache
def git_commit() -> str:
    """The commit of the checkout that runs the code, with `+dirty` when tracked files are modified."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=_REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def params_sha256(obj: Any) -> str:
    """A stable hash of a (JSON-serialisable) params slice: same values, same hash."""
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def provenance(stage: str, params_slice: Any, *, dataset: str | None = None, method: str | None = None,
               seed: int | None = None) -> dict[str, Any]:
    """The provenance record stored in every output of a stage."""
    return {
        "stage": stage,
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "git_commit": git_commit(),
        "params_sha256": params_sha256(params_slice),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
