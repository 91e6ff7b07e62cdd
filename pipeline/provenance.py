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
# What running the pipeline itself writes into the checkout: the results (the demo's are committed for
# `dvc metrics show/diff`) and DVC's lock file. A run rewriting them does not make its code dirty.
OWN_OUTPUTS = ("results", "dvc.lock")


@functools.cache
def git_commit() -> str:
    """The commit of the checkout that runs the code, with `+dirty` when tracked files other than the
    pipeline's own outputs (OWN_OUTPUTS) are modified: code, params, workflow files."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             *(f":(exclude){path}" for path in OWN_OUTPUTS)],
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
               seed: int | None = None, threads: int | None = None) -> dict[str, Any]:
    """The provenance record stored in every output of a stage.

    `threads` is the intra-op thread count a training stage computed with (runtime.threads): the numbers
    are bit-identical only for the same params, device and thread count, so the record says which.
    """
    return {
        "stage": stage,
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "git_commit": git_commit(),
        "params_sha256": params_sha256(params_slice),
        "threads": threads,
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
