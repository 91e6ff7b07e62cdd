"""Tabular records written by the training stages: history CSVs and the numeric columns MLflow plots."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as CSV, columns in first-seen order (later rows may add analysis columns)."""
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def write_csv(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write_text(path, csv_text(rows))


def numeric(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric, finite columns of a row (what MLflow can plot)."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))}
