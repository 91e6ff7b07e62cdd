"""The shipped params.yaml narrowed to the method variants a test runs: where every test configuration starts.

Tests shrink the demo instead of writing params files from scratch, so they follow the schema as it grows.
The narrowing lives here once: params.yaml cross-references its method variants (grid.methods,
grid.imagenet_methods, grid.rnn.methods, retrain.method_overrides, transfer.method_overrides,
language_model.*.method_overrides), and every copy of that logic broke when one was added.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pipeline.space.base import get_space, list_spaces

REPO = Path(__file__).resolve().parents[1]


def deep_update(base: Mapping[str, Any], edits: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `edits` merged in, nested mappings key by key (an edit may touch one key)."""
    out = copy.deepcopy(dict(base))
    for key, value in edits.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def narrowed(methods: Mapping[str, Any] | Iterable[str], imagenet_methods: Iterable[str] = (),
             source: Path = REPO / "params.yaml") -> dict[str, Any]:
    """`source` (the shipped params.yaml) defining only `methods` (name -> spec, or names of shipped
    variants), with tracking off. Those in `imagenet_methods` are searched directly on ImageNet, those of the
    NB201 and recurrent spaces run in their sub-grid (grid.nb201, grid.rnn); the rest form grid.methods."""
    raw = yaml.safe_load(source.read_text())
    shipped = raw["search"]["methods"]
    specs = dict(methods) if isinstance(methods, Mapping) else {name: shipped[name] for name in methods}
    direct = list(imagenet_methods)
    # A variant of the NB201 or recurrent space runs in that sub-grid (SearchSpace.subgrid), the rest in grid.methods.
    subgrid = {name: _subgrid(spec.get("space", "darts")) for name, spec in specs.items()}
    raw["grid"]["methods"] = [name for name in specs if name not in direct and subgrid[name] is None]
    raw["grid"]["imagenet_methods"] = direct
    for key in ("nb201", "rnn"):
        names = [name for name in specs if name not in direct and subgrid[name] == key]
        raw["grid"][key]["methods"] = names
        if not names:  # without its variants, a sub-grid has no data to prepare either
            raw["grid"][key]["datasets"] = []
    raw["search"]["methods"] = specs
    sections = [raw[stage] for stage in ("retrain", "transfer")]
    language_model = raw.get("language_model", {})
    sections += [language_model[stage] for stage in ("retrain", "transfer") if stage in language_model]
    for section in sections:
        overrides = section.get("method_overrides", {})
        section["method_overrides"] = {name: value for name, value in overrides.items() if name in specs}
    raw["tracking"]["enabled"] = False
    return raw


def write_yaml(path: Path, raw: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(raw), sort_keys=False))
    return path


def _subgrid(space: str) -> str | None:
    """The sub-grid a space's variants run in; an unknown space (a test's misspelling, a plugin not yet
    imported) stays in grid.methods, where validation then reports it."""
    return get_space(space).subgrid if space in list_spaces() else None
