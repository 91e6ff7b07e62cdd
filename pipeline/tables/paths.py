"""Where the stages put their outputs under `results/` (docs/architecture.md, "Results layout").

One place for the layout, so that the collector, the figures and the status messages agree on it.
"""

from __future__ import annotations

from pathlib import Path


def search_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "search" / dataset / method / f"seed{seed}"


def genotype_path(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "genotypes" / dataset / method / f"seed{seed}.json"


def retrain_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "retrain" / dataset / method / f"seed{seed}"


def transfer_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "transfer" / "imagenet" / dataset / method / f"seed{seed}"


def select_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
    return results / "select" / dataset / method / f"seed{seed}"
