"""`python -m pipeline tables`: the papers' tables and figures from the metrics files of the run grid.

`--params params.yaml --results results --out results/tables --figures results/figures` reads the grid
(params `grid`, the variants' options under `search.methods`) and `tables.formats`, and writes
`{dataset}.md|csv|tex` per searched dataset, `imagenet.*` when the grid transfers or searches ImageNet
directly (grid.imagenet_methods), the DATA / DrNAS ablation tables when the grid ran them, PNG figures,
and `index.md`. Missing or failed runs appear in the tables' status column, never as a silent gap;
reruns over the same files are byte-identical.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from pipeline.config import Params, load_params
from pipeline.space.nb201.benchmark import Nb201Benchmark
from pipeline.tables import Grid, SubGrid, produce


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--results", default="results",
                        help="results root with search/, genotypes/, retrain/, transfer/ (default: results)")
    parser.add_argument("--out", default="results/tables",
                        help="directory for the tables and index.md (default: results/tables)")
    parser.add_argument("--figures", default="results/figures",
                        help="directory for the PNG figures (default: results/figures)")


def run(args: argparse.Namespace) -> int:
    from pipeline import tracking

    params = load_params(args.params)
    grid = grid_of(params)
    bench = open_benchmark(params)
    written = produce(Path(args.results), Path(args.out), Path(args.figures), grid,
                      params.tables.formats, use_graphviz=shutil.which("dot") is not None, bench=bench)
    # The tables and figures also become artifacts of one MLflow run, so the UI shows them beside the runs.
    slice_ = {"grid": params.grid.model_dump(mode="json"), "tables": params.tables.model_dump(mode="json"),
              "benchmark": {"nb201": params.benchmark.nb201,
                            "nb201_fingerprint": bench.fingerprint if bench is not None else ""}}
    with tracking.stage_run("tables", tracking.RunKey(), params=slice_, tags={}, tracking=params.tracking,
                            out_dir=Path(args.out)) as logger:
        for path in written:
            logger.log_artifact(path, artifact_path="figures" if path.suffix == ".png" else "tables")
    print(f"tables: wrote {len(written)} files; see {Path(args.out) / 'index.md'}")
    return 0


def open_benchmark(params: Params) -> Nb201Benchmark | None:
    """The NAS-Bench-201 archive of params benchmark.nb201, opened once for the whole stage (each architecture
    is then read and computed once), or None when none is configured or the grid runs no NB201 variant."""
    if not (params.benchmark.nb201 and params.grid.nb201.methods):
        return None
    return Nb201Benchmark(params.benchmark.nb201)


def grid_of(params: Params) -> Grid:
    """The tables' view of the grid: names, seeds, transfer, and each variant's options as plain data."""
    return Grid(
        datasets=tuple(params.grid.datasets),
        methods=tuple(params.grid.methods),
        seeds=tuple(params.grid.seeds),
        transfer=params.grid.transfer,
        method_specs={name: spec.model_dump(mode="json") for name, spec in params.search.methods.items()},
        imagenet_methods=tuple(params.grid.imagenet_methods),
        select=params.grid.select,
        nb201=SubGrid(tuple(params.grid.nb201.datasets), tuple(params.grid.nb201.methods),
                      retrain=params.grid.nb201.retrain),
        rnn=SubGrid(tuple(params.grid.rnn.datasets), tuple(params.grid.rnn.methods),
                    transfer_to=params.grid.rnn.transfer_to if params.grid.rnn.transfer else None,
                    select=params.grid.rnn.select),
    )
