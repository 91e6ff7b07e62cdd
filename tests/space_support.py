"""Small builders for tests that drive the DARTS CNN space directly (supernets, methods, mixing weights)."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import torch

from pipeline.space.base import ArchWeights, BoundSpace, CellSpec


def cnn_cells(primitives: Sequence[str], nodes: int = 4) -> tuple[CellSpec, CellSpec]:
    """Both DARTS cell types with `primitives` on every edge (node k + 2 has k + 2 inputs)."""
    edges = sum(range(2, nodes + 2))
    node_inputs = tuple(range(2, nodes + 2))
    return tuple(CellSpec(name, (tuple(primitives),) * edges, node_inputs)  # type: ignore[return-value]
                 for name in ("normal", "reduce"))


def bound(space: str = "darts", nodes: int = 4) -> BoundSpace:
    """A registered space bound to search settings with `nodes` intermediate nodes."""
    return BoundSpace.of(space, SimpleNamespace(nodes=nodes))


def arch(normal: torch.Tensor, reduce: torch.Tensor, normal_edges: torch.Tensor | None = None,
         reduce_edges: torch.Tensor | None = None, compute_all: bool = False) -> ArchWeights:
    """Mixing weights of the two DARTS cell types (edge scales of PC-DARTS optional)."""
    scales = None
    if normal_edges is not None or reduce_edges is not None:
        scales = {name: s for name, s in (("normal", normal_edges), ("reduce", reduce_edges)) if s is not None}
    return ArchWeights({"normal": normal, "reduce": reduce}, scales, compute_all)
