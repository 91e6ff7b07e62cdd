"""Shared test fixtures and the fault module's summary lines, printed after pytest's own summary."""

from __future__ import annotations

import sys

import pytest
import torch


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # faultlib is imported only by the modules that inject faults; other selections print nothing.
    faultlib = sys.modules.get("faultlib")
    if faultlib is not None and faultlib.TALLY.counts:
        for line in faultlib.TALLY.summary():
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a whole module, its module-scoped fixtures included: on two shared cores more
    threads only add contention to the tiny networks, and bit-exact comparisons with child processes
    (run with OMP_NUM_THREADS=1) need the same thread count here."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
