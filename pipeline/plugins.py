"""The `plugins:` key of params.yaml: a user's own spaces and methods, registered without editing the package.

Every stage command, and so every Snakemake and DVC job, reads its params file through `load_params`,
which imports these modules before validating anything else; their `@register_space` and
`@register_method` decorators then run in every process that needs them.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from pipeline.errors import ConfigError


def import_plugins(modules: Any, source: str) -> None:
    """Import each module named in `modules` (the raw `plugins` value of `source`)."""
    if not isinstance(modules, list):
        raise ConfigError(f"{source}: plugins: expected a list of module names, got {type(modules).__name__}")
    # `python -m` puts the working directory on sys.path; a Snakemake or DVC process may not.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for i, name in enumerate(modules):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: plugins[{i}]: expected a module name, got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"{source}: plugins[{i}]: cannot import module '{name}' ({exc}); it must be "
                              "importable from the working directory or PYTHONPATH") from None
