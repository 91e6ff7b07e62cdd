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
    runs = len(grid.datasets) * len(grid.methods) * len(grid.seeds)
    print(f"{args.params}: valid; grid {grid.datasets} x {grid.methods} x seeds {grid.seeds} = {runs} searches")
    return 0
