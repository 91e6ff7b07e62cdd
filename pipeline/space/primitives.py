"""The operations of the DARTS CNN search space.

`OPS` maps each primitive name to a constructor `(C, stride, affine) -> nn.Module`. Search networks pass
`affine=False` (BN without learnable scale/shift, as in DARTS) and put BN after pooling; evaluation
networks pass `affine=True` (a BN after pooling, which DrNAS keeps, stays non-affine). All ops keep the
channel count; stride 2 halves height and width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
# SDARTS' "s5" space and DrNAS search without `none`.
PRIMITIVES_NO_NONE: tuple[str, ...] = PRIMITIVES[1:]
PARAMETER_FREE: frozenset[str] = frozenset({"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"})


class Zero(nn.Module):
    """The `none` op: zeros of the output shape (spatially subsampled when strided)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ReLUConvBN(nn.Sequential):
    """ReLU, conv, BN: the cell's input preprocessing."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise k x k conv (dilation d), pointwise 1x1, BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, dilation: int,
                 affine: bool) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked [ReLU, depthwise k x k, 1x1, BN] blocks; only the first is strided."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, affine: bool) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two 1x1 stride-2 convs, the second on the input shifted by a pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reduce_rectified(self.relu(x))

    def reduce_rectified(self, x: torch.Tensor) -> torch.Tensor:
        """Everything after the ReLU: lets the fast supernet share one ReLU between the ops of an input."""
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] < x.shape[-1] or shifted.shape[-2] < x.shape[-2]:
            shifted = nn.functional.pad(shifted, (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def _pool(kind: str, c: int, stride: int, with_bn: bool) -> nn.Module:
    """3x3 pooling, optionally followed by BN without learnable scale and shift.

    The BN after a pool is never affine, in evaluation networks too: DrNAS, the one method that keeps it
    after search, builds it with affine=False in its released operations.py (a learnable one would add
    2 x C parameters per pool edge, 432 on DrNAS' CIFAR-10 network).
    """
    pool: nn.Module
    if kind == "max":
        pool = nn.MaxPool2d(3, stride=stride, padding=1)
    else:
        pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if with_bn else pool


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda c, stride, affine: Zero(stride),
    # Pools are followed by BN in search networks (affine=False); `pool_bn` in build_op controls it.
    "max_pool_3x3": lambda c, stride, affine: _pool("max", c, stride, with_bn=False),
    "avg_pool_3x3": lambda c, stride, affine: _pool("avg", c, stride, with_bn=False),
    "skip_connect": lambda c, stride, affine: Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
}


def build_op(name: str, c: int, stride: int, *, affine: bool, pool_bn: bool) -> nn.Module:
    """Construct op `name`; `pool_bn` appends BN after pooling (search networks; DrNAS also retrains so)."""
    if name not in OPS:
        raise KeyError(f"unknown operation '{name}'; known: {', '.join(PRIMITIVES)}")
    if pool_bn and name in ("max_pool_3x3", "avg_pool_3x3"):
        return _pool(name[:3], c, stride, with_bn=True)
    return OPS[name](c, stride, affine)
