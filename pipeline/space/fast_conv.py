"""Chains of stride-1 convolutions whose backward pass keeps less and runs as forward convolutions.

A separable or dilated conv of the DARTS space is a depthwise conv followed by a 1x1 conv. Autograd keeps
both inputs for the backward pass, the depthwise conv's output only for the 1x1 conv's weight gradient.
`conv_chain` runs such a chain as one autograd function that keeps only the chain's input and recomputes
the inner outputs in its backward pass (a depthwise forward: cheap next to the gradients). It keeps
nothing at all when no weight needs a gradient: an architecture step, which asks only for the
architecture gradient, runs with the network weights frozen.

A separable conv's second chain starts from relu(BN(z)) of its first block's output z. Autograd would keep
z for the BN and the ReLU's output for the ReLU and the chain: `normalized_conv_chain` runs BN, ReLU and
chain as one function that keeps only z and the batch statistics, and recomputes relu(BN(z)) in its
backward pass (one elementwise pass): one activation less per separable conv, in both steps.

The input gradient of a stride-1 convolution is itself a stride-1 convolution: the output gradient
correlated with the kernel flipped in space and with its input and output channels swapped (per group),
padded by `dilation * (kernel - 1) - padding`. On a CPU oneDNN runs that forward convolution 5-25x
faster than its own backward-data pass for the supernet's dilated depthwise convs (batch 64, two threads:
5.2 ms against 0.46 ms for a 5x5 dilated conv at C=16, 32 px), and no slower for the others. The weight
gradients stay oneDNN's.

Every gradient of `conv_chain` is computed with differentiable operations, so a second backward pass (the
Hessian analysis differentiates the architecture gradient) works through the chain too;
`normalized_conv_chain` differentiates its recomputed composition when a second derivative is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

Pair = tuple[int, int]


@dataclass(frozen=True)
class ConvShape:
    """What a stride-1, bias-free conv is besides its weight."""

    padding: Pair
    dilation: Pair
    groups: int

    @classmethod
    def of(cls, conv: nn.Conv2d) -> ConvShape:
        """The shape of a `chainable` conv."""
        return cls(tuple(conv.padding), tuple(conv.dilation), conv.groups)

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, weight, None, 1, self.padding, self.dilation, self.groups)

    def input_gradient(self, grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The full correlation of `grad` with the flipped, channel-swapped kernel (a forward conv)."""
        (ph, pw), (dh, dw) = self.padding, self.dilation
        kh, kw = weight.shape[2:]
        return F.conv2d(grad, input_gradient_kernel(weight, self.groups), None, 1,
                        (dh * (kh - 1) - ph, dw * (kw - 1) - pw), self.dilation, self.groups)

    def weight_gradient(self, grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], list(self.padding),
                                                   list(self.dilation), False, [0, 0], self.groups,
                                                   [False, True, False])[1]


def input_gradient_kernel(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """The kernel whose forward convolution of an output gradient is the input gradient: per group the
    (out, in) channel axes swapped, both spatial axes flipped."""
    out_channels, in_per_group, kh, kw = weight.shape
    grouped = weight.reshape(groups, out_channels // groups, in_per_group, kh, kw)
    return grouped.transpose(1, 2).reshape(groups * in_per_group, out_channels // groups, kh, kw).flip(2, 3)


def _chain_forward(x: torch.Tensor, shapes: Sequence[ConvShape], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    for shape, weight in zip(shapes, weights, strict=True):
        x = shape.forward(x, weight)
    return x


def _chain_backward(x: torch.Tensor | None, shapes: Sequence[ConvShape], weights: Sequence[torch.Tensor],
                    grad: torch.Tensor, wants_input: bool,
                    wants_weight: Sequence[bool]) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """The chain's input gradient (if `wants_input`) and weight gradients (where `wants_weight`); `x`, the
    chain's input, is only read when a weight gradient is wanted."""
    inputs = [x]  # each conv's input, recomputed when a weight gradient needs it
    if any(wants_weight):
        for shape, weight in zip(shapes[:-1], weights[:-1], strict=True):
            inputs.append(shape.forward(inputs[-1], weight))
    weight_grads: list[torch.Tensor | None] = [None] * len(shapes)
    for i in reversed(range(len(shapes))):
        if wants_weight[i]:
            weight_grads[i] = shapes[i].weight_gradient(grad, inputs[i], weights[i])
        if i > 0 or wants_input:
            grad = shapes[i].input_gradient(grad, weights[i])
    return grad if wants_input else None, weight_grads


class _ConvChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shapes: tuple[ConvShape, ...], *weights: torch.Tensor) -> torch.Tensor:
        ctx.shapes = shapes
        ctx.save_for_backward(x if any(ctx.needs_input_grad[2:]) else None, *weights)
        return _chain_forward(x, shapes, weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, *weights = ctx.saved_tensors
        grad_x, weight_grads = _chain_backward(x, ctx.shapes, weights, grad, ctx.needs_input_grad[0],
                                               ctx.needs_input_grad[2:])
        return grad_x, None, *weight_grads


class _NormalizedConvChain(torch.autograd.Function):
    """relu(BN(z)), a training-mode BN without affine parameters, then a conv chain."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor, momentum: float,
                eps: float, shapes: tuple[ConvShape, ...], *weights: torch.Tensor) -> torch.Tensor:
        normalized, mean, invstd = torch.native_batch_norm(z, None, None, running_mean, running_var, True,
                                                           momentum, eps)
        ctx.shapes, ctx.eps = shapes, eps
        ctx.save_for_backward(z, mean, invstd, *weights)
        return _chain_forward(torch.relu_(normalized), shapes, weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        z, mean, invstd, *weights = ctx.saved_tensors
        wants_z, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[6:]
        if torch.is_grad_enabled():  # create_graph: differentiate the composition (batch statistics included)
            grad_z, weight_grads = _differentiable_gradients(z, weights, ctx.shapes, ctx.eps, grad, wants_z,
                                                             wants_weight)
        else:
            x = torch.relu_((z - mean.view(1, -1, 1, 1)) * invstd.view(1, -1, 1, 1))
            grad_x, weight_grads = _chain_backward(x, ctx.shapes, weights, grad, wants_z, wants_weight)
            grad_z = None
            if grad_x is not None:
                grad_z = torch.ops.aten.native_batch_norm_backward(
                    torch.ops.aten.threshold_backward(grad_x, x, 0), z, None, None, None, mean, invstd, True,
                    ctx.eps, [True, False, False])[0]
        return grad_z, None, None, None, None, None, *weight_grads


def _differentiable_gradients(z: torch.Tensor, weights: Sequence[torch.Tensor], shapes: tuple[ConvShape, ...],
                              eps: float, grad: torch.Tensor, wants_z: bool,
                              wants_weight: Sequence[bool]) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """The gradients of `_NormalizedConvChain`, from the composition recomputed with differentiable
    operations, torch's BN among them (only a second derivative, such as a training-mode Hessian-vector
    product, asks for them)."""
    out = conv_chain(torch.relu(F.batch_norm(z, None, None, training=True, eps=eps)), shapes, weights)
    asked = [t for t, wanted in zip([z, *weights], [wants_z, *wants_weight], strict=True) if wanted]
    grads = iter(torch.autograd.grad(out, asked, grad, create_graph=True))
    return (next(grads) if wants_z else None), [next(grads) if wanted else None for wanted in wants_weight]


def chainable(conv: nn.Module) -> bool:
    """A bias-free, zero-padded stride-1 `nn.Conv2d` whose padding does not exceed its dilated reach (so its
    input gradient is the full correlation of the output gradient, nothing cropped)."""
    if not (isinstance(conv, nn.Conv2d) and conv.bias is None and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str) and tuple(conv.stride) == (1, 1)):
        return False
    return fits_reach(tuple(conv.padding), tuple(conv.dilation), tuple(conv.kernel_size))


def fits_reach(padding: Sequence[int], dilation: Sequence[int], kernel: Sequence[int]) -> bool:
    return all(p <= d * (k - 1) for p, d, k in zip(padding, dilation, kernel, strict=True))


def conv_chain(x: torch.Tensor, shapes: Sequence[ConvShape], weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """The convs `shapes`/`weights` applied in turn to `x`, with the backward pass described above."""
    return _ConvChain.apply(x, tuple(shapes), *weights)


def normalized_conv_chain(z: torch.Tensor, bn: nn.BatchNorm2d, shapes: Sequence[ConvShape],
                          weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """`conv_chain(relu(bn(z)), shapes, weights)` for a training-mode BN without affine parameters whose
    running statistics move by momentum (it updates them as its forward would). Keeps `z` and the batch
    statistics, not the chain's input: the backward pass recomputes relu(bn(z)) from them, one
    elementwise pass. A separable conv's inner BN and ReLU feed its second chain so."""
    assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
    assert bn.momentum is not None
    out = _NormalizedConvChain.apply(z, bn.running_mean, bn.running_var, bn.momentum, bn.eps, tuple(shapes),
                                     *weights)
    bn.num_batches_tracked.add_(1)
    return out
