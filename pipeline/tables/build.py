"""The main tables: test error per method on each searched dataset, and ImageNet transfer.

Pure functions from the collected run frames (collect.py) and the paper numbers (reference.py) to
`Table`s; writing and formatting live elsewhere.
"""

from __future__ import annotations

import pandas as pd

from pipeline.tables.aggregate import (
    COUNT_KEYS,
    GPU_DAYS,
    cost_unit,
    counts,
    our_summary,
    seed_mean,
    status_text,
)
from pipeline.tables.grid import Grid
from pipeline.tables.reference import paper_errors, paper_imagenet
from pipeline.tables.table import OURS, PAPER, PAPER_ONLY, SOURCE, Column, Table, typed_frame

IMAGENET = "imagenet"
_TEXT_KEYS = ("method", SOURCE, "searched_on", "search_cost_unit", "status")
_DATASET_KEYS = ["method", SOURCE, "test_error_mean", "test_error_std", "n_finished", "n_planned",
                 "best_seed_error", "params_m", "mult_adds_m", "search_cost_days", "search_cost_unit",
                 "paper_error", "paper_std", "paper_params_m", "paper_search_cost_gpu_days", "status"]
_IMAGENET_KEYS = ["searched_on", "method", SOURCE, "top1_mean", "top1_std", "top5_mean", "top5_std",
                  "n_finished", "n_planned", "params_m", "mult_adds_m", "search_cost_days",
                  "search_cost_unit", "status"]
_SEED_NOTE = ("Our numbers: mean ± sample std over the seeds that finished (std omitted for one seed); "
              "n = finished/planned seeds; status names every seed that is missing or failed.")
_COST_NOTE = ("Search cost: search wall time × device count / 86400 per seed, averaged over the seeds whose "
              "search finished; CPU-days when the search ran on CPU.")


def dataset_table(runs: pd.DataFrame, dataset: str, grid: Grid) -> Table:
    """One row per method variant of the grid, then the paper's other methods on `dataset`."""
    paper = paper_errors(dataset)
    rows = []
    for method in grid.methods:
        mine = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
        entry = paper.get(method, {})
        rows.append({
            "method": method, SOURCE: OURS,
            **our_summary(mine, "test_error", "test_error"), **counts(mine),
            "best_seed_error": mine["test_error"].min(),
            "params_m": seed_mean(mine, "params_m"), "mult_adds_m": seed_mean(mine, "mult_adds_m"),
            "search_cost_days": seed_mean(mine, "search_cost_days"), "search_cost_unit": cost_unit(mine),
            **_paper_columns(entry), "status": status_text(mine),
        })
    rows += [{"method": method, SOURCE: PAPER, **_paper_columns(entry), "status": PAPER_ONLY}
             for method, entry in paper.items() if method not in grid.methods]
    frame = typed_frame(rows, _DATASET_KEYS, integers=COUNT_KEYS, texts=_TEXT_KEYS)
    units = sorted({unit for unit in frame["search_cost_unit"] if isinstance(unit, str)})
    paper_note = (f"Paper columns: pipeline/reference/paper_results.yaml, section `{dataset}`."
                  if paper else f"The papers report no numbers on {dataset}.")
    return Table(
        name=dataset,
        title=f"{dataset}: test error of the derived architectures",
        notes=(_SEED_NOTE, _COST_NOTE, paper_note),
        frame=frame,
        columns=(
            Column("method", "method", kind="text"),
            Column("test error (%)", "test_error_mean", std_key="test_error_std", better="lower"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("best seed error (%)", "best_seed_error", better="lower"),
            Column("params (M)", "params_m", significant=2, better="lower"),
            Column("mult-adds (M)", "mult_adds_m", decimals=1, significant=2, better="lower"),
            # Bold the cheapest search only when all our searches are counted in the same unit.
            Column(f"search cost ({' / '.join(units) or GPU_DAYS})", "search_cost_days", significant=2,
                   better="lower" if len(units) <= 1 else None),
            Column("paper error (%)", "paper_error", std_key="paper_std"),
            Column("paper params (M)", "paper_params_m"),
            Column(f"paper cost ({GPU_DAYS})", "paper_search_cost_gpu_days"),
            Column("status", "status", kind="text"),
        ),
    )


DEMO_IMAGENET = "imagenet_demo"
_DEMO_NOTE = ("Our rows were trained on `imagenet_demo`, the offline stand-in that prepare writes from digits "
              "(10 classes of upscaled PNGs), not on ILSVRC2012: set data.imagenet_root to a real ImageNet tree.")


def imagenet_table(runs: pd.DataFrame, grid: Grid) -> Table:
    """ImageNet top-1/top-5 per (searched-on dataset, method): transferred cells, then cells searched
    directly on ImageNet, then the papers' mobile-setting rows."""
    rows = []
    for dataset, method in grid.transfer_pairs():
        mine = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
        rows.append({
            "searched_on": dataset, "method": method, SOURCE: OURS,
            **our_summary(mine, "top1", "top1_error"), **our_summary(mine, "top5", "top5_error"),
            **counts(mine),
            "params_m": seed_mean(mine, "params_m"), "mult_adds_m": seed_mean(mine, "mult_adds_m"),
            "search_cost_days": seed_mean(mine, "search_cost_days"), "search_cost_unit": cost_unit(mine),
            "status": status_text(mine),
        })
    rows += [{
        "searched_on": entry.get("searched_on"), "method": method, SOURCE: PAPER,
        "top1_mean": entry.get("top1"), "top5_mean": entry.get("top5"),
        "params_m": entry.get("params"), "mult_adds_m": entry.get("mult_adds"),
        "search_cost_days": entry.get("search_cost"), "search_cost_unit": GPU_DAYS, "status": PAPER_ONLY,
    } for method, entry in paper_imagenet().items()]
    frame = typed_frame(rows, _IMAGENET_KEYS, integers=COUNT_KEYS, texts=_TEXT_KEYS)
    demo = bool((runs["trained_on"] == DEMO_IMAGENET).any())
    return Table(
        name=IMAGENET,
        title="ImageNet: the searched cells in the mobile setting"
        + (" — ours on the offline demo stand-in" if demo else ""),
        notes=(_SEED_NOTE, _COST_NOTE, "Paper rows: pipeline/reference/paper_results.yaml, section "
                                       "`imagenet_mobile` (14 cells, C=48).")
        + ((_DEMO_NOTE,) if demo else ()),
        frame=frame,
        columns=(
            Column("searched on", "searched_on", kind="text"),
            Column("method", "method", kind="text"),
            Column("source", SOURCE, kind="text"),
            Column("top-1 error (%)", "top1_mean", std_key="top1_std", better="lower"),
            Column("top-5 error (%)", "top5_mean", std_key="top5_std", better="lower"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("params (M)", "params_m", significant=2, better="lower"),
            Column("mult-adds (M)", "mult_adds_m", decimals=1, significant=2, better="lower"),
            # No bold: rows mix CPU-days and GPU-days, and the paper's GPU-days are not ours.
            Column("search cost", "search_cost_days", significant=2),
            Column("cost unit", "search_cost_unit", kind="text"),
            Column("status", "status", kind="text"),
        ),
    )


def _paper_columns(entry: dict) -> dict[str, object]:
    return {"paper_error": entry.get("error"), "paper_std": entry.get("std"),
            "paper_params_m": entry.get("params"), "paper_search_cost_gpu_days": entry.get("search_cost")}
