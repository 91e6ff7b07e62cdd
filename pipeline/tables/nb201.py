"""The NAS-Bench-201 sub-grid's tables (grid.nb201): DrNAS / DDSAS Table 4, DrNAS Table 1 and Table 5.

A derived cell is evaluated by the benchmark (params benchmark.nb201) when one is configured and the
dataset is one of the benchmark's, else by our retrain's test accuracy (validation accuracy then stays
empty: the retrain has no validation split); the `evaluated by` column and the notes say which. Table
names start with `nb201_` so they never collide with the main grid's `{dataset}` tables.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.layout import genotype_path, retrain_dir, search_dir
from pipeline.space.nb201.anytime import ACCURACY_COLUMNS, query_histories
from pipeline.space.nb201.benchmark import Nb201Benchmark
from pipeline.tables.ablations import drnas_k, drnas_partial_table
from pipeline.tables.aggregate import COUNT_KEYS, counts, our_summary, seed_stats, status_text
from pipeline.tables.collect import collect_histories, read_json, search_fields
from pipeline.tables.figures import anytime_figure
from pipeline.tables.grid import Grid
from pipeline.tables.reference import NB201_OPTIMAL, paper_drnas_lambda, paper_nb201
from pipeline.tables.table import OURS, PAPER, PAPER_ONLY, SOURCE, Column, Table, typed_frame

# The datasets the benchmark has numbers for, named as our datasets are.
BENCHMARK_DATASETS = tuple(dict.fromkeys(column.rsplit("_", 1)[0] for column in ACCURACY_COLUMNS))
BENCHMARK = "benchmark"
RETRAIN = "retrain"
PREFIX = "nb201_"
# DrNAS' anchor strength in every experiment but its Table 5 (the table's caption: lambda = 1e-3).
DEFAULT_LAMBDA = 1e-3
RUN_KEYS = ("dataset", "method", "seed", "status", "reason", "evaluated_by", "arch", "valid_acc", "test_acc",
            "peak_memory_mb", "device")


def sub_grid_view(grid: Grid) -> Grid:
    """grid.nb201 as a grid of its own (its datasets and variants, the seeds), for the shared builders."""
    return Grid(datasets=grid.nb201.datasets, methods=grid.nb201.methods, seeds=grid.seeds, transfer=False,
                method_specs=grid.method_specs)


def collect_nb201_runs(results: Path, grid: Grid, bench: Nb201Benchmark | None) -> pd.DataFrame:
    """One row per (dataset, variant, seed) of grid.nb201: its derived architecture, valid/test accuracy (%)
    from the benchmark or the retrain, the search's peak memory and device; a status naming what is missing."""
    rows = []
    for dataset, method in grid.nb201.pairs():
        for seed in grid.seeds:
            rows.append(_run(results, grid, bench, dataset, method, seed))
    frame = pd.DataFrame(rows, columns=list(RUN_KEYS))
    return frame.astype(dict.fromkeys(["valid_acc", "test_acc", "peak_memory_mb"], "float64"))


def _run(results: Path, grid: Grid, bench: Nb201Benchmark | None, dataset: str, method: str,
         seed: int) -> dict[str, Any]:
    search = search_fields(search_dir(results, dataset, method, seed))
    summary = read_json(search_dir(results, dataset, method, seed) / "summary.json") or {}
    row: dict[str, Any] = {"dataset": dataset, "method": method, "seed": seed, "arch": None, "valid_acc": None,
                           "test_acc": None, "evaluated_by": None, "peak_memory_mb": search["peak_memory_mb"],
                           "device": summary.get("device")}
    genotype_file = genotype_path(results, dataset, method, seed)
    genotype = read_json(genotype_file)
    if genotype is None:
        return row | {"status": "missing", "reason": f"seed {seed}: missing {genotype_file.name}"}
    row["arch"] = genotype.get("arch")
    if bench is not None and dataset in BENCHMARK_DATASETS:
        accuracy = bench.query(str(row["arch"])).accuracy
        return row | {"status": "ok", "reason": "", "evaluated_by": BENCHMARK,
                      "valid_acc": accuracy[f"{dataset}_valid"], "test_acc": accuracy[f"{dataset}_test"]}
    metrics = read_json(retrain_dir(results, dataset, method, seed) / "metrics.json")
    if metrics is None:
        why = "retrain/metrics.json" if grid.nb201.retrain else "a benchmark for it (grid.nb201.retrain is off)"
        return row | {"status": "missing", "reason": f"seed {seed}: missing {why}"}
    return row | {"status": "ok", "reason": "", "evaluated_by": RETRAIN, "test_acc": metrics.get("test_acc")}


def nb201_tables(runs: pd.DataFrame, grid: Grid, bench: Nb201Benchmark | None) -> list[Table]:
    """Table 4 over the sub-grid's datasets, then DrNAS Table 1 and Table 5 per dataset where the grid ran
    variants differing in K or lambda."""
    if not grid.nb201.methods:
        return []
    view = sub_grid_view(grid)
    # Table 1 compares K at the anchor strength of every other DrNAS experiment (its Table 5 caption).
    at_default = dataclasses.replace(view, methods=tuple(
        method for method in view.methods
        if view.algorithm(method) != "drnas" or _lambda(view, method) == DEFAULT_LAMBDA))
    tables = [accuracy_table(runs, grid, bench)]
    for dataset in grid.nb201.datasets:
        partial = drnas_partial_table(runs, dataset, at_default)
        if partial is not None:
            tables.append(_as_nb201_partial(partial, runs, dataset, bench))
        anchor = drnas_lambda_table(runs, dataset, view, bench)
        if anchor is not None:
            tables.append(anchor)
    return tables


def _evaluation_note(runs: pd.DataFrame, bench: Nb201Benchmark | None) -> str:
    used = sorted(set(runs["evaluated_by"].dropna()))
    if not used:
        return "No cell has been evaluated yet."
    archive = "" if bench is None else f" {bench.path.name}, sha256 {bench.fingerprint[:16]}"
    how = {BENCHMARK: f"queried from the NAS-Bench-201 benchmark (params benchmark.nb201:{archive}; 200-epoch "
                      "accuracy, mean over the benchmark's seeds)",
           RETRAIN: "our retrain's test accuracy (retrain.space_overrides.nb201; no validation accuracy)"}
    return "Our accuracies: " + "; ".join(how[name] for name in used) + "."


def accuracy_table(runs: pd.DataFrame, grid: Grid, bench: Nb201Benchmark | None) -> Table:
    """DrNAS Table 4 / DDSAS Table 4: valid and test accuracy per dataset, mean ± std over seeds, our rows
    first, then the papers' rows (their baselines included) and the benchmark's optimum."""
    datasets = list(grid.nb201.datasets)
    rows: list[dict[str, Any]] = []
    for method in grid.nb201.methods:
        mine = runs[runs["method"] == method]
        row: dict[str, Any] = {"method": method, SOURCE: OURS, "reported_in": "ours",
                               "evaluated_by": ", ".join(sorted(set(mine["evaluated_by"].dropna()))) or None,
                               **counts(mine), "status": status_text(mine)}
        for dataset in datasets:
            on_dataset = mine[mine["dataset"] == dataset]
            row |= our_summary(on_dataset, f"{dataset}_valid", "valid_acc")
            row |= our_summary(on_dataset, f"{dataset}_test", "test_acc")
        rows.append(row)
    optimal = []
    for label, methods in paper_nb201().items():
        for method, entry in methods.items():
            row = {"method": method, SOURCE: PAPER, "reported_in": label, "status": PAPER_ONLY}
            for dataset in datasets:
                numbers = entry.get(dataset, {})
                for split in ("valid", "test"):
                    row[f"{dataset}_{split}_mean"] = numbers.get(split)
                    row[f"{dataset}_{split}_std"] = numbers.get(f"{split}_std")
            if any(row[f"{dataset}_{split}_mean"] is not None for dataset in datasets for split in ("valid", "test")):
                (optimal if method == NB201_OPTIMAL else rows).append(row)
    rows += optimal[:1]  # both papers quote the same optimum
    value_keys = [f"{dataset}_{split}_{stat}" for dataset in datasets for split in ("valid", "test")
                  for stat in ("mean", "std")]
    keys = ["method", SOURCE, "reported_in", "evaluated_by", *value_keys, *COUNT_KEYS, "status"]
    columns = [Column("method", "method", kind="text"), Column("from", "reported_in", kind="text"),
               Column("evaluated by", "evaluated_by", kind="text")]
    for dataset in datasets:
        columns += [Column(f"{dataset} valid (%)", f"{dataset}_valid_mean", std_key=f"{dataset}_valid_std",
                           better="higher"),
                    Column(f"{dataset} test (%)", f"{dataset}_test_mean", std_key=f"{dataset}_test_std",
                           better="higher")]
    columns += [Column("n", "n_finished", kind="ratio", total_key="n_planned"), Column("status", "status", kind="text")]
    return Table(
        name=f"{PREFIX}accuracy",
        title="NAS-Bench-201: accuracy of the derived cells (DrNAS Table 4, DDSAS Table 4)",
        notes=("Search and evaluation on the same dataset (task-specific, DrNAS Sec. 4.3); mean ± sample std "
               "over the seeds that finished; n = finished/planned seeds.",
               _evaluation_note(runs, bench),
               "Paper rows: DrNAS Table 4 and DDSAS Table 4 as printed (pipeline/reference/paper_results.yaml); "
               "`optimal` is the benchmark's best architecture on each dataset."),
        frame=typed_frame(rows, keys, integers=COUNT_KEYS, texts=("method", SOURCE, "reported_in", "evaluated_by",
                                                                  "status")),
        columns=tuple(columns),
    )


def _as_nb201_partial(table: Table, runs: pd.DataFrame, dataset: str, bench: Nb201Benchmark | None) -> Table:
    """The shared DrNAS Table 1 builder's table, named and annotated for the NB201 sub-grid: here the paper's
    numbers are the same space's."""
    devices = sorted(set(runs[runs["dataset"] == dataset]["device"].dropna()))
    return dataclasses.replace(
        table, name=f"{PREFIX}{table.name}",
        title=f"NAS-Bench-201, {dataset}: DrNAS accuracy and search memory vs partial channels K (DrNAS Table 1)",
        notes=(f"{_evaluation_note(runs, bench)} Mean ± sample std over the seeds that finished.",
               "Peak memory of the search (summary.json `peak_memory_mb`: the CUDA allocator's peak on a GPU, "
               f"the process's peak RSS on CPU), averaged over seeds; measured on {', '.join(devices) or 'n/a'}.",
               "Paper columns: DrNAS Table 1 (GPU memory); rows marked unverified in paper_results.yaml are "
               "an earlier transcription."))


def _lambda(view: Grid, method: str) -> float:
    return float(view.option(method, "reg_lambda"))


def drnas_lambda_table(runs: pd.DataFrame, dataset: str, view: Grid, bench: Nb201Benchmark | None) -> Table | None:
    """DrNAS Table 5: test accuracy per anchor strength lambda, beside the paper's CIFAR-10 numbers: the
    DrNAS variants of one partial-channel setting (drnas_k) that differ in `reg_lambda`."""
    by_k: dict[str, dict[str, float]] = {}
    for method in view.methods:
        if view.algorithm(method) == "drnas":
            by_k.setdefault(drnas_k(view, method), {})[method] = _lambda(view, method)
    varied = [group for group in by_k.values() if len(set(group.values())) > 1]
    if not varied:
        return None
    variants = {method: value for group in varied for method, value in group.items()}
    paper = {float(entry["lambda"]): entry for entry in paper_drnas_lambda()}
    rows: list[dict[str, Any]] = []
    for value in sorted(set(variants.values()) | set(paper)):
        beside = {"paper_accuracy": paper.get(value, {}).get("accuracy")}
        ours = [method for method, reg in variants.items() if reg == value]
        for method in ours:
            mine = runs[(runs["dataset"] == dataset) & (runs["method"] == method)]
            mean, std = seed_stats(mine, "test_acc")
            rows.append({"lambda": f"{value:g}", "method": method, SOURCE: OURS, "test_acc_mean": mean,
                         "test_acc_std": std, **counts(mine), **beside, "status": status_text(mine)})
        if not ours:
            rows.append({"lambda": f"{value:g}", SOURCE: PAPER, **beside, "status": PAPER_ONLY})
    keys = ["lambda", "method", SOURCE, "test_acc_mean", "test_acc_std", *COUNT_KEYS, "paper_accuracy", "status"]
    return Table(
        name=f"{PREFIX}drnas_lambda_{dataset}",
        title=f"NAS-Bench-201, {dataset}: DrNAS test accuracy vs anchor strength lambda (DrNAS Table 5)",
        notes=(f"{_evaluation_note(runs, bench)} Mean ± sample std over the seeds that finished.",
               "Paper column: DrNAS Table 5, CIFAR-10 (the paper labels only some of its lambdas; "
               "paper_results.yaml keeps those)."),
        frame=typed_frame(rows, keys, integers=COUNT_KEYS, texts=("lambda", "method", SOURCE, "status")),
        columns=(
            Column("lambda", "lambda", kind="text"),
            Column("method", "method", kind="text"),
            Column("test accuracy (%)", "test_acc_mean", std_key="test_acc_std", better="higher"),
            Column("n", "n_finished", kind="ratio", total_key="n_planned"),
            Column("paper accuracy, CIFAR-10 (%)", "paper_accuracy"),
            Column("status", "status", kind="text"),
        ),
    )


def anytime_figures(results: Path, grid: Grid, bench: Nb201Benchmark | None) -> list[tuple[str, bytes | None, str]]:
    """Per dataset of the sub-grid: the benchmark's test accuracy of the architecture derived after every
    search epoch (history.csv's genotype column), mean ± std over seeds per variant, beside the Hessian
    eigenvalue curve; (file name, PNG or None, why not)."""
    figures = []
    for dataset in grid.nb201.datasets:
        name = f"{PREFIX}anytime_{dataset}.png"
        if bench is None or dataset not in BENCHMARK_DATASETS:
            figures.append((name, None, f"no benchmark answers for {dataset} (params benchmark.nb201; it covers "
                                        f"{', '.join(BENCHMARK_DATASETS)})"))
            continue
        histories = collect_histories(results, sub_grid_view(grid), dataset)
        with_arch = histories.dropna(subset=["genotype"]) if "genotype" in histories else histories.iloc[0:0]
        queried = query_histories(with_arch[["method", "seed", "epoch", "genotype"]], bench)
        curves = queried.rename(columns={f"{dataset}_test": "benchmark_test_acc"})
        merged = histories.merge(curves[["method", "seed", "epoch", "benchmark_test_acc"]],
                                 on=["method", "seed", "epoch"], how="left")
        figures.append((name, anytime_figure(merged, list(grid.nb201.methods),
                                             f"NAS-Bench-201, {dataset}: anytime test accuracy and Hessian"),
                        f"no search history.csv of grid.nb201 on {dataset} has a genotype column"))
    return figures
