"""Command-line arguments shared by the stage commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file (default: params.yaml; the papers' settings: configs/paper.yaml)")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no tqdm progress bars")
