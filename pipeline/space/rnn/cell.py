"""The DARTS recurrent cell (DARTS §2.1 and Fig. 4; quark0/darts rnn/model.py DARTSCell), unrolled over time.

Every node is a highway unit. The first state mixes the input x_t and the previous hidden state h_{t-1}:
[c0, h0] = [x_t, h_{t-1}] W0, s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1}). Node i reads one earlier
state s_j: [c, h] = s_j W_i, s_i = s_j + sigmoid(c) * (f_i(h) - s_j), f_i its activation. The cell's output,
which is also h_t, is the mean of the concat nodes. No biases, as in the code. In training, variational
dropout masks (one per sequence, the same at every time step) multiply x_t (`dropout_x`) and every state
that enters a matrix product (`dropout_h`).
"""

from __future__ import annotations

import abc

import torch
from torch import nn

from pipeline.space.base import ArchWeights
from pipeline.space.rnn.genotype import RecurrentGenotype
from pipeline.space.rnn.operations import ACTIVATIONS

INIT_RANGE = 0.04  # rnn/model.py INITRANGE: every weight ~ U(-0.04, 0.04)


def variational_mask(batch: int, width: int, drop: float, like: torch.Tensor) -> torch.Tensor:
    """A `[batch, width]` mask of 0 and 1/(1-drop), kept for the whole sequence (rnn/utils.py mask2d)."""
    keep = 1.0 - drop
    return torch.bernoulli(torch.full((batch, width), keep, dtype=like.dtype, device=like.device)) / keep


def highway(state: torch.Tensor, gate_pre: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """s + sigmoid(c) * (candidate - s): the node keeps part of its input state and takes part of the new."""
    return state + torch.sigmoid(gate_pre) * (candidate - state)


class HighwayCell(nn.Module, abc.ABC):
    """The parts both cells share: W0, one W_i per node, dropout masks and the loop over time steps."""

    def __init__(self, input_size: int, hidden_size: int, steps: int, dropout_x: float, dropout_h: float) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.dropout_x = dropout_x
        self.dropout_h = dropout_h
        self.w0 = nn.Parameter(torch.empty(input_size + hidden_size, 2 * hidden_size))
        self.ws = nn.ParameterList(nn.Parameter(torch.empty(hidden_size, 2 * hidden_size)) for _ in range(steps))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for weight in (self.w0, *self.ws):
            nn.init.uniform_(weight, -INIT_RANGE, INIT_RANGE)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor,
                arch: ArchWeights | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`inputs [T, B, input_size]`, `hidden [B, hidden_size]` -> (every h_t `[T, B, H]`, the last h_t)."""
        batch = inputs.shape[1]
        x_mask = h_mask = None
        if self.training:
            x_mask = variational_mask(batch, inputs.shape[2], self.dropout_x, inputs)
            h_mask = variational_mask(batch, self.hidden_size, self.dropout_h, inputs)
        outputs = []
        for x in inputs:
            hidden = self.step(x, hidden, x_mask, h_mask, arch)
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def first_state(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
                    h_mask: torch.Tensor | None) -> torch.Tensor:
        if x_mask is not None and h_mask is not None:
            x, h_in = x * x_mask, h_prev * h_mask
        else:
            h_in = h_prev
        gate_pre, candidate = torch.cat([x, h_in], dim=-1).mm(self.w0).split(self.hidden_size, dim=-1)
        return highway(h_prev, gate_pre, torch.tanh(candidate))

    @abc.abstractmethod
    def step(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
             h_mask: torch.Tensor | None, arch: ArchWeights | None) -> torch.Tensor:
        """The next hidden state: the evaluation cell follows its genotype, the search cell mixes by `arch`."""


class RecurrentCell(HighwayCell):
    """The evaluation cell of a genotype."""

    def __init__(self, input_size: int, hidden_size: int, genotype: RecurrentGenotype, dropout_x: float,
                 dropout_h: float) -> None:
        super().__init__(input_size, hidden_size, genotype.steps, dropout_x, dropout_h)
        self.genotype = genotype

    def step(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
             h_mask: torch.Tensor | None, arch: ArchWeights | None) -> torch.Tensor:
        if arch is not None:
            raise ValueError("an evaluation cell has a fixed genotype and takes no architecture weights")
        states = [self.first_state(x, h_prev, x_mask, h_mask)]
        for w, (op, source) in zip(self.ws, self.genotype.recurrent, strict=True):
            state = states[source]
            gate_pre, candidate = (state if h_mask is None else state * h_mask).mm(w).split(self.hidden_size, -1)
            states.append(highway(state, gate_pre, ACTIVATIONS[op](candidate)))
        return torch.stack([states[node] for node in self.genotype.concat]).mean(0)
