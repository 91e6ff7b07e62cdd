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

REPO = Path(__file__).resolve().parents[1]
# Variants of this space run in grid.rnn, not grid.methods (pipeline/space/rnn, SearchSpace.subgrid).
RECURRENT_SPACE = "rnn"


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
    variants), with tracking off. Those in `imagenet_methods` are searched directly on ImageNet; the
    rest form grid.methods."""
    raw = yaml.safe_load(source.read_text())
    shipped = raw["search"]["methods"]
    specs = dict(methods) if isinstance(methods, Mapping) else {name: shipped[name] for name in methods}
    direct = list(imagenet_methods)
    recurrent = [name for name, spec in specs.items() if spec.get("space") == RECURRENT_SPACE]
    raw["grid"]["methods"] = [name for name in specs if name not in direct and name not in recurrent]
    raw["grid"]["imagenet_methods"] = direct
    if "rnn" in raw["grid"]:  # without recurrent variants, no corpus to prepare either
        raw["grid"]["rnn"]["methods"] = recurrent
        raw["grid"]["rnn"]["datasets"] = raw["grid"]["rnn"]["datasets"] if recurrent else []
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
