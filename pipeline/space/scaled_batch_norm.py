"""`weight * batch_norm(z)` for an architecture step, keeping the BN's input but not its output.

An op's term in a mixed edge is its mixing weight times the op's last BN output. When the weight needs a
gradient (an architecture step), autograd keeps that output for it, d term / d weight = y, beside the
BN's input, which the BN's own backward keeps: two tensors of the op's output size per op and edge. Here
the output is recomputed from the input in the backward pass, y = (z - mean) * invstd, one elementwise
pass, and only the input and the per-channel statistics are kept.

The BN is a training-mode BN without affine parameters whose running statistics move by momentum, as the
search cells' BNs are (`nn.BatchNorm2d(C, affine=False)`); `native_batch_norm` moves them exactly as
the module's forward does. In a differentiable backward pass (`create_graph`: a second derivative in
training mode; the Hessian analysis runs in evaluation mode, where running statistics normalise) the
gradients are written with operations autograd can differentiate, the batch statistics recomputed from
the input so that their dependence on it is part of the second derivative.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.space.bn_layout import batch_norm_in_fast_layout

_CHANNEL_DIMS = (0, 2, 3)


def _per_channel(stat: torch.Tensor) -> torch.Tensor:
    return stat.view(1, -1, 1, 1)


class _ScaledBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, weight: torch.Tensor, running_mean: torch.Tensor,
                running_var: torch.Tensor, momentum: float, eps: float) -> torch.Tensor:
        y, mean, invstd = torch.native_batch_norm(z, None, None, running_mean, running_var, True, momentum, eps)
        ctx.eps = eps
        ctx.save_for_backward(z, mean, invstd, weight)
        return weight * y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, mean, invstd, weight = ctx.saved_tensors
        if torch.is_grad_enabled():
            grad_z, grad_weight = _differentiable_gradients(grad, z, weight, ctx.eps)
        else:
            y = (z - _per_channel(mean)) * _per_channel(invstd)
            grad_weight = (grad * y).sum().reshape(weight.shape)
            grad_z = torch.ops.aten.native_batch_norm_backward(
                grad * weight, z, None, None, None, mean, invstd, True, ctx.eps, [True, False, False])[0]
        return (grad_z if ctx.needs_input_grad[0] else None, grad_weight if ctx.needs_input_grad[1] else None,
                None, None, None, None)


def _differentiable_gradients(grad: torch.Tensor, z: torch.Tensor, weight: torch.Tensor,
                              eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradients of `weight * BN(z)` in closed form: with y the normalised z and g = weight * grad,
    dz = invstd * (g - mean_c(g) - y * mean_c(g * y)) (means per channel), dweight = sum(grad * y)."""
    var, mean = torch.var_mean(z, dim=_CHANNEL_DIMS, correction=0, keepdim=True)
    invstd = torch.rsqrt(var + eps)
    y = (z - mean) * invstd
    scaled = grad * weight
    grad_z = invstd * (scaled - scaled.mean(_CHANNEL_DIMS, keepdim=True)
                       - y * (scaled * y).mean(_CHANNEL_DIMS, keepdim=True))
    return grad_z, (grad * y).sum().reshape(weight.shape)


def plain_training_batch_norm(bn: nn.Module) -> bool:
    """A BN whose output depends on its input batch only and whose update is one momentum step, as the
    search cells' BNs are in training mode: a plain `nn.BatchNorm2d` (not a subclass, such as the
    data-parallel search's global BN) without affine parameters, with momentum-averaged running
    statistics. `scaled_batch_norm` computes such a BN."""
    return (type(bn) is nn.BatchNorm2d and bn.training and not bn.affine and bn.track_running_stats
            and bn.momentum is not None)


def scaled_batch_norm(z: torch.Tensor, weight: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """`weight * bn(z)` for a `plain_training_batch_norm` (it updates `bn`'s running statistics as its
    forward would), keeping only `z` and the batch statistics for the backward pass."""
    assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
    assert bn.momentum is not None
    out = batch_norm_in_fast_layout(
        lambda x: _ScaledBatchNorm.apply(x, weight, bn.running_mean, bn.running_var, bn.momentum, bn.eps), z)
    bn.num_batches_tracked.add_(1)
    return out

