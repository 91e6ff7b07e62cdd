"""The papers' ablations, when the grid ran them: DATA's sampling times M, DrNAS's partial channels K.

A table appears only when the grid holds at least two variants that differ in the ablated setting; each of
our rows sits beside the paper's number at the same M or K, and the paper's other settings follow as
paper-only rows so the trend is visible.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipeline.tables.aggregate import COUNT_KEYS, counts, our_summary, seed_mean, status_text
from pipeline.tables.grid import Grid
from pipeline.tables.reference import paper_data_sampling, paper_drnas_partial
from pipeline.tables.table import OURS, PAPER, PAPER_ONLY, SOURCE, Column, Table, typed_frame

PROGRESSIVE = "progressive"


def data_sampling_table(runs: pd.DataFrame, dataset: str, grid: Grid) -> Table | None:
    """Test error and params vs DATA's sampling times M, beside DATA Table 5 (CIFAR-10)."""
    variants = {method: int(grid.option(method, "samples")) for method in grid.methods
                if grid.algorithm(method) == "data" and grid.option(method, "samples") is not None}
    if len(set(variants.values())) < 2:
        return None
    paper = {int(entry["M"]): entry for entry in paper_data_sampling()}
    rows: list[dict[str, Any]] = []
    for m in sorted(set(variants.values()) | set(paper)):
        entry = paper.get(m, {})
        beside = {"paper_error": entry.get("error"), "paper_params_m": entry.get("params")}
        ours = [method for method, samples in variants.items() if samples == m]
        rows += [{"M": str(m), "method": method, SOURCE: OURS, **_error_and_params(runs, dataset, method),
                  **beside} for method in ours]
        if not ours:
            rows.append({"M": str(m), SOURCE: PAPER, **beside, "status": PAPER_ONLY})
    keys = ["M", "method", SOURCE, "test_error_mean", "test_error_std", *COUNT_KEYS, "params_m",
            "paper_error", "paper_params_m", "status"]
    return Table(
        name=f"data_sampling_{dataset}",
        title=f"{dataset}: DATA, test error vs sampling times M",
        notes=("Our numbers: mean ± sample std over the seeds that finished; n = finished/planned seeds.",
               "Paper columns: DATA Table 5 on CIFAR-10 (pipeline/reference/paper_results.yaml, "
               "`data_sampling_times_cifar10`)."),
        frame=typed_frame(rows, keys, integers=COUNT_KEYS, texts=("M", "method", SOURCE, "status")),
        columns=(
            Column("M", "M", kind="text"),
            Column("method", "method", kind="text"),
            Column("test error (%)", "test_error_mean", std_key="test_error_std", better="lower"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("params (M)", "params_m", significant=2, better="lower"),
            Column("paper error, CIFAR-10 (%)", "paper_error"),
            Column("paper params, CIFAR-10 (M)", "paper_params_m"),
            Column("status", "status", kind="text"),
        ),
    )


def drnas_partial_table(runs: pd.DataFrame, dataset: str, grid: Grid) -> Table | None:
    """Test accuracy and search peak memory vs DrNAS's partial-channel K, beside DrNAS Table 1 (NB201)."""
    variants = {method: drnas_k(grid, method) for method in grid.methods if grid.algorithm(method) == "drnas"}
    if len(set(variants.values())) < 2:
        return None
    source, entries = paper_drnas_partial(dataset)
    paper = {str(entry["K"]): entry for entry in entries}
    rows: list[dict[str, Any]] = []
    for k in sorted(set(variants.values()) | set(paper), key=_k_order):
        entry = paper.get(k, {})
        beside = {"paper_accuracy": entry.get("accuracy"), "paper_std": entry.get("std"),
                  "paper_memory_mb": entry.get("memory_mb")}
        ours = [method for method, value in variants.items() if value == k]
        rows += [{"K": k, "method": method, SOURCE: OURS, **_accuracy_and_memory(runs, dataset, method),
                  **beside} for method in ours]
        if not ours:
            rows.append({"K": k, SOURCE: PAPER, **beside, "status": PAPER_ONLY})
    keys = ["K", "method", SOURCE, "test_acc_mean", "test_acc_std", *COUNT_KEYS, "peak_memory_mb",
            "paper_accuracy", "paper_std", "paper_memory_mb", "status"]
    return Table(
        name=f"drnas_partial_{dataset}",
        title=f"{dataset}: DrNAS, accuracy and search memory vs partial channels K",
        notes=("Our numbers: test accuracy, mean ± sample std over the seeds that finished; peak memory of "
               "the search (summary.json `peak_memory_mb`), averaged over seeds.",
               f"Paper columns are NAS-Bench-201 numbers ({source}), DrNAS Table 1, not the DARTS space: "
               "compare the trend, not the values."),
        frame=typed_frame(rows, keys, integers=COUNT_KEYS, texts=("K", "method", SOURCE, "status")),
        columns=(
            Column("K", "K", kind="text"),
            Column("method", "method", kind="text"),
            Column("test accuracy (%)", "test_acc_mean", std_key="test_acc_std", better="higher"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("peak memory (MB)", "peak_memory_mb", decimals=0, better="lower"),
            Column(f"paper accuracy, NB201 {source} (%)", "paper_accuracy", std_key="paper_std"),
            Column("paper memory, NB201 (MB)", "paper_memory_mb", decimals=0),
            Column("status", "status", kind="text"),
        ),
    )


def drnas_k(grid: Grid, method: str) -> str:
    """K of a DrNAS variant: "progressive" when it has progressive stages, else its partial_k (1: full)."""
    if grid.option(method, "stages"):
        return PROGRESSIVE
    return str(grid.option(method, "partial_k") or 1)


def _k_order(k: str) -> tuple[int, int]:
    return (1, 0) if k == PROGRESSIVE else (0, int(k))


def _error_and_params(runs: pd.DataFrame, dataset: str, method: str) -> dict[str, Any]:
    mine = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
    return {**our_summary(mine, "test_error", "test_error"), **counts(mine),
            "params_m": seed_mean(mine, "params_m"), "status": status_text(mine)}


def _accuracy_and_memory(runs: pd.DataFrame, dataset: str, method: str) -> dict[str, Any]:
    mine = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
    return {**our_summary(mine, "test_acc", "test_acc"), **counts(mine),
            "peak_memory_mb": seed_mean(mine, "peak_memory_mb"), "status": status_text(mine)}
