"""`max_pool_keeping_input` against torch's max pool: outputs, gradients (ties included), what it keeps."""

from __future__ import annotations

import pytest
import torch
from space_support import kept_tensors
from torch import nn

from pipeline.space.max_pool import max_pool_keeping_input

POOLS = {
    "3x3, stride 1 (normal edges)": nn.MaxPool2d(3, stride=1, padding=1),
    "3x3, stride 2 (reduction edges)": nn.MaxPool2d(3, stride=2, padding=1),
    "2x2 (PC-DARTS' bypass)": nn.MaxPool2d(2, 2),
    "odd size, ceil mode, dilated": nn.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
}


def _input(layout: torch.memory_format, ties: bool) -> torch.Tensor:
    x = torch.randn(2, 3, 7, 9, dtype=torch.float64)
    if ties:  # few distinct values: many windows hold their maximum twice
        x = x.mul(2).round()
    return x.contiguous(memory_format=layout).requires_grad_()


@pytest.mark.parametrize("pool", POOLS.values(), ids=POOLS.keys())
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels-last"])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_it_is_torchs_max_pool_with_its_gradient(pool: nn.MaxPool2d, layout: torch.memory_format, ties: bool):
    x = _input(layout, ties)
    out, expected = max_pool_keeping_input(pool, x), pool(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    grad = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, x, grad)
    (want,) = torch.autograd.grad(expected, x, grad)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_it_keeps_its_input_and_no_indices():
    x = _input(torch.channels_last, ties=False)
    with kept_tensors() as kept:
        max_pool_keeping_input(POOLS["3x3, stride 1 (normal edges)"], x)
    assert len(kept) == 1 and kept[0].data_ptr() == x.data_ptr()


def test_its_gradient_is_differentiable_in_the_output_gradient():
    """A second backward pass (a Hessian-vector product) runs through it: finite differences."""
    pool = POOLS["3x3, stride 2 (reduction edges)"]
    x = _input(torch.contiguous_format, ties=False)
    assert torch.autograd.gradgradcheck(lambda t: max_pool_keeping_input(pool, t), (x,))


def test_a_pool_returning_indices_is_refused():
    with pytest.raises(ValueError, match="returns its indices"):
        max_pool_keeping_input(nn.MaxPool2d(2, return_indices=True), torch.zeros(1, 1, 4, 4))
