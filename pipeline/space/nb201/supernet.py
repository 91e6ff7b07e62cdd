"""The NAS-Bench-201 supernet: every candidate op on each of the cell's six edges, mixed by given weights.

Like the DARTS space's supernet it holds network weights only; the weights of the one searched cell type
(`"cell"`, shape `[6, candidates]`) arrive with every forward, and every cell of the network shares them (the
benchmark's search models keep one weight matrix for all cells). Ops with weight exactly 0 and `none`
are not computed (a node whose every term is skipped is zero). `partial_k > 1` sends only the first C/K
channels through the ops and shuffles the rest back (PC-DARTS, DrNAS' partial-channel NB201 runs).
The supernet's BN is not affine, as in the benchmark's search code; stem, reductions and the
classifier are as in the evaluation network.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.space.base import ArchWeights
from pipeline.space.nb201.arch import EDGES, NODES
from pipeline.space.nb201.macro import MacroNetwork
from pipeline.space.nb201.ops import NB201_OPS, build_op

CELL = "cell"


class MixedEdge(nn.Module):
    """The candidate ops of one edge, on the first C/K channels when `partial_k > 1`.

    `channels`, `partial_k`, `stride` and `bypass` are what DrNAS' widening (pipeline/space/widen.py)
    reads and sets on a mixed op; NB201 edges keep the resolution, so `bypass` (the CNN reduction edges'
    pooling of the channels that skip the ops) stays None.
    """

    stride = 1

    def __init__(self, channels: int, candidates: tuple[str, ...], partial_k: int = 1) -> None:
        super().__init__()
        if channels % partial_k:
            raise ValueError(f"partial_k={partial_k} does not divide {channels} channels")
        self.channels = channels
        self.partial_k = partial_k
        self.bypass: nn.Module | None = None
        self.ops = nn.ModuleList(build_op(name, channels // partial_k, affine=False) for name in candidates)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, active: list[int]) -> torch.Tensor | None:
        """The weighted sum of the `active` ops, or None when none is active (the edge adds nothing)."""
        k = self.partial_k
        op_input = x[:, : self.channels // k] if k > 1 else x
        terms = [weights[i] * self.ops[i](op_input) for i in active]
        if not terms:
            out = op_input.mul(0.0) if k > 1 else None
        else:
            out = torch.stack(terms).sum(0) if len(terms) > 1 else terms[0]
        if k == 1 or out is None:
            return out
        return nn.functional.channel_shuffle(torch.cat([out, x[:, self.channels // k :]], dim=1), k)


class SearchCell(nn.Module):
    """Six mixed edges; node i sums its edges from every node j < i (scaled per edge when asked)."""

    def __init__(self, channels: int, edge_ops: tuple[tuple[str, ...], ...], partial_k: int = 1) -> None:
        super().__init__()
        self.edges = nn.ModuleList(MixedEdge(channels, candidates, partial_k) for candidates in edge_ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, edge_scales: torch.Tensor | None,
                active: list[list[int]]) -> torch.Tensor:
        nodes = [x]
        for node in range(1, NODES):
            terms = []
            for source in range(node):
                edge = EDGES.index((node, source))
                y = self.edges[edge](nodes[source], weights[edge], active[edge])
                if y is not None:
                    terms.append(y if edge_scales is None else edge_scales[edge] * y)
            nodes.append(torch.stack(terms).sum(0) if terms else x.mul(0.0))
        return nodes[-1]


class Nb201Supernet(MacroNetwork):
    """The one-shot network: C = 16, N = 5 in the papers' NB201 searches (DrNAS, DDSAS, GDAS).

    `edge_ops` are the candidates of each edge (the five NB201 ops, or fewer when a method variant
    excludes some, e.g. `none`); weight column k of an edge mixes its k-th candidate.
    """

    def __init__(self, *, num_classes: int, edge_ops: tuple[tuple[str, ...], ...] = (NB201_OPS,) * len(EDGES),
                 channels: int = 16, cells_per_stage: int = 5, partial_k: int = 1, in_channels: int = 3) -> None:
        if len(edge_ops) != len(EDGES):
            raise ValueError(f"NAS-Bench-201 cells have {len(EDGES)} edges, got candidates for {len(edge_ops)}")
        super().__init__(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes,
                         in_channels=in_channels, make_cell=lambda width: SearchCell(width, edge_ops, partial_k))
        self.none_index = [ops.index("none") if "none" in ops else None for ops in edge_ops]

    def active_ops(self, weights: torch.Tensor, compute_all: bool) -> list[list[int]]:
        """Per edge, the candidates to compute: non-zero weight (all with `compute_all`), never `none`.

        One device sync per forward: every cell shares the weights.
        """
        mask = torch.ones(weights.shape, dtype=torch.bool) if compute_all else (weights != 0).cpu()
        for edge, none in enumerate(self.none_index):
            if none is not None:
                mask[edge, none] = False
        return [row.nonzero().flatten().tolist() for row in mask]

    def forward(self, x: torch.Tensor, arch: ArchWeights) -> torch.Tensor:
        weights, edge_scales = arch[CELL], arch.edge_scale(CELL)
        active = self.active_ops(weights, arch.compute_all)
        return self.run(x, lambda cell, h: cell(h, weights, edge_scales, active))
