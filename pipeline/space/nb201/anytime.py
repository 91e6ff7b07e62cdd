"""Anytime curves: the benchmark accuracy of the architecture each search derived after every epoch.

A query is free, so the genotype column of every history.csv (one architecture string per epoch) turns
into the curve SDARTS and DrNAS plot beside the Hessian eigenvalue: test accuracy over search epochs,
mean and standard deviation over seeds, per method. The benchmark answers each distinct string once.
"""

from __future__ import annotations

import json

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.space.nb201.arch import Nb201Arch
from pipeline.space.nb201.benchmark import COLUMNS, Nb201Benchmark

ACCURACY_COLUMNS = tuple(column for column, _, _ in COLUMNS)


def _arch_of(cell: str, where: str) -> str:
    try:
        return Nb201Arch.from_string(json.loads(cell)["arch"]).to_string()
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PipelineError(f"{where}: genotype {cell!r} is not a NAS-Bench-201 architecture ({exc})") from None


def query_histories(histories: pd.DataFrame, bench: Nb201Benchmark) -> pd.DataFrame:
    """`histories` (method, seed, epoch, genotype per row: `collect_histories`) with the benchmark's
    accuracy columns of each row's architecture added."""
    if histories.empty:
        return histories.assign(**{column: pd.Series(dtype=float) for column in ACCURACY_COLUMNS})
    rows = []
    for row in histories.itertuples(index=False):
        where = f"{row.method} seed {row.seed} epoch {row.epoch}"
        rows.append(bench.query(_arch_of(row.genotype, where)).accuracy)
    return pd.concat([histories.reset_index(drop=True), pd.DataFrame(rows)], axis=1)


def anytime_curves(queried: pd.DataFrame, column: str = "cifar10_test") -> pd.DataFrame:
    """Per method and epoch: mean and sample standard deviation over seeds of `column` (std 0 for a
    single seed), and how many seeds reached that epoch."""
    if column not in ACCURACY_COLUMNS:
        raise ValueError(f"unknown accuracy column '{column}'; known: {list(ACCURACY_COLUMNS)}")
    grouped = queried.groupby(["method", "epoch"], sort=True)[column]
    curves = grouped.agg(mean="mean", std="std", seeds="count").reset_index()
    curves["std"] = curves["std"].fillna(0.0)
    return curves
