"""The search-time recurrent cell: every node mixes all its incoming edges and all activations.

Node i computes, for each earlier state s_j, [c_j, h_j] = s_j W_i (one W_i per node, shared by its edges,
as quark0/darts rnn/model_search.py), and sums the highway outputs s_j + sigmoid(c_j) (f(h_j) - s_j) over
edges j and activations f, each weighted by the edge's architecture weight of f (`none` adds nothing). The
cell's output is the mean of all searched nodes. An activation whose weight is exactly 0 on every edge of
a node is not computed for that node, unless the weights ask to `compute_all`. With `batch_norm` (the
DARTS search code, and DATA §4.3) every state passes through one BatchNorm without affine parameters,
which keeps the mixed states' scale stable while the weights are still nearly uniform.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.space.base import ArchWeights
from pipeline.space.rnn.cell import HighwayCell
from pipeline.space.rnn.operations import ACTIVATIONS, CELL, PRIMITIVES, edge_index, num_edges


class SearchRecurrentCell(HighwayCell):
    def __init__(self, input_size: int, hidden_size: int, steps: int, dropout_x: float, dropout_h: float,
                 batch_norm: bool = True) -> None:
        super().__init__(input_size, hidden_size, steps, dropout_x, dropout_h)
        self.steps = steps
        self.norm: nn.Module = nn.BatchNorm1d(hidden_size, affine=False) if batch_norm else nn.Identity()

    def step(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
             h_mask: torch.Tensor | None, arch: ArchWeights | None) -> torch.Tensor:
        weights = None if arch is None else arch[CELL]
        if weights is None or weights.shape != (num_edges(self.steps), len(PRIMITIVES)):
            shape = None if weights is None else tuple(weights.shape)
            raise ValueError(f"the search cell needs '{CELL}' weights of shape "
                             f"{(num_edges(self.steps), len(PRIMITIVES))}, got {shape}")
        states = self.norm(self.first_state(x, h_prev, x_mask, h_mask)).unsqueeze(0)  # [nodes so far, B, H]
        for node, w in enumerate(self.ws, start=1):
            entering = states if h_mask is None else states * h_mask
            gate_pre, candidate = torch.matmul(entering, w).split(self.hidden_size, dim=-1)
            edges = weights[edge_index(node, 0):edge_index(node, 0) + node, :, None, None]  # [node, ops, 1, 1]
            # sum_f w_f (s + g (f(h) - s)) = W s + g (sum_f w_f f(h) - W s), W = sum_f w_f over the activations
            # (not `none`): one gate and one highway per edge instead of one per activation.
            activated = torch.zeros_like(states)
            total = torch.zeros_like(edges[:, 0])
            for column, name in enumerate(PRIMITIVES):
                if name not in ACTIVATIONS or not (arch.compute_all or bool((edges[:, column] != 0).any())):
                    continue
                activated = activated + edges[:, column] * ACTIVATIONS[name](candidate)
                total = total + edges[:, column]
            kept = total * states
            mixed = (kept + torch.sigmoid(gate_pre) * (activated - kept)).sum(0)
            states = torch.cat([states, self.norm(mixed).unsqueeze(0)])
        return states[1:].mean(0)
