"""The evaluation network of a NAS-Bench-201 architecture string, and its size.

The derived cell is built with affine BN (as the benchmark trained every architecture). `none` edges
are dropped: they add zero to their node, so the network computes the same function without them
(the benchmark's `InferCell` keeps them as zero ops, which hold no parameters either).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.complexity import count_parameters_m, mult_adds_m
from pipeline.space.nb201.arch import EDGES, NODES, Nb201Arch
from pipeline.space.nb201.macro import MacroNetwork
from pipeline.space.nb201.ops import build_op


class EvalCell(nn.Module):
    """Node i = sum over inputs j < i of op(i, j)(node j); the cell outputs node 3."""

    def __init__(self, arch: Nb201Arch, channels: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({
            f"{node}<-{source}": build_op(arch.op(node, source), channels, affine=True)
            for node, source in EDGES
            if arch.op(node, source) != "none"
        })

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in range(1, NODES):
            terms = [self.edges[f"{node}<-{j}"](nodes[j]) for j in range(node) if f"{node}<-{j}" in self.edges]
            # A node whose inputs are all `none` is zero, and so is everything computed only from it.
            nodes.append(torch.stack(terms).sum(0) if terms else torch.zeros_like(x))
        return nodes[-1]


class Nb201Network(MacroNetwork):
    """The benchmark's network for `arch`: C = 16, N = 5 by default (NAS-Bench-201 Sec. 2.1).

    It follows the evaluation networks' contract of the training loop: `forward` returns (logits,
    auxiliary logits), here always None (no auxiliary head), and `drop_path_prob` is the loop's knob,
    which must stay 0 (the benchmark trains without drop path; `Nb201Space.build_network` refuses it).
    """

    drop_path_prob = 0.0

    def __init__(self, arch: Nb201Arch, *, num_classes: int, channels: int = 16, cells_per_stage: int = 5,
                 in_channels: int = 3) -> None:
        super().__init__(channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes,
                         in_channels=in_channels, make_cell=lambda width: EvalCell(arch, width))
        self.arch = arch

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.run(x, lambda cell, h: cell(h)), None


def count(arch: Nb201Arch, *, num_classes: int, input_size: int, channels: int = 16,
          cells_per_stage: int = 5, in_channels: int = 3) -> dict[str, float]:
    """Parameters and mult-adds (millions) of the evaluation network.

    Parameters are the benchmark's 'params' (MB there means millions). Mult-adds follow the project's
    convention (convs and linear layers); the benchmark's 'flops' also count the classifier's bias, so
    they exceed ours by num_classes / 1e6.
    """
    net = Nb201Network(arch, num_classes=num_classes, channels=channels, cells_per_stage=cells_per_stage,
                       in_channels=in_channels)
    return {"params": count_parameters_m(net), "mult_adds": mult_adds_m(net, input_size, in_channels)}
