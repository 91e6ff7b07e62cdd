"""Chains of stride-1 convolutions whose backward pass keeps less and runs as forward convolutions.

A separable or dilated conv of the DARTS space is a depthwise conv followed by a 1x1 conv. Autograd keeps
both inputs for the backward pass, the depthwise conv's output only for the 1x1 conv's weight gradient.
`conv_chain` runs such a chain as one autograd function that keeps only the chain's input and recomputes
the inner outputs in its backward pass (a depthwise forward: cheap next to the gradients). It keeps
nothing at all when no weight needs a gradient: an architecture step, which asks only for the
architecture gradient, runs with the network weights frozen.

A conv op ends in a chain and a BN (whose per-channel scale carries the op's mixing weight, see
scaled_batch_norm.py); a separable conv's second chain starts from relu(BN(z)) of its first block's
output z. Autograd would keep z for the first BN, the ReLU's output for the ReLU and the chain, and the
chain's output for the last BN. `normalized_chain` runs [BN, ReLU,] chain and last BN as one function
that keeps only its input (z, or a dilated conv's rectified input, which the cell keeps anyway) and the
batch statistics, and recomputes the rest in its backward pass: relu(BN(z)) in one elementwise pass, the
chain's output by its convs (the inner ones the weight gradients recompute anyway, plus the last). Two
activations less per separable conv and one per dilated conv, in both steps, for one or two convs more.

The input gradient of a stride-1 convolution is itself a stride-1 convolution: the output gradient
correlated with the kernel flipped in space and with its input and output channels swapped (per group),
padded by `dilation * (kernel - 1) - padding`. On a CPU oneDNN runs that forward convolution 5-25x
faster than its own backward-data pass for the supernet's dilated depthwise convs (batch 64, two threads:
5.2 ms against 0.46 ms for a 5x5 dilated conv at C=16, 32 px), and no slower for the others. The weight
gradients are oneDNN's, those of depthwise kernels wider than 3 computed from pieces its fast kernel
takes (depthwise_grad.py). Pointwise convs, and every conv off the CPU, take the library's own backward
pass instead, both gradients in one call: on a GPU, bound by launching kernels, the CPU's routes would
only add operations (a kernel flip and a second call per conv).

Every gradient of `conv_chain` is computed with differentiable operations, so a second backward pass (the
Hessian analysis differentiates the architecture gradient) works through the chain too;
`normalized_chain` differentiates its recomputed composition when a second derivative is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.space.bn_layout import memory_layout
from pipeline.space.bn_tally import BatchNormTally
from pipeline.space.depthwise_grad import depthwise_weight_gradient, splits

Pair = tuple[int, int]
# A BN's statistics for its backward pass (`Norm.forward`).
Stats = tuple[torch.Tensor, torch.Tensor]


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

    def gradients(self, grad: torch.Tensor, x: torch.Tensor | None, weight: torch.Tensor, wants_input: bool,
                  wants_weight: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The gradients of the conv's input (if `wants_input`) and weight (if `wants_weight`); `x`, its input,
        is read only for the weight's. A pointwise conv, or any conv off the CPU, takes the library's own
        backward pass (`native_gradients`). On a CPU the others take the routes above (oneDNN's slow
        kernels are what they work around; on a GPU each would only add operations)."""
        weight = weight.to(grad.dtype)  # under autocast, convs ran in its dtype
        if self._pointwise(weight) or grad.device.type != "cpu":
            return self.native_gradients(grad, x, weight, wants_input, wants_weight)
        grad_weight = self.weight_gradient(grad, x, weight) if wants_weight else None
        return (self.input_gradient(grad, weight) if wants_input else None), grad_weight

    def native_gradients(self, grad: torch.Tensor, x: torch.Tensor | None, weight: torch.Tensor, wants_input: bool,
                         wants_weight: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Both gradients from one `convolution_backward` call: one operation where the routes above take
        two to four (a kernel launch each on a GPU); on a CPU as fast for a pointwise conv (5-20 % faster
        alone at batch 64, C=16-64, 8-32 px; the same step time within noise)."""
        # Only the input's sizes and layout matter for its gradient: an untouched tensor stands in for it.
        like = x if x is not None else torch.empty(
            (grad.shape[0], weight.shape[1] * self.groups, *self._input_size(grad, weight)), dtype=grad.dtype,
            device=grad.device, memory_format=memory_layout(grad))
        grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(
            grad, like, weight, None, [1, 1], list(self.padding), list(self.dilation), False, [0, 0], self.groups,
            [wants_input, wants_weight, False])
        return grad_x, grad_weight

    def _input_size(self, grad: torch.Tensor, weight: torch.Tensor) -> list[int]:
        """The input's height and width, from the output's: a stride-1 conv's output is the input grown by
        twice the padding and shrunk by the dilated kernel's reach."""
        return [size - 2 * pad + dil * (kernel - 1) for size, pad, dil, kernel in
                zip(grad.shape[2:], self.padding, self.dilation, weight.shape[2:], strict=True)]

    def _pointwise(self, weight: torch.Tensor) -> bool:
        return self.groups == 1 and self.padding == (0, 0) and tuple(weight.shape[2:]) == (1, 1)

    def input_gradient(self, grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """The full correlation of `grad` with the flipped, channel-swapped kernel (a forward conv)."""
        (ph, pw), (dh, dw) = self.padding, self.dilation
        kh, kw = weight.shape[2:]
        return F.conv2d(grad, input_gradient_kernel(weight, self.groups), None, 1,
                        (dh * (kh - 1) - ph, dw * (kw - 1) - pw), self.dilation, self.groups)

    def weight_gradient(self, grad: torch.Tensor, x: torch.Tensor | None, weight: torch.Tensor) -> torch.Tensor:
        """oneDNN's, or for a wide depthwise kernel on a CPU from narrow pieces (depthwise_grad.py)."""
        assert x is not None, "a weight gradient needs the conv's input"
        if splits(x, weight, self.groups):
            return depthwise_weight_gradient(grad, x, weight, self.padding, self.dilation)
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


def _conv_inputs(x: torch.Tensor | None, shapes: Sequence[ConvShape], weights: Sequence[torch.Tensor],
                 count: int) -> list[torch.Tensor | None]:
    """The inputs of the chain's first `count` convs (at least the chain's input), recomputed from `x`."""
    inputs = [x]
    for shape, weight in zip(shapes[: count - 1], weights[: count - 1], strict=True):
        inputs.append(shape.forward(inputs[-1], weight))
    return inputs


def _chain_backward(inputs: Sequence[torch.Tensor | None], shapes: Sequence[ConvShape],
                    weights: Sequence[torch.Tensor], grad: torch.Tensor, wants_input: bool,
                    wants_weight: Sequence[bool]) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
    """The chain's input gradient (if `wants_input`) and weight gradients (where `wants_weight`); `inputs`
    are the first convs' inputs (`_conv_inputs`: all up to the last whose weight gradient is wanted)."""
    weight_grads: list[torch.Tensor | None] = [None] * len(shapes)
    for i in reversed(range(len(shapes))):
        x = inputs[i] if i < len(inputs) else None
        grad, weight_grads[i] = shapes[i].gradients(grad, x, weights[i], i > 0 or wants_input, wants_weight[i])
    return grad, weight_grads


@dataclass(frozen=True)
class Autocast:
    """The autocast state a forward pass ran under. A backward pass that recomputes forward convs runs
    under it again, so that they cast as they did in the forward pass (`torch.amp.custom_bwd`'s job, but
    for the device of the tensors at hand, not one fixed where the function is defined)."""

    device_type: str
    enabled: bool
    dtype: torch.dtype

    @classmethod
    def of(cls, x: torch.Tensor) -> Autocast:
        kind = x.device.type
        return cls(kind, torch.is_autocast_enabled(kind), torch.get_autocast_dtype(kind))

    def __call__(self) -> torch.autocast:
        return torch.autocast(self.device_type, self.dtype, self.enabled)


class _ConvChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, shapes: tuple[ConvShape, ...], *weights: torch.Tensor) -> torch.Tensor:
        ctx.shapes, ctx.autocast = shapes, Autocast.of(x)
        ctx.save_for_backward(x if any(ctx.needs_input_grad[2:]) else None, *weights)
        return _chain_forward(x, shapes, weights)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, *weights = ctx.saved_tensors
        wants_weight = ctx.needs_input_grad[2:]
        with ctx.autocast():
            inputs = _conv_inputs(x, ctx.shapes, weights, len(weights) if any(wants_weight) else 1)
            grad_x, weight_grads = _chain_backward(inputs, ctx.shapes, weights, grad, ctx.needs_input_grad[0],
                                                   wants_weight)
        return grad_x, None, *weight_grads


@dataclass(frozen=True)
class Norm:
    """A BN without affine parameters. In training mode it normalises by the batch statistics and moves its
    running statistics by `momentum`; in evaluation mode it normalises by the running statistics.

    `forward` returns the statistics the backward pass needs beside the output: the batch mean and inverse
    std in training mode, a copy of the running mean and variance in evaluation mode (a later training
    step moves the running statistics in place)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor
    momentum: float
    eps: float
    training: bool

    @classmethod
    def of(cls, bn: nn.BatchNorm2d) -> Norm:
        assert bn.running_mean is not None and bn.running_var is not None and bn.momentum is not None
        return cls(bn.running_mean, bn.running_var, bn.momentum, bn.eps, bn.training)

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Output and statistics (the running statistics move as the module's would)."""
        out, mean, invstd = torch.native_batch_norm(x, scale, None, self.running_mean, self.running_var,
                                                    self.training, self.momentum, self.eps)
        if self.training:
            return out, mean, invstd
        return out, self.running_mean.clone(), self.running_var.clone()

    def normalized(self, x: torch.Tensor, stats: Stats) -> torch.Tensor:
        """The output again (without scale), from the statistics `forward` returned, in x's dtype (as the BN
        kernel returned it; under autocast the statistics are wider)."""
        mean, spread = stats
        invstd = spread if self.training else (spread + self.eps).rsqrt()
        return ((x - mean.view(1, -1, 1, 1)) * invstd.view(1, -1, 1, 1)).to(x.dtype)

    def backward(self, grad: torch.Tensor, x: torch.Tensor, scale: torch.Tensor | None,
                 stats: Stats, wants_scale: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The input's gradient and, if `wants_scale`, the scale's."""
        batch, running = (stats, (None, None)) if self.training else ((None, None), stats)
        grad_x, grad_scale, _ = torch.ops.aten.native_batch_norm_backward(
            grad, x, scale, *running, *batch, self.training, self.eps, [True, wants_scale, False])
        return grad_x, grad_scale

    def differentiable(self, x: torch.Tensor, scale: torch.Tensor | None,
                       stats: Stats) -> torch.Tensor:
        """The output by torch's twice-differentiable BN, the running statistics left alone."""
        running = (None, None) if self.training else stats
        return F.batch_norm(x, *running, scale, None, training=self.training, eps=self.eps)


class _NormalizedChain(torch.autograd.Function):
    """[relu(BN(t)) ->] conv chain -> BN scaled per channel, each BN without affine parameters of its own.
    Keeps t and the BNs' statistics; the backward pass recomputes the rest."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, scale: torch.Tensor, before: Norm | None, after: Norm,
                shapes: tuple[ConvShape, ...], *weights: torch.Tensor) -> torch.Tensor:
        ctx.before, ctx.after, ctx.shapes, ctx.autocast = before, after, shapes, Autocast.of(t)
        x, before_stats = t, (None, None)
        if before is not None:
            x, *before_stats = before.forward(t, None)
            torch.relu_(x)
        out, *after_stats = after.forward(_chain_forward(x, shapes, weights), scale)
        ctx.save_for_backward(t, scale, *before_stats, *after_stats, *weights)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        with ctx.autocast():
            return _NormalizedChain.gradients(ctx, grad)

    @staticmethod
    def gradients(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        t, scale, *saved = ctx.saved_tensors
        before_stats, after_stats, weights = tuple(saved[:2]), tuple(saved[2:4]), saved[4:]
        before, after, shapes = ctx.before, ctx.after, ctx.shapes
        wants_t, wants_scale, wants_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[5:]
        if torch.is_grad_enabled():  # create_graph: differentiate the composition (batch statistics included)
            grad_t, grad_scale, weight_grads = _differentiable_gradients(
                t, scale, before, after, (before_stats, after_stats), shapes, weights, grad,
                (wants_t, wants_scale, *wants_weight))
            return grad_t, grad_scale, None, None, None, *weight_grads
        x = t if before is None else torch.relu_(before.normalized(t, before_stats))
        inputs = _conv_inputs(x, shapes, weights, len(shapes))
        z = shapes[-1].forward(inputs[-1], weights[-1])  # the last BN's input
        grad_z, grad_scale = after.backward(grad, z, scale, after_stats, wants_scale)
        del z
        grad_t, weight_grads = None, [None] * len(shapes)
        if wants_t or any(wants_weight):
            grad_t, weight_grads = _chain_backward(inputs, shapes, weights, grad_z, wants_t, wants_weight)
        if before is not None and grad_t is not None:
            grad_t = before.backward(torch.ops.aten.threshold_backward(grad_t, x, 0), t, None, before_stats,
                                     False)[0]
        return grad_t, grad_scale, None, None, None, *weight_grads


def _differentiable_gradients(t: torch.Tensor, scale: torch.Tensor, before: Norm | None, after: Norm,
                              stats: tuple[Stats, Stats], shapes: tuple[ConvShape, ...],
                              weights: Sequence[torch.Tensor], grad: torch.Tensor, wanted: Sequence[bool],
                              ) -> tuple[torch.Tensor | None, torch.Tensor | None, list[torch.Tensor | None]]:
    """The gradients of `_NormalizedChain` (of t, scale and the weights, where `wanted`), from the composition
    recomputed with differentiable operations, torch's BN among them (only a second derivative, such as a
    Hessian-vector product, asks for them)."""
    before_stats, after_stats = stats
    x = t if before is None else torch.relu(before.differentiable(t, None, before_stats))
    out = after.differentiable(conv_chain(x, shapes, weights), scale, after_stats)
    asked = [tensor for tensor, wants in zip([t, scale, *weights], wanted, strict=True) if wants]
    grads = iter(torch.autograd.grad(out, asked, grad, create_graph=True))
    grad_t, grad_scale, *weight_grads = [next(grads) if wants else None for wants in wanted]
    return grad_t, grad_scale, weight_grads


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


def normalized_chain(t: torch.Tensor, shapes: Sequence[ConvShape], weights: Sequence[torch.Tensor],
                     after: nn.BatchNorm2d, scale: torch.Tensor, before: nn.BatchNorm2d | None,
                     tally: BatchNormTally) -> torch.Tensor:
    """`scale * after(conv_chain(relu(before(t)), shapes, weights))` (without `before`: the chain on t),
    `scale` one value per channel (`after`'s affine weight, which it lacks; the search cells' mixing
    weight), `before` and `after` BNs without affine parameters whose running statistics move by momentum
    (as their forward passes would; their batch counters in `tally`), each in training or evaluation mode.
    Keeps `t` and the statistics only; the backward pass recomputes relu(before(t)) (one elementwise pass)
    and the chain's output (its convs)."""
    out = _NormalizedChain.apply(t, scale, None if before is None else Norm.of(before), Norm.of(after),
                                 tuple(shapes), *weights)
    for bn in (before, after):
        if bn is not None and bn.training:
            tally.count(bn)
    return out
