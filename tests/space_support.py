"""Small builders for tests that drive the DARTS CNN space directly (supernets, methods, mixing weights)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

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


class KernelLayouts(TorchDispatchMode):
    """Records the memory layout ("nchw", "channels-last", or "strided": dense in neither) of the 4-d
    tensors the aten ops of `watched` receive at the given argument positions while active (activations
    and their gradients, not weights): which layout the kernels really ran in, forward and backward. A
    tensor contiguous in both layouts is not recorded."""

    def __init__(self, watched: dict[Any, tuple[int, ...]]) -> None:
        super().__init__()
        self.watched = watched
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        for position in self.watched.get(func.overloadpacket, ()):
            tensor = args[position]
            if not (isinstance(tensor, torch.Tensor) and tensor.dim() == 4):
                continue
            nchw, channels_last = tensor.is_contiguous(), tensor.is_contiguous(memory_format=torch.channels_last)
            if not (nchw and channels_last):
                self.seen.append("nchw" if nchw else "channels-last" if channels_last else "strided")
        return func(*args, **(kwargs or {}))


@contextmanager
def kept_tensors() -> Iterator[list[torch.Tensor]]:
    """Every tensor autograd keeps for a backward pass while the block runs."""
    kept: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        kept.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield kept
