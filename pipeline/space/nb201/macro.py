"""The fixed NAS-Bench-201 skeleton shared by the supernet and the evaluation network.

Stem (3x3 conv to C channels + BN), three stages of N cells at C, 2C and 4C channels with a residual
reduction block (stride 2) between stages, then BN-ReLU, global average pooling and a linear classifier
(NAS-Bench-201 Sec. 2.1, Fig. 1; the benchmark trains C = 16, N = 5). Only how a cell is built and run
differs between searching and evaluating, so both pass a cell factory and a cell runner.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.space.nb201.ops import ResidualReduction

STAGES = 3


def stage_channels(channels: int) -> tuple[int, ...]:
    """Channels of the three stages: C, 2C, 4C."""
    return tuple(channels * 2**stage for stage in range(STAGES))


class MacroNetwork(nn.Module):
    """Stem, `STAGES` stages of `cells_per_stage` cells from `make_cell(channels)`, reductions between."""

    def __init__(self, *, channels: int, cells_per_stage: int, num_classes: int,
                 make_cell: Callable[[int], nn.Module], in_channels: int = 3) -> None:
        super().__init__()
        widths = stage_channels(channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels))
        blocks: list[nn.Module] = []
        for stage, width in enumerate(widths):
            if stage:
                blocks.append(ResidualReduction(widths[stage - 1], width))
            blocks.extend(make_cell(width) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(widths[-1]), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def run(self, x: torch.Tensor, run_cell: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """Logits, with every searched/derived cell applied through `run_cell(cell, x)`."""
        x = self.stem(x)
        for block in self.cells:
            x = block(x) if isinstance(block, ResidualReduction) else run_cell(block, x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))
