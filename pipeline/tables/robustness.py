"""The robustness tables on Zela et al.'s spaces S1-S4: SDARTS Table 4 (test error per space, dataset and
method), SDARTS Table 5 (share of parameter-free operations in the normal cells) and DrNAS Table 6 (its
CIFAR-10 slice of Table 4 with DrNAS).

A grid variant belongs to these tables when its `space` is one the paper section `simplified_spaces`
reports on; variants are named `<method>_<space>` or `<method>_<space>_<setting>`, and their row is the
`<method>` part (`r_darts_dp_s3_p4` -> `r_darts_dp`), which is how the paper numbers are keyed. Per
(dataset, method, space) one architecture counts, as in the papers: with `grid.select`, the (variant, seed)
whose short retrain (the select stage) scored the best validation accuracy (ties: the earlier variant,
then the lower seed), so R-DARTS' several regularisation strengths compete as Zela et al. let them; without
it, every finished (variant, seed), averaged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.layout import genotype_path
from pipeline.tables.aggregate import seed_mean, status_text
from pipeline.tables.collect import read_json
from pipeline.tables.grid import Grid
from pipeline.tables.reference import paper_simplified_param_free, paper_simplified_spaces
from pipeline.tables.selection import SELECTION_SCORES, select_best, selection_scores
from pipeline.tables.table import OURS, PAPER, PAPER_ONLY, SOURCE, Column, Table, typed_frame

DRNAS_TABLE6_METHODS = ("darts_2nd", "r_darts_dp", "r_darts_l2", "drnas")
_ACCURACY = SELECTION_SCORES["image"]
_SELECT_NOTE = ("Ours: per dataset, method and space, the architecture of the (variant, seed) whose short "
                "retrain (select stage, search validation half) scored best, as Zela et al. and SDARTS pick "
                "it; its full retrain's test error.")
_MEAN_NOTE = "Ours: mean over the finished seeds (grid.select is off, so no seed is singled out)."


def robust_spaces() -> tuple[str, ...]:
    """The spaces the papers' S1-S4 section reports on, in its order."""
    spaces: dict[str, None] = {}
    for methods in paper_simplified_spaces().values():
        for entry in methods.values():
            spaces.update(dict.fromkeys(key for key in entry if key != "source"))
    return tuple(spaces)


def paper_name(variant: str, space: str) -> str:
    """The paper's method name of a variant named `<method>_<space>` or `<method>_<space>_<setting>`."""
    head, found, tail = variant.partition(f"_{space}")
    return head if found and (not tail or tail.startswith("_")) else variant


def robust_variants(grid: Grid) -> list[tuple[str, str, str]]:
    """(variant, paper method name, space) of every grid variant on S1-S4, in grid order."""
    spaces = robust_spaces()
    return [(variant, paper_name(variant, space), space) for variant in grid.methods
            if (space := grid.option(variant, "space")) in spaces]


def _one_value(runs: pd.DataFrame, results: Path, grid: Grid, dataset: str, variants: list[str],
               per_seed: Callable[[pd.Series], float]) -> float:
    """The value of the selected (variant, seed) among `variants` (R-DARTS' regularisation strengths are
    variants of one method), or without selection the mean over every finished one."""
    mine = runs[(runs["dataset"] == dataset) & runs["method"].isin(variants)]
    values = {(variants.index(row["method"]), int(row["seed"])): per_seed(row) for _, row in mine.iterrows()}
    if not grid.select:
        return seed_mean(pd.DataFrame({"value": list(values.values())}), "value")
    scores = selection_scores(results, dataset, variants, grid.seeds, _ACCURACY)
    return values.get(select_best(scores, _ACCURACY), math.nan)


def _space_table(name: str, title: str, notes: tuple[str, ...], rows: list[dict[str, Any]],
                 spaces: tuple[str, ...], decimals: int) -> Table:
    keys = ["dataset", "method", SOURCE, *[key for s in spaces for key in (s, f"{s}_paper")], "status"]
    columns = [Column("dataset", "dataset", kind="text"), Column("method", "method", kind="text")]
    for space in spaces:
        columns += [Column(f"{space.upper()} ours", space, decimals=decimals, better="lower"),
                    Column(f"{space.upper()} paper", f"{space}_paper", decimals=decimals)]
    columns.append(Column("status", "status", kind="text"))
    frame = typed_frame(rows, keys, texts=("dataset", "method", SOURCE, "status"))
    return Table(name=name, title=title, notes=notes, frame=frame, columns=tuple(columns))


def _rows(runs: pd.DataFrame, results: Path, grid: Grid, datasets: tuple[str, ...],
          paper: Mapping[str, Mapping[str, Mapping[str, Any]]], per_seed: Callable[[pd.Series], float],
          keep: Callable[[str], bool] = lambda method: True) -> list[dict[str, Any]]:
    """One row per (dataset, paper method name): ours per space beside the paper's, then paper-only rows."""
    variants = robust_variants(grid)
    rows = []
    for dataset in datasets:
        methods = dict.fromkeys(m for _, m, _ in variants if keep(m))
        methods.update(dict.fromkeys(m for m in paper.get(dataset, {}) if keep(m)))
        for method in methods:
            row: dict[str, Any] = {"dataset": dataset, "method": method}
            statuses = []
            for space in robust_spaces():
                group = [variant for variant, name, on in variants if name == method and on == space]
                if not group:
                    continue
                row[space] = _one_value(runs, results, grid, dataset, group, per_seed)
                for variant in group:
                    text = status_text(runs[(runs["dataset"] == dataset) & (runs["method"] == variant)])
                    statuses += [] if text == "ok" else [f"{variant}: {text}"]
            entry = paper.get(dataset, {}).get(method, {})
            row |= {f"{space}_paper": entry.get(space) for space in robust_spaces()}
            ran = any(name == method for _, name, _ in variants)
            row[SOURCE] = OURS if ran else PAPER
            row["status"] = "; ".join(statuses) or ("ok" if ran else PAPER_ONLY)
            rows.append(row)
    return rows


def robustness_error_table(runs: pd.DataFrame, results: Path, grid: Grid) -> Table | None:
    """SDARTS Table 4: test error (%) per dataset and method on each of S1-S4, ours beside the paper's."""
    if not robust_variants(grid):
        return None
    rows = _rows(runs, results, grid, grid.datasets, paper_simplified_spaces(), lambda row: row["test_error"])
    return _space_table(
        "robustness_errors", "S1-S4: test error (%) of the selected architectures (SDARTS Table 4)",
        (_SELECT_NOTE if grid.select else _MEAN_NOTE,
         "Paper columns: pipeline/reference/paper_results.yaml, section `simplified_spaces` (empty where no "
         "source for the number was found; see the section's comments)."),
        rows, robust_spaces(), decimals=2)


def drnas_table6(runs: pd.DataFrame, results: Path, grid: Grid) -> Table | None:
    """DrNAS Table 6: CIFAR-10 test error (%) of DARTS, R-DARTS(DP)/(L2) and DrNAS on S1-S4."""
    if "cifar10" not in grid.datasets or not robust_variants(grid):
        return None
    rows = _rows(runs, results, grid, ("cifar10",), paper_simplified_spaces(), lambda row: row["test_error"],
                 keep=lambda method: method in DRNAS_TABLE6_METHODS)
    return _space_table(
        "robustness_drnas", "S1-S4 on CIFAR-10: test error (%) (DrNAS Table 6)",
        (_SELECT_NOTE if grid.select else _MEAN_NOTE,
         "Paper columns: pipeline/reference/paper_results.yaml, section `simplified_spaces`, `cifar10`."),
        rows, robust_spaces(), decimals=2)


def param_free_share(genotype: Mapping[str, Any]) -> float:
    """% of the normal cell's (operation, input) pairs whose operation has no weights."""
    from pipeline.space.primitives import PARAMETER_FREE  # torch: imported only for S1-S4 grids

    ops = [op for node in genotype["normal"] for op, _ in node]
    return 100.0 * sum(op in PARAMETER_FREE for op in ops) / len(ops)


def param_free_table(runs: pd.DataFrame, results: Path, grid: Grid) -> Table | None:
    """SDARTS Table 5: share (%) of parameter-free operations in the normal cells found on each space."""
    if not robust_variants(grid):
        return None

    def share(row: pd.Series) -> float:
        genotype = read_json(genotype_path(results, row["dataset"], row["method"], int(row["seed"])))
        return math.nan if genotype is None else param_free_share(genotype)

    paper = {"cifar10": paper_simplified_param_free()}
    rows = _rows(runs, results, grid, grid.datasets, paper, share)
    return _space_table(
        "robustness_param_free", "S1-S4: parameter-free operations in the normal cell (%) (SDARTS Table 5)",
        (_SELECT_NOTE.replace("its full retrain's test error", "its genotype") if grid.select else _MEAN_NOTE,
         "Parameter-free: none, noise, skip_connect, max/avg pooling. Paper columns (CIFAR-10 only): "
         "pipeline/reference/paper_results.yaml, `simplified_spaces_parameter_free_cifar10` (stated in SDARTS' "
         "text) and `..._released_cells_cifar10` (computed from the SDARTS authors' released cells)."),
        rows, robust_spaces(), decimals=1)
