"""Where a failed stage says why: the one rule the CLI (writer) and the tables (reader) share."""

from __future__ import annotations

from pathlib import Path


def failure_marker(out: Path) -> Path:
    """FAILED.json inside an output directory; `<stem>.FAILED.json` beside an output file (a genotype)."""
    return out.with_suffix(".FAILED.json") if out.suffix else out / "FAILED.json"
