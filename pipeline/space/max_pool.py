"""Max pooling that keeps its input for the backward pass instead of the argmax indices.

PyTorch's max pool keeps int64 indices of its output's size for the backward pass: twice the bytes of
the fp32 output (darts_1st, batch 64: ~150 MB a step). In a search cell the pooled state is kept anyway
(the average pool's backward pass keeps its input, and in an architecture step skip_connect's term keeps
it for its weight's gradient), so a max pool that keeps its input and finds the indices again in its
backward pass (one pooling forward more) keeps nothing of its own. The kernel is deterministic, so the
indices found again are the forward pass's, ties included.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.utils import _pair


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int], dilation: tuple[int, int], ceil_mode: bool) -> torch.Tensor:
        ctx.args = kernel, stride, padding, dilation, ceil_mode
        ctx.save_for_backward(x)
        return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        indices = torch.ops.aten.max_pool2d_with_indices(x, *ctx.args)[1]
        # differentiable in `grad`, so a second backward pass runs through it
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(grad, x, *ctx.args, indices)
        return grad_x, None, None, None, None, None


def max_pool_keeping_input(pool: nn.MaxPool2d, x: torch.Tensor) -> torch.Tensor:
    """`pool(x)`, keeping `x` for the backward pass, not the indices."""
    if pool.return_indices:
        raise ValueError("max_pool_keeping_input: a pool that returns its indices keeps them anyway")
    stride = pool.stride if pool.stride is not None else pool.kernel_size
    return _MaxPool.apply(x, _pair(pool.kernel_size), _pair(stride), _pair(pool.padding), _pair(pool.dilation),
                          pool.ceil_mode)
