"""PC-DARTS' channel split on the fast path (pipeline/space/partial_channels.py) against plain slices."""

from __future__ import annotations

import pytest
import torch

from pipeline.space.partial_channels import split_channels
from pipeline.stages.kernel_ops import count_kernel_ops

LAYOUTS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_split_is_the_two_slices_dense_and_its_gradient_theirs_in_the_inputs_layout(layout: str):
    x = torch.randn(2, 8, 5, 4, dtype=torch.float64).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()
    first, rest = split_channels(x, 2)
    assert torch.equal(first, x[:, :2]) and torch.equal(rest, x[:, 2:])
    assert first.is_contiguous(memory_format=LAYOUTS[layout]) and rest.is_contiguous(memory_format=LAYOUTS[layout])
    grads = torch.randn_like(first), torch.randn_like(rest)
    got = torch.autograd.grad([first, rest], x, grads)[0]
    want = torch.autograd.grad([x[:, :2], x[:, 2:]], x, grads)[0]
    assert torch.equal(got, want) and got.is_contiguous(memory_format=LAYOUTS[layout])
    # one part used only: the other's gradient is zero
    got = torch.autograd.grad(split_channels(x, 2)[1], x, grads[1])[0]
    assert torch.equal(got[:, :2], torch.zeros_like(got[:, :2])) and torch.equal(got[:, 2:], grads[1])
    assert got.is_contiguous(memory_format=LAYOUTS[layout])


def test_a_splits_backward_pass_is_one_concat():
    """Autograd's own slices take a full-size zeros and a copy each, and an add."""
    x = torch.randn(2, 8, 5, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    first, rest = split_channels(x, 2)
    grads = (torch.randn(2, 2, 5, 4).contiguous(memory_format=torch.channels_last),
             torch.randn(2, 6, 5, 4).contiguous(memory_format=torch.channels_last))
    assert count_kernel_ops(lambda: torch.autograd.grad([first, rest], x, grads)).counts == {"cat": 1}


def test_a_split_has_second_derivatives():
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: split_channels(t, 1), (x,))
