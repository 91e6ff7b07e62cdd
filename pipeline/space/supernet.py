"""The search-time supernet: every candidate op on every edge, mixed by weights a method supplies.

The supernet holds network weights only. Mixing weights arrive with each forward as `ArchWeights`, so
the same network serves DARTS (softmax), DrNAS (Dirichlet samples), DDSAS (masked subspaces) and DATA
(multi-hot codes) without knowing which. An op whose weight is exactly zero on a step is not computed,
and `none` is never computed (its output is zero, so it adds nothing and carries no gradient), which is
what makes sampling methods cheaper per step than full DARTS.

Skipping a zero-weight op is exact for the forward value, but not always for gradients: a
straight-through weight (DATA) is 0 in the forward pass yet has gradient op(x), and the released codes
of SDARTS and DATA run every op, so their optimisers also see (zero) gradients of the unused ops.
`ArchWeights.compute_all` asks for every op but `none` on such steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import Protocol

import torch
from torch import nn

from pipeline.nets.cell import drop_path
from pipeline.space.base import ArchWeights, CellSpec
from pipeline.space.primitives import FactorizedReduce, ReLUConvBN, build_op
from pipeline.space.recompute import recomputed


def num_edges(nodes: int) -> int:
    """Edges of a cell with `nodes` intermediate nodes (each sees both inputs and all earlier nodes)."""
    return sum(range(2, nodes + 2))


def active_ops(weights: torch.Tensor, computable: torch.Tensor, compute_all: bool = False) -> list[list[int]]:
    """Per edge, the ops to compute: non-zero weight (every op with `compute_all`), never `none`
    (`computable`: the `[num_edges, num_candidates]` mask of the candidates that are not `none`).

    One device sync per cell type (none with `compute_all`).
    """
    mask = computable.clone() if compute_all else (weights != 0).cpu() & computable
    return [row.nonzero().flatten().tolist() for row in mask]


class EdgeWork(Protocol):
    """How the fast supernet computes the pieces of a mixed op (`MixedOp.forward`)."""

    def term(self, op: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """`weight * op(x)`."""

    def partial(self, x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`x[:, :channels]`, which enters the ops, and `x[:, channels:]`, which bypasses them (PC-DARTS)."""

    def parts(self, out: torch.Tensor, rest: torch.Tensor) -> list[torch.Tensor]:
        """The ops' sum and the bypassed channels as they are concatenated, in that order."""


class MixedOp(nn.Module):
    """All candidate ops of one edge; with `partial_k > 1` only the first C/K channels enter them."""

    def __init__(self, channels: int, stride: int, primitives: Sequence[str], partial_k: int = 1) -> None:
        super().__init__()
        if channels % partial_k:
            raise ValueError(f"partial_k={partial_k} does not divide {channels} channels")
        self.channels = channels
        self.stride = stride
        self.partial_k = partial_k
        self.primitives = tuple(primitives)
        op_channels = channels // partial_k
        self.ops = nn.ModuleList(build_op(p, op_channels, stride, affine=False, pool_bn=True) for p in primitives)
        # Bypassed channels must shrink with the edge on reduction edges (PC-DARTS uses a 2x2 max pool).
        self.bypass = nn.MaxPool2d(2, 2) if stride == 2 and partial_k > 1 else None
        # ScheduledDropPath during search (R-DARTS(DP)); `Supernet.set_drop_path` sets it each epoch.
        self.drop_prob = 0.0

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: Sequence[int],
                work: EdgeWork | None = None) -> torch.Tensor:
        """The edge's mixed output, each candidate's term `weight * op(op_input)` computed here or, given
        `work`, by it (the fast supernet's, which shares work between the edges leaving one state)."""
        k = self.partial_k
        c = self.channels // k
        op_input, rest = x, None
        if k > 1:
            op_input, rest = (x[:, :c], x[:, c:]) if work is None else work.partial(x, c)
        out: torch.Tensor | None = None
        for index in active:
            op = self.ops[index]
            y = weights[index] * op(op_input) if work is None else work.term(op, op_input, weights[index])
            out = y if out is None else out + y
        if out is None:
            out = op_input[:, :, :: self.stride, :: self.stride].mul(0.0)
        if rest is not None:
            rest = self.bypass(rest) if self.bypass is not None else rest
            # Interleave the K channel groups so the next slice sees other channels (torch's shuffle is
            # PC-DARTS' view-transpose-reshape, and keeps the fast supernet's channels-last layout).
            parts = [out, rest] if work is None else work.parts(out, rest)
            out = nn.functional.channel_shuffle(torch.cat(parts, dim=1), k)
        # R-DARTS drops each edge's whole mixed output, in training mode only (its Cell.forward).
        return drop_path(out, self.drop_prob) if self.training else out


class SearchCell(nn.Module):
    """A DARTS cell: two preprocessed inputs, `nodes` intermediate nodes, concat of the nodes.

    `spec` gives the candidates of each edge (S1 of Zela et al. has a different pair on every edge)."""

    def __init__(self, *, spec: CellSpec, c_prev_prev: int, c_prev: int, channels: int, reduction: bool,
                 reduction_prev: bool, partial_k: int = 1) -> None:
        super().__init__()
        nodes = len(spec.node_inputs)
        if spec.num_edges != num_edges(nodes):
            raise ValueError(f"cell '{spec.name}': {spec.num_edges} edges do not make a DARTS cell of {nodes} nodes")
        self.cell_type = spec.name
        self.reduction = reduction
        self.nodes = nodes
        self.preprocess0 = (
            FactorizedReduce(c_prev_prev, channels, affine=False)
            if reduction_prev
            else ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=False)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedOp(channels, 2 if reduction and j < 2 else 1, spec.edge_ops[num_edges(i) + j], partial_k)
            for i in range(nodes)
            for j in range(i + 2)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_weights: torch.Tensor | None, active: list[list[int]]) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            terms = []
            for j, state in enumerate(states):
                edge = offset + j
                y = self.edges[edge](state, weights[edge], active[edge])
                terms.append(y if edge_weights is None else edge_weights[edge] * y)
            offset += len(states)
            states.append(torch.stack(terms).sum(0) if len(terms) > 1 else terms[0])
        return torch.cat(states[-self.nodes :], dim=1)


class Supernet(nn.Module):
    """The one-shot network of the search phase (CIFAR stem, or the ImageNet 3-conv stride-8 stem)."""

    def __init__(self, *, channels: int, num_classes: int, layers: int, cells: Sequence[CellSpec],
                 stem_multiplier: int = 3, in_channels: int = 3, partial_k: int = 1,
                 stem: str = "cifar", recompute: bool = False) -> None:
        super().__init__()
        # Keep only each cell's inputs for backward and recompute the rest there (search.recompute).
        self.recompute = recompute
        specs = {spec.name: spec for spec in cells}
        if set(specs) != {"normal", "reduce"}:
            raise ValueError(f"a DARTS supernet needs cell types normal and reduce, got {sorted(specs)}")
        self.cell_specs = specs
        self.nodes = nodes = len(specs["normal"].node_inputs)
        self.layers = layers
        # Per cell type, the candidates that may be computed: never `none` (its output is zero).
        self.computable = {name: spec.mask(lambda op: op != "none") for name, spec in specs.items()}
        self.stem0: nn.Module
        self.stem1: nn.Module | None = None
        if stem == "cifar":
            c_stem = stem_multiplier * channels
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
            )
            c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, False
        elif stem == "imagenet":
            # Stride 4 then stride 2: the first cell gets inputs at 1/4 and 1/8 and treats s0 as reduced.
            # stem_multiplier x C wide, as the DrNAS, DDSAS and PC-DARTS ImageNet search codes build it (the
            # ImageNet evaluation network's stem is C wide; 1 gives that width here).
            c_stem = stem_multiplier * channels
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, c_stem // 2, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_stem // 2),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_stem // 2, c_stem, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_stem),
            )
            self.stem1 = nn.Sequential(
                nn.ReLU(inplace=False),  # s0 feeds the first cell too: it must not be modified in place
                nn.Conv2d(c_stem, c_stem, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_stem),
            )
            c_prev_prev, c_prev, reduction_prev = c_stem, c_stem, True
        else:
            raise ValueError(f"unknown stem '{stem}' (cifar | imagenet)")
        self.cells = nn.ModuleList()
        c_cur = channels
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_cur *= 2
            cell = SearchCell(spec=specs["reduce" if reduction else "normal"], c_prev_prev=c_prev_prev,
                              c_prev=c_prev, channels=c_cur, reduction=reduction, reduction_prev=reduction_prev,
                              partial_k=partial_k)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, nodes * c_cur
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    @property
    def num_edges(self) -> int:
        return num_edges(self.nodes)

    def set_drop_path(self, prob: float) -> None:
        """Drop each edge's output with probability `prob` in training forwards (0: never)."""
        for module in self.modules():
            if isinstance(module, MixedOp):
                module.drop_prob = prob

    def weights(self) -> Iterator[nn.Parameter]:
        """The network weights (the supernet owns no architecture parameters)."""
        return self.parameters()

    def forward(self, x: torch.Tensor, arch: ArchWeights) -> torch.Tensor:
        active = {name: active_ops(arch[name], mask, arch.compute_all) for name, mask in self.computable.items()}
        s0 = self.stem0(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        run = partial(recomputed, self.run_cell) if self.recompute and torch.is_grad_enabled() else self.run_cell
        for cell in self.cells:
            name = cell.cell_type
            s0, s1 = s1, run(cell, s0, s1, arch[name], arch.edge_scale(name), active[name])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def run_cell(self, cell: SearchCell, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                 edge_weights: torch.Tensor | None, active: list[list[int]]) -> torch.Tensor:
        """One cell on the ops `active` names (decided by the caller); the fast supernet overrides this."""
        return cell(s0, s1, weights, edge_weights, active)
