"""The five candidate operations of NAS-Bench-201 and the residual block between its stages.

Definitions follow NAS-Bench-201 (Dong & Yang, ICLR 2020, Sec. 2.1) as its released code builds them
(D-X-Y/AutoDL-Projects lib/models/cell_operations.py): convolutions are ReLU -> Conv -> BN, the average
pool is 3x3, stride 1, padding 1 and ignores the padding in its mean, `none` outputs zeros, and
`skip_connect` is the identity. Inside a cell every op keeps the channel count and the resolution, so no
op needs the stride or channel-changing variants the DARTS space has.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.space.nb201.arch import NB201_OPS
from pipeline.space.primitives import Identity, ReLUConvBN


class Zero(nn.Module):
    """`none`: a zero tensor of the input's shape (it still has to flow through the sum of a node)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _conv(kernel: int) -> Callable[[int, bool], nn.Module]:
    return lambda c, affine: ReLUConvBN(c, c, kernel, 1, kernel // 2, affine=affine)


OPS: dict[str, Callable[[int, bool], nn.Module]] = {
    "none": lambda c, affine: Zero(),
    "skip_connect": lambda c, affine: Identity(),
    "nor_conv_1x1": _conv(1),
    "nor_conv_3x3": _conv(3),
    "avg_pool_3x3": lambda c, affine: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
}


def build_op(name: str, channels: int, *, affine: bool) -> nn.Module:
    """Op `name` on `channels` channels; `affine` is False in the supernet (BN without scale/shift)."""
    if name not in OPS:
        raise KeyError(f"unknown NAS-Bench-201 operation '{name}'; known: {', '.join(NB201_OPS)}")
    return OPS[name](channels, affine)


class ResidualReduction(nn.Module):
    """The block between stages: a ResNet basic block with stride 2 that doubles the channels.

    Two ReLU-Conv3x3-BN layers (the first strided) plus a shortcut of 2x2 average pooling and a 1x1 conv
    without BN, summed (NAS-Bench-201 Sec. 2.1, "residual block"; `ResNetBasicblock` in the released code).
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)
