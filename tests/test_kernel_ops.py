"""The bench's operation count (kernel_ops.py) against counts worked out by hand."""

from __future__ import annotations

import torch

from pipeline.stages.kernel_ops import count_kernel_ops


def test_forward_and_backward_operations_are_counted_views_and_allocations_not():
    x = torch.randn(3, 4, requires_grad=True)

    def step() -> None:
        y = (x + 1) * 2  # add, mul
        torch.empty(5)  # an allocation: nothing computed
        y.view(-1)[:5].sum().backward()  # a view and a slice (views), sum
        # backward: ones_like (the loss's gradient), slice_backward (zeros and a copy), mul (by 2); the
        # view's, the sum's (an expand) and the add's (passed through) compute nothing

    ops = count_kernel_ops(step)
    assert ops.counts == {"add": 1, "mul": 2, "sum": 1, "ones_like": 1, "slice_backward": 1}
    assert ops.total == 6


def test_in_place_and_out_of_place_operations_count_alike():
    x = torch.zeros(4)
    ops = count_kernel_ops(lambda: (x.add_(1), x.mul(2), x.relu_()))
    assert ops.counts == {"add_": 1, "mul": 1, "relu_": 1}
