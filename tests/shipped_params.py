"""The shipped params.yaml narrowed to the method variants a test runs: where every test configuration starts.

Tests shrink the demo instead of writing params files from scratch, so they follow the schema as it grows.
The narrowing lives here once: params.yaml cross-references its method variants (grid.methods,
grid.imagenet_methods, retrain.method_overrides, transfer.method_overrides), and every copy of that logic
broke when one was added.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

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
    variants), with tracking off. Those in `imagenet_methods` are searched directly on ImageNet, those the
    source lists in a sub-grid (grid.nb201, grid.rnn) stay there; the rest form grid.methods."""
    raw = yaml.safe_load(source.read_text())
    shipped = raw["search"]["methods"]
    specs = dict(methods) if isinstance(methods, Mapping) else {name: shipped[name] for name in methods}
    direct = list(imagenet_methods)
    # A variant of a sub-grid (grid.nb201, grid.rnn) stays there, if it is among `methods`.
    subgrids = {key: raw["grid"][key]["methods"] for key in ("nb201", "rnn") if key in raw["grid"]}
    in_subgrid = {name for names in subgrids.values() for name in names}
    raw["grid"]["methods"] = [name for name in specs if name not in direct and name not in in_subgrid]
    raw["grid"]["imagenet_methods"] = direct
    raw["search"]["methods"] = specs
    for key, names in subgrids.items():
        raw["grid"][key]["methods"] = [name for name in names if name in specs]
    for stage in ("retrain", "transfer"):
        overrides = raw[stage].get("method_overrides", {})
        raw[stage]["method_overrides"] = {name: value for name, value in overrides.items() if name in specs}
    raw["tracking"]["enabled"] = False
    return raw


def write_yaml(path: Path, raw: Mapping[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(dict(raw), sort_keys=False))
    return path
