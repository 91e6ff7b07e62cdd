"""Fixtures of the workflow tests (the helpers live in workflow_support.py), and the tracking load
figures, printed after pytest's own summary."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from workflow_support import copy_repo, write_tiny_params


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository whose params.yaml holds the tiny grid."""
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    write_tiny_params(root)
    return root


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # Only a selection that ran the load tests has figures to print.
    load = sys.modules.get("test_tracking_load")
    for line in getattr(load, "FIGURES", []):
        terminalreporter.write_line(line)
