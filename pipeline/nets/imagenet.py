"""The ImageNet evaluation network (DARTS mobile setting: 14 cells, C=48, < 600M mult-adds)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.network import EvalNetwork
from pipeline.space.genotype import Genotype


class _ImageNetStem(nn.Module):
    """Three stride-2 convs (224 -> 28) so the cells run at mobile cost; the first cell reads stem0 (56x56)
    and stem1 (28x28), hence it treats its older input as reduced."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


class NetworkImageNet(EvalNetwork):
    """Network for ImageNet-style inputs; global average pooling is adaptive (7x7 at 224, any demo size)."""

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
        super().__init__(
            genotype,
            _ImageNetStem(in_channels, channels),
            (channels, channels),
            channels=channels,
            num_classes=num_classes,
            layers=layers,
            auxiliary=auxiliary,
            stem_reduced=True,
            aux_pool_stride=2,
            pool_bn=pool_bn,
        )
