"""Where the stages put their outputs under `results/` (docs/architecture.md, "Results layout").

One place for the layout, so that the collector, the figures and the status messages agree on it.
"""

from __future__ import annotations

from pathlib import Path


def failure_marker(out: Path) -> Path:
    """Where the CLI records a failed stage (pipeline/cli.py `failure_marker`): FAILED.json inside an
    output directory, `<stem>.FAILED.json` beside an output file (derive's genotype)."""
    return out.with_suffix(".FAILED.json") if out.suffix else out / "FAILED.json"


def search_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "search" / dataset / method / f"seed{seed}"


def genotype_path(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "genotypes" / dataset / method / f"seed{seed}.json"


def retrain_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "retrain" / dataset / method / f"seed{seed}"


def transfer_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "transfer" / "imagenet" / dataset / method / f"seed{seed}"
