"""Session-wide hooks: only the fault module's summary lines, printed after pytest's own summary."""

from __future__ import annotations

import sys

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # faultlib is imported only by the modules that inject faults; other selections print nothing.
    faultlib = sys.modules.get("faultlib")
    if faultlib is not None and faultlib.TALLY.counts:
        for line in faultlib.TALLY.summary():
            terminalreporter.write_line(line)
