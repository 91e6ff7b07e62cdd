"""The evaluation cell: a genotype's discrete cell as modules.

Every (operation, input) pair of a node is built and summed, so cells with more than two pairs per node
(DATA's derivation) and two operations on the same edge work the same way as DARTS' two-pair nodes.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.space.genotype import Genotype
from pipeline.space.primitives import FactorizedReduce, Identity, ReLUConvBN, build_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability `drop_prob`, rescaling survivors by 1/keep so the expectation
    is unchanged (the scheduled drop path of NASNet/DARTS retraining)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty(x.shape[0], 1, 1, 1).bernoulli_(keep)
    return x * mask / keep


class Cell(nn.Module):
    """One normal or reduction cell; `out_channels` = len(concat) * `channels`."""

    def __init__(
        self,
        genotype: Genotype,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        *,
        reduction: bool,
        reduction_prev: bool,
        pool_bn: bool = False,
    ) -> None:
        super().__init__()
        # After a reduction cell, the cell two back is twice as large: halve it to match.
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, channels, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, channels, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1, 1, 0, affine=True)
        nodes = genotype.reduce if reduction else genotype.normal
        self.concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.sources = [[source for _, source in node] for node in nodes]
        self.node_ops = nn.ModuleList(
            nn.ModuleList(
                build_op(op, channels, 2 if reduction and source < 2 else 1, affine=True, pool_bn=pool_bn)
                for op, source in node
            )
            for node in nodes
        )
        self.out_channels = len(self.concat) * channels

    def _edge(self, op: nn.Module, x: torch.Tensor, drop_prob: float) -> torch.Tensor:
        h = op(x)
        # Identity carries no parameters to regularise; dropping it would only cut the gradient path.
        if self.training and not isinstance(op, Identity):
            h = drop_path(h, drop_prob)
        return h

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for ops, sources in zip(self.node_ops, self.sources, strict=True):
            outputs = [self._edge(op, states[s], drop_prob) for op, s in zip(ops, sources, strict=True)]
            states.append(sum(outputs[1:], outputs[0]))
        return torch.cat([states[i] for i in self.concat], dim=1)
