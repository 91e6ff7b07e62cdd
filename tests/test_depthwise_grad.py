"""The split weight gradient of wide depthwise convs against torch's autograd of `F.conv2d`.

The oracle is the weight gradient autograd gives for the same conv run by `F.conv2d` (fp64), over kernel
widths that need one and two extra windows, dilations of every phase count, paddings from none to the
kernel's reach, and sizes that no dilation divides (phases of unequal length).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline.space.depthwise_grad import FAST_WIDTH, depthwise_weight_gradient, splits
from pipeline.space.fast_conv import ConvShape, conv_chain

CASES = [  # (kernel, dilation, padding, size)
    ((5, 5), (1, 1), (2, 2), (8, 8)),
    ((5, 5), (2, 2), (4, 4), (8, 8)),
    ((5, 5), (2, 2), (4, 4), (7, 9)),  # odd sizes: phases of unequal length
    ((3, 5), (1, 3), (1, 6), (6, 10)),
    ((5, 7), (2, 1), (0, 3), (9, 11)),  # three windows, the last overlapping; unpadded rows
    ((7, 4), (1, 2), (3, 2), (7, 8)),
    ((5, 6), (3, 3), (6, 7), (5, 7)),
]


@pytest.mark.parametrize(("kernel", "dilation", "padding", "size"), CASES)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_split_weight_gradient_is_the_conv_weight_gradient(kernel, dilation, padding, size, layout):
    channels = 3
    x = torch.randn(2, channels, *size, dtype=torch.float64).contiguous(memory_format=layout)
    weight = torch.randn(channels, 1, *kernel, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, weight, None, 1, padding, dilation, channels)
    grad = torch.randn_like(out)
    (want,) = torch.autograd.grad(out, weight, grad)
    got = depthwise_weight_gradient(grad, x, weight.detach(), padding, dilation)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_the_split_weight_gradient_has_the_conv_second_derivatives():
    """Finite differences of the split gradient itself, with respect to the output gradient and input."""
    weight = torch.randn(2, 1, 3, 5, dtype=torch.float64)
    x = torch.randn(1, 2, 5, 7, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(1, 2, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda g, x_: depthwise_weight_gradient(g, x_, weight, (1, 4), (1, 2)),
                                    (grad, x))


@pytest.mark.parametrize(("weight_shape", "groups", "expected"), [
    ((4, 1, 5, 5), 4, True),
    ((4, 1, 3, 5), 4, True),
    ((4, 1, 5, 3), 4, False),  # 3 wide: oneDNN's fast kernel takes it
    ((4, 1, 3, 3), 4, False),
    ((8, 1, 5, 5), 4, False),  # a channel multiplier: not depthwise
    ((4, 4, 5, 5), 1, False),  # a dense conv
])
def test_which_convs_split_their_weight_gradient(weight_shape, groups, expected):
    assert splits(torch.zeros(1, 4, 6, 6), torch.zeros(weight_shape), groups) is expected


class _WeightGradientKernels(TorchDispatchMode):
    """The kernel widths of the weight gradients aten computes while active."""

    def __init__(self) -> None:
        super().__init__()
        self.widths: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket is torch.ops.aten.convolution_backward and args[-1][1]:
            self.widths.append(args[2].shape[3])
        return func(*args, **(kwargs or {}))


def test_a_chain_of_wide_depthwise_convs_runs_only_narrow_weight_gradients():
    """The dilated 5x5 conv of the DARTS space as a chain: its weight gradients reach oneDNN 3 wide."""
    x = torch.randn(2, 4, 8, 8)
    weights = [torch.randn(4, 1, 5, 5, requires_grad=True), torch.randn(4, 4, 1, 1, requires_grad=True)]
    shapes = [ConvShape((4, 4), (2, 2), 4), ConvShape((0, 0), (1, 1), 1)]
    with _WeightGradientKernels() as kernels:
        conv_chain(x, shapes, weights).sum().backward()
    assert sorted(kernels.widths) == [1, FAST_WIDTH, FAST_WIDTH]
