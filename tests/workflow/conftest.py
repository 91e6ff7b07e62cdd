"""Fixtures of the workflow tests (the helpers live in workflow_support.py); the tracking load figures are
printed by tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_support import copy_repo, write_tiny_params


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository whose params.yaml holds the tiny grid."""
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    write_tiny_params(root)
    return root

