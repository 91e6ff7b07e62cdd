"""Command-line arguments shared by the stage commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file (default: params.yaml; the papers' settings: configs/paper.yaml)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bars")


def add_run_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the long-running stages (search, retrain, transfer)."""
    parser.add_argument("--allow-nan-skip", type=int, default=0, metavar="N",
                        help="skip up to N batches with a non-finite loss instead of stopping")
    parser.add_argument("--restart-on-change", action="store_true",
                        help="when --out holds a checkpoint written with other settings, set it aside and start "
                             "afresh (Snakemake and DVC pass this: they rerun a stage because its params changed); "
                             "without it such a checkpoint is refused")
    add_progress_argument(parser)
