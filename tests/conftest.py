"""Shared test fixtures, one torch thread per test process under xdist, and the evidence lines (tracking
load figures, fault tallies) printed after pytest's own summary, gathered from every worker process."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import pytest
import torch

# What each xdist worker reported at its end (`pytest_testnodedown`); empty without workers.
_FROM_WORKERS: list[dict[str, Any]] = []


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: `make test` runs one per core, so one thread each
        torch.set_num_threads(1)


def _evidence() -> dict[str, Any]:
    """This process's figures: the modules that make them are imported only where their tests ran."""
    faultlib = sys.modules.get("faultlib")
    load = sys.modules.get("test_tracking_load")
    return {"tally": dict(faultlib.TALLY.counts) if faultlib is not None else {},
            "figures": list(getattr(load, "FIGURES", []))}


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["evidence"] = _evidence()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    _FROM_WORKERS.append(getattr(node, "workeroutput", {}).get("evidence", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tally: Counter[str] = Counter()
    for evidence in [_evidence(), *_FROM_WORKERS]:
        for line in evidence.get("figures", []):
            terminalreporter.write_line(line)
        tally.update(evidence.get("tally", {}))
    if tally:
        from faultlib import summary_lines

        for line in summary_lines(tally):
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
