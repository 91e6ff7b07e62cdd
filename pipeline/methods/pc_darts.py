"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections with edge normalisation.

Only 1/K of each edge's channels enter the mixed op (the supernet does the slicing, bypass and channel
shuffle), which cuts memory by about K and lets the search use large batches. Sampling channels makes the
choice of *edges* noisy, so each node also learns weights beta over its incoming edges (a softmax per
node) that scale the edges' outputs; the derivation ranks edges by op weight times edge weight. The
architecture is frozen for the first `warmup_epochs` (15 in the paper and code) while the weights adapt.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.config import PcDartsMethod, SearchTraining
from pipeline.methods.base import SearchSpace, register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.supernet import ArchWeights


def node_softmax(beta: torch.Tensor, nodes: int) -> torch.Tensor:
    """Per intermediate node, softmax over its incoming edges (node i has i + 2 inputs), in edge order."""
    sizes = [i + 2 for i in range(nodes)]
    return torch.cat([chunk.softmax(0) for chunk in beta.split(sizes)])


@register_method("pc_darts")
class PcDarts(AlphaMethod):
    """softmax(alpha) per edge, softmax(beta) per node over edges, 1/K channels through the mixed ops."""

    config: PcDartsMethod

    def __init__(self, config: PcDartsMethod, space: SearchSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        if config.edge_normalization:
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(space.num_edges))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(space.num_edges))

    def supernet_options(self) -> dict[str, Any]:
        return {"partial_k": self.config.partial_k}

    def forward_weights(self) -> ArchWeights:
        weights = self.softmax_weights()
        if self.config.edge_normalization:
            weights.normal_edges = node_softmax(self.beta_normal, self.space.nodes)
            weights.reduce_edges = node_softmax(self.beta_reduce, self.space.nodes)
        return weights

    def child_weights(self, discretised: ArchWeights) -> ArchWeights:
        """The kept ops scaled by their edge's weight, as the supernet mixes every edge it trained."""
        edges = self.forward_weights()
        return ArchWeights(discretised.normal, discretised.reduce, edges.normal_edges, edges.reduce_edges)

    def updates_architecture(self, epoch: int) -> bool:
        return epoch >= self.config.warmup_epochs
