"""`pixel_grid` against the plain strided slice it replaces: the same view, the same gradient (now in the
input's layout), and second derivatives by finite differences; `memory_layout`, which says that layout."""

from __future__ import annotations

import pytest
import torch

from pipeline.space.bn_layout import memory_layout
from pipeline.space.pixel_grid import pixel_grid

LAYOUTS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("step", "start"), [((2, 2), (0, 0)), ((2, 2), (1, 1)), ((3, 2), (2, 0)), ((1, 2), (0, 1))])
@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9)])
def test_a_pixel_grid_is_the_strided_slice_with_its_gradient_in_the_inputs_layout(
        layout: str, step: tuple[int, int], start: tuple[int, int], height: int, width: int):
    x = torch.randn(2, 3, height, width, dtype=torch.float64).contiguous(memory_format=LAYOUTS[layout])
    x.requires_grad_()
    grid, plain = pixel_grid(x, step, start), x[:, :, start[0] :: step[0], start[1] :: step[1]]
    assert torch.equal(grid, plain) and grid.data_ptr() == plain.data_ptr()  # a view, no copy
    grad = torch.randn_like(plain)
    (got,), (want,) = torch.autograd.grad(grid, [x], grad), torch.autograd.grad(plain, [x], grad)
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=LAYOUTS[layout])


def test_a_pixel_grid_has_second_derivatives():
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: pixel_grid(t, (2, 2), (1, 0)).square(), (x,))


@pytest.mark.parametrize(("shape", "layout", "expected"), [
    ((2, 3, 4, 4), torch.channels_last, torch.channels_last),
    ((2, 3, 4, 4), torch.contiguous_format, torch.contiguous_format),
    ((2, 3, 1, 1), torch.channels_last, torch.contiguous_format),  # dense in both: either will do
])
def test_which_layout_a_tensor_has(shape: tuple[int, ...], layout: torch.memory_format,
                                   expected: torch.memory_format):
    assert memory_layout(torch.zeros(shape).contiguous(memory_format=layout)) is expected
