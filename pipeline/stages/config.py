"""`python -m pipeline config`: validate a params file, or explain every key.

`--explain` prints each key with its default and description: the schema is the documentation.
"""

from __future__ import annotations

import argparse

from pipeline.config import explain, load_params
from pipeline.stages.common import add_params_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_params_argument(parser)
    parser.add_argument("--explain", action="store_true", help="print every key, its default and description")


def run(args: argparse.Namespace) -> int:
    if args.explain:
        print("\n".join(explain()))
        return 0
    params = load_params(args.params)
    grid = params.grid
    seeds = len(grid.seeds)
    parts = {
        "grid": (grid.datasets, grid.methods),
        "grid.imagenet_methods": (["imagenet"], grid.imagenet_methods),
        "grid.nb201": (grid.nb201.datasets, grid.nb201.methods),
        "grid.rnn": (grid.rnn.datasets, grid.rnn.methods),
    }
    counts = {key: len(datasets) * len(methods) * seeds for key, (datasets, methods) in parts.items()}
    print(f"{args.params}: valid; {sum(counts.values())} searches over seeds {grid.seeds}")
    for key, (datasets, methods) in parts.items():
        if counts[key]:
            print(f"  {key}: {datasets} x {methods} x {seeds} seeds = {counts[key]}")
    return 0
