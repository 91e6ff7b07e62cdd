"""A table as data: plain values for machines, display columns for people.

`frame` holds plain numbers (NaN where absent) and is what the CSV writer dumps, so downstream scripts
never parse "2.76 ± 0.09". `columns` say how Markdown and LaTeX show the same frame: which keys combine
into one cell (mean ± std, finished/planned), how many decimals, and which direction is better, so the
LaTeX writer can bold the best of our rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

SOURCE = "source"  # frame column: "ours" for reproduced rows, "paper" for reference-only rows
OURS = "ours"
PAPER = "paper"
PAPER_ONLY = "paper only"  # status of a reference-only row


@dataclass(frozen=True)
class Column:
    """One displayed column of a table."""

    header: str
    key: str
    kind: Literal["text", "number", "ratio"] = "number"
    decimals: int = 2
    significant: int = 0  # at least this many significant digits (tiny demo params/costs stay visible)
    std_key: str | None = None  # number: shown as "mean ± std" when the std exists
    total_key: str | None = None  # ratio: shown as "key/total_key"
    better: Literal["lower", "higher"] | None = None  # set: the best of our rows is bold in LaTeX


@dataclass(frozen=True)
class Table:
    """A named table: file stem, a caption, notes for the Markdown page, the values, the layout."""

    name: str
    title: str
    notes: tuple[str, ...]
    frame: pd.DataFrame
    columns: tuple[Column, ...]


def typed_frame(rows: list[dict[str, Any]], keys: Sequence[str], *, integers: Sequence[str] = (),
                texts: Sequence[str] = ()) -> pd.DataFrame:
    """A frame with fixed column order and dtypes: counts as nullable integers (CSV "2", not "2.0"),
    text columns as given, everything else as float (NaN where absent)."""
    frame = pd.DataFrame(rows, columns=list(keys))
    return frame.astype({key: "Int64" if key in integers else "float64" for key in keys if key not in texts})
