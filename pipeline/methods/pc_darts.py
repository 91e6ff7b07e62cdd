"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections with edge normalisation.

Only 1/K of each edge's channels enter the mixed op (the supernet does the slicing, bypass and channel
shuffle), which cuts memory by about K and lets the search use large batches. Sampling channels makes the
choice of *edges* noisy, so each node also learns weights beta over its incoming edges (a softmax per
node) that scale the edges' outputs; the derivation ranks edges by op weight times edge weight. The
architecture is frozen for the first `warmup_epochs` (15 in the paper and code) while the weights adapt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import torch
from pydantic import Field

from pipeline.config import MethodBase, SearchTraining, check_partial_k
from pipeline.methods.base import register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.base import ArchWeights, BoundSpace


def node_softmax(beta: torch.Tensor, node_inputs: Sequence[int]) -> torch.Tensor:
    """Per mixed node, softmax over its incoming edges (`node_inputs[k]` consecutive edges), in edge order."""
    return torch.cat([chunk.softmax(0) for chunk in beta.split(list(node_inputs))])


class PcDartsMethod(MethodBase):
    """PC-DARTS' options; K must divide the search's channels."""

    partial_k: Annotated[int, Field(ge=1)] = Field(4, description="1/K of the channels enter the mixed op.")
    edge_normalization: bool = Field(True, description="Learn per-edge weights beta (softmax over a node's inputs).")
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        15, description="Epochs of weight training before architecture updates start (paper and code: 15)."
    )

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        check_partial_k(f"{where}.partial_k", self.partial_k, training)


@register_method("pc_darts", options=PcDartsMethod)
class PcDarts(AlphaMethod):
    """softmax(alpha) per edge, softmax(beta) per node over edges, 1/K channels through the mixed ops."""

    config: PcDartsMethod

    @classmethod
    def required_features(cls, config: PcDartsMethod) -> dict[str, str]:  # type: ignore[override]
        needs = {"partial_channels": f"partial_k {config.partial_k}"} if config.partial_k > 1 else {}
        if config.edge_normalization:
            needs["node_inputs"] = "edge_normalization"
        return needs

    def __init__(self, config: PcDartsMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        if config.edge_normalization:
            self.betas = self.per_cell("beta", lambda spec: 1e-3 * torch.randn(spec.num_edges))

    def supernet_options(self) -> dict[str, Any]:
        return {"partial_k": self.config.partial_k}

    def forward_weights(self) -> ArchWeights:
        weights = self.softmax_weights()
        if self.config.edge_normalization:
            weights.edge_scales = {cell: node_softmax(beta, self.space.cell(cell).node_inputs)
                                   for cell, beta in self.betas.items()}
        return weights

    def child_weights(self, discretised: ArchWeights) -> ArchWeights:
        """The kept ops scaled by their edge's weight, as the supernet mixes every edge it trained."""
        return ArchWeights(discretised.cells, self.forward_weights().edge_scales)

    def updates_architecture(self, epoch: int) -> bool:
        return epoch >= self.config.warmup_epochs
