"""The tables stage: the papers' tables and figures as a pure function of the grid's result files.

collect.py reads the files into frames (one row per planned run, with ok / failed / missing and why),
build.py and ablations.py turn them into `Table`s beside the papers' numbers (reference.py), render.py
writes Markdown, CSV and LaTeX, figures.py and cells.py draw PNGs, produce.py ties it together.
Nothing here imports torch: the stage is quick and runs anywhere.
"""

from pipeline.tables.ablations import data_sampling_table, drnas_partial_table
from pipeline.tables.build import dataset_table, imagenet_table
from pipeline.tables.collect import collect_retrain_runs, collect_transfer_runs
from pipeline.tables.grid import Grid, SubGrid
from pipeline.tables.produce import build_tables, produce
from pipeline.tables.render import to_csv, to_latex, to_markdown
from pipeline.tables.table import Column, Table

__all__ = [
    "Column",
    "Grid",
    "SubGrid",
    "Table",
    "build_tables",
    "collect_retrain_runs",
    "collect_transfer_runs",
    "data_sampling_table",
    "dataset_table",
    "drnas_partial_table",
    "imagenet_table",
    "produce",
    "to_csv",
    "to_latex",
    "to_markdown",
]
