"""The tables stage end to end: collect, build, render, draw, write, index.

Everything is derived from (results tree, grid) with stable ordering and no timestamps, so a rerun over
the same files writes byte-identical outputs, and DVC/Snakemake see no change when nothing changed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.atomic import atomic_write_bytes, atomic_write_text
from pipeline.errors import PipelineError
from pipeline.layout import genotype_path, retrain_dir, search_dir, text_transfer_dir
from pipeline.tables.ablations import data_sampling_table, drnas_partial_table
from pipeline.tables.build import dataset_table, imagenet_table
from pipeline.tables.cells import CELL_TYPES, cells_figure
from pipeline.tables.collect import (
    collect_histories,
    collect_lm_runs,
    collect_retrain_runs,
    collect_transfer_runs,
    read_arch_weights,
    read_json,
)
from pipeline.tables.figures import (
    accuracy_figure,
    arch_weights_figure,
    error_vs_paper_figure,
    hessian_figure,
    perplexity_figure,
)
from pipeline.tables.grid import Grid
from pipeline.tables.language_model import perplexity_table, selected_seeds, table_name
from pipeline.tables.nb201 import Nb201Benchmark, anytime_figures, collect_nb201_runs, nb201_tables
from pipeline.tables.render import to_csv, to_latex, to_markdown
from pipeline.tables.robustness import drnas_table6, param_free_table, robustness_error_table
from pipeline.tables.table import Table

WRITERS: dict[str, Callable[[Table], str]] = {"md": to_markdown, "csv": to_csv, "tex": to_latex}


@dataclass(frozen=True)
class Figures:
    """Figure file names written, and (file name, why not) for those whose inputs do not exist."""

    written: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def build_tables(results: Path, grid: Grid, bench: Nb201Benchmark | None = None) -> list[Table]:
    """Per dataset its error table and any ablation table, the S1-S4 tables when the grid searches those
    spaces, then ImageNet when the grid trains cells on it, then the NAS-Bench-201 sub-grid's tables
    (`bench`: the benchmark the derived cells are queried in, None: our retrain evaluates them)."""
    runs = collect_retrain_runs(results, grid)
    tables: list[Table] = []
    for dataset in grid.datasets:
        tables.append(dataset_table(runs, dataset, grid))
        tables += [table for table in (data_sampling_table(runs, dataset, grid),
                                       drnas_partial_table(runs, dataset, grid)) if table is not None]
    tables += [table for build in (robustness_error_table, param_free_table, drnas_table6)
               if (table := build(runs, results, grid)) is not None]
    if grid.transfer_pairs():
        tables.append(imagenet_table(collect_transfer_runs(results, grid), grid))
    tables += nb201_tables(collect_nb201_runs(results, grid, bench), grid, bench)
    return tables + lm_tables(results, grid)


def lm_tables(results: Path, grid: Grid) -> list[Table]:
    """The recurrent sub-grid's perplexity tables: per search corpus, and per corpus transferred from."""
    rnn = grid.rnn
    if not rnn.methods:
        return []
    runs = collect_lm_runs(results, grid)
    chosen = {corpus: selected_seeds(results, corpus, grid) if rnn.select else None for corpus in rnn.datasets}
    tables = [perplexity_table(runs[runs["dataset"] == corpus], corpus, grid, selected=chosen[corpus])
              for corpus in rnn.datasets]
    if rnn.transfer_to:
        moved = collect_lm_runs(results, grid, rnn.transfer_to)
        tables += [perplexity_table(moved[moved["dataset"] == corpus], rnn.transfer_to, grid, searched_on=corpus,
                                    selected=chosen[corpus])
                   for corpus in rnn.datasets]
    return tables


def produce(results: Path, out: Path, figures_dir: Path, grid: Grid, formats: Sequence[str],
            use_graphviz: bool, bench: Nb201Benchmark | None = None) -> list[Path]:
    """Write every table in `formats`, every figure whose inputs exist, and index.md; return the paths."""
    tables = build_tables(results, grid, bench)
    written = []
    for table in tables:
        for fmt in formats:
            path = out / f"{table.name}.{fmt}"
            atomic_write_text(path, WRITERS[fmt](table))
            written.append(path)
    figures_dir.mkdir(parents=True, exist_ok=True)  # a declared output of the workflow, even when empty
    figures = draw_figures(results, figures_dir, grid, {table.name: table for table in tables}, use_graphviz,
                           bench)
    written += [figures_dir / name for name in figures.written]
    link = Path(os.path.relpath(figures_dir, out)).as_posix()
    atomic_write_text(out / "index.md", index_markdown(grid, tables, formats, figures, link))
    return [*written, out / "index.md"]


def draw_figures(results: Path, figures_dir: Path, grid: Grid, tables: dict[str, Table],
                 use_graphviz: bool, bench: Nb201Benchmark | None = None) -> Figures:
    """Every figure of every dataset; a figure without inputs is skipped with the reason."""
    pending: list[tuple[str, bytes | None, str]] = []
    for dataset in grid.datasets:
        histories = collect_histories(results, grid, dataset)
        methods = list(grid.methods)
        pending += [
            (f"accuracy_{dataset}.png", accuracy_figure(histories, methods, f"{dataset}: search accuracy"),
             f"no search history.csv of {dataset} has valid_acc values"),
            (f"hessian_{dataset}.png",
             hessian_figure(histories, methods, f"{dataset}: dominant Hessian eigenvalue (mean ± std)"),
             f"no search history.csv of {dataset} has hessian_eig values"),
            (f"error_vs_paper_{dataset}.png",
             error_vs_paper_figure(tables[dataset].frame, f"{dataset}: test error, ours vs paper"),
             f"no finished retrain run on {dataset}"),
        ]
    pending += _perplexity_figures(results, grid)
    pending += anytime_figures(results, grid, bench)
    for dataset, method in grid.search_pairs():
        for seed in grid.seeds:
            pending += _run_figures(results, dataset, method, seed, use_graphviz)
    written, skipped = [], []
    for name, png, reason in pending:
        if png is None:
            skipped.append((name, reason))
        else:
            atomic_write_bytes(figures_dir / name, png)
            written.append(name)
    return Figures(tuple(written), tuple(skipped))


def index_markdown(grid: Grid, tables: list[Table], formats: Sequence[str], figures: Figures,
                   link: str) -> str:
    """index.md: the grid, the tables (with a link per format), the figures, and what was skipped and why."""
    lines = [
        "# Tables and figures",
        "",
        f"Grid: datasets {', '.join(grid.datasets)}; methods {', '.join(grid.methods)}; "
        f"seeds {', '.join(map(str, grid.seeds))}; ImageNet transfer: {'yes' if grid.transfer else 'no'}; "
        f"searched directly on ImageNet: {', '.join(grid.imagenet_methods) or 'none'}.",
        *([f"Recurrent sub-grid: corpora {', '.join(grid.rnn.datasets)}; methods {', '.join(grid.rnn.methods)}; "
           f"transferred to: {grid.rnn.transfer_to or 'none'}."] if grid.rnn.methods else []),
        "",
        "## Tables",
        "",
        *(f"- {table.title}: " + ", ".join(f"[{fmt}]({table.name}.{fmt})" for fmt in formats)
          for table in tables),
        "",
        "## Figures",
        "",
        *(f"- [{name}]({link}/{name})" for name in figures.written),
    ]
    if not figures.written:
        lines.append("- none: no run has the inputs of any figure yet")
    if figures.skipped:
        lines += ["", "## Figures not produced", ""]
        lines += [f"- {name}: {reason}" for name, reason in figures.skipped]
    lines += ["", "_Generated by `python -m pipeline tables`; do not edit._", ""]
    return "\n".join(lines)


def _perplexity_figures(results: Path, grid: Grid) -> list[tuple[str, bytes | None, str]]:
    """Validation perplexity curves of the recurrent sub-grid's language models, per corpus trained on."""
    rnn, pending = grid.rnn, []
    stages = [("retrain", None)] + ([("transfer", rnn.transfer_to)] if rnn.transfer_to else [])
    which = "the selected seed" if rnn.select else "mean ± std"
    for corpus in rnn.datasets if rnn.methods else []:
        for what, target in stages:
            histories = lm_histories(results, grid, corpus, target)
            name = table_name(target or corpus, corpus if target else None)
            title = f"{target or corpus}: validation perplexity ({what} of the cells searched on {corpus}; {which})"
            pending.append((f"{name}.png", perplexity_figure(histories, list(rnn.methods), title),
                            f"no {what} history.csv of the cells searched on {corpus}"))
    return pending


def lm_histories(results: Path, grid: Grid, corpus: str, target: str | None) -> pd.DataFrame:
    """The history.csv files of the language models of the cells searched on `corpus`, trained on it (target
    None) or on `target`: every seed's, or with grid.rnn.select only each variant's selected seed's, as in
    the tables."""
    def run_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
        return (retrain_dir(results, dataset, method, seed) if target is None
                else text_transfer_dir(results, target, dataset, method, seed))
    histories = collect_histories(results, grid, corpus, methods=grid.rnn.methods, run_dir=run_dir)
    if not grid.rnn.select:
        return histories
    chosen = selected_seeds(results, corpus, grid)
    return histories[[chosen.get(method) == seed for method, seed in zip(histories["method"], histories["seed"],
                                                                           strict=True)]]


def _run_figures(results: Path, dataset: str, method: str, seed: int,
                 use_graphviz: bool) -> list[tuple[str, bytes | None, str]]:
    """The architecture-weight heat map and the cell diagram of one run."""
    stem = f"{dataset}_{method}_seed{seed}"
    title = f"{dataset} / {method} / seed {seed}"
    weights_path = search_dir(results, dataset, method, seed) / "arch_weights.jsonl"
    genotype_file = genotype_path(results, dataset, method, seed)
    genotype = read_json(genotype_file)
    diagram = genotype is None or all(cell in genotype for cell in CELL_TYPES)
    try:
        cells = cells_figure(genotype, title, use_graphviz) if genotype is not None and diagram else None
    except PipelineError as exc:
        raise PipelineError(f"{genotype_file}: {exc}") from None
    no_cells = (f"no {genotype_file.relative_to(results).as_posix()}" if diagram
                else f"a {genotype.get('search_space')} genotype is no DARTS cell pair; see its .txt / JSON")
    return [
        (f"arch_weights_{stem}.png", arch_weights_figure(read_arch_weights(weights_path), title),
         f"no {weights_path.relative_to(results).as_posix()}"),
        (f"cells_{stem}.png", cells, no_cells),
    ]
