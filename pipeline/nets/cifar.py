"""The CIFAR evaluation network (DARTS retraining: 20 cells, C=36, 3x3 stem to 3C)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.network import EvalNetwork
from pipeline.space.genotype import Genotype

STEM_MULTIPLIER = 3


class _CifarStem(nn.Module):
    """Conv 3x3 to 3C + BN; both first cells read its output."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.bn(self.conv(x))
        return y, y


class NetworkCIFAR(EvalNetwork):
    """Full-resolution network for small images (CIFAR, SVHN, the digits demo)."""

    def __init__(
        self,
        genotype: Genotype,
        *,
        channels: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        in_channels: int = 3,
        pool_bn: bool = False,
    ) -> None:
        stem_out = STEM_MULTIPLIER * channels
        super().__init__(
            genotype,
            _CifarStem(in_channels, stem_out),
            (stem_out, stem_out),
            channels=channels,
            num_classes=num_classes,
            layers=layers,
            auxiliary=auxiliary,
            stem_reduced=False,
            aux_pool_stride=3,
            pool_bn=pool_bn,
        )
