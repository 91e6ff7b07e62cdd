"""Batch norm of narrow channels-last tensors, run in NCHW.

PyTorch's channels-last BN kernels on a CPU vectorise over channels, so below one vector of channels
(16 fp32 lanes) they run several times slower than the NCHW kernels: at batch 64, two threads, forward
and backward of a 4-channel 32 px BN take 5.3 ms channels-last against 0.8 ms in NCHW, of an 8-channel
16 px BN 1.9 ms against 0.4 ms; from 16 channels the two are within 10 %. PC-DARTS' ops see C/K = 4-16
channels. Such a BN runs on an NCHW copy of its input (the copy is what its backward keeps, instead of
the input) and its output and input gradient return to channels-last, where the convolutions are fast.
Only on a CPU: the kernels measured are its.

`memory_layout` says which of the two layouts a tensor is in, for the fast path's functions that build a
tensor (a gradient) in the layout of another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

CHANNELS_LAST = torch.channels_last
NARROW_CHANNELS = 16


class _Relayout(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layout: torch.memory_format,
                grad_layout: torch.memory_format) -> torch.Tensor:
        ctx.layouts = layout, grad_layout
        return x.contiguous(memory_format=layout)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        layout, grad_layout = ctx.layouts
        return relayout(grad, grad_layout, layout), None, None


def relayout(x: torch.Tensor, layout: torch.memory_format, grad_layout: torch.memory_format) -> torch.Tensor:
    """`x` in memory layout `layout`, its gradient in `grad_layout` (the layout the kernels that produced
    `x` take their gradients in; `Tensor.contiguous` passes a gradient on in whatever layout it came)."""
    return _Relayout.apply(x, layout, grad_layout)


def memory_layout(x: torch.Tensor) -> torch.memory_format:
    """Channels-last for a tensor laid out so (and not also contiguous, as one of 1x1 pixels is), else NCHW."""
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=CHANNELS_LAST) and not x.is_contiguous()
    return CHANNELS_LAST if channels_last else torch.contiguous_format


def narrow(channels: int, device: torch.device) -> bool:
    """Fewer channels than one fp32 vector on a CPU: a channels-last BN of them is faster in NCHW (the
    vectorisation above is the CPU kernels'; elsewhere the relayout would only add operations)."""
    return device.type == "cpu" and channels < NARROW_CHANNELS


def narrow_channels_last(x: torch.Tensor) -> bool:
    """A channels-last tensor of `narrow` channels: its BN is faster in NCHW."""
    return memory_layout(x) is CHANNELS_LAST and narrow(x.shape[1], x.device)


def batch_norm_in_fast_layout(norm: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`norm(x)` for a BN `norm`, run in NCHW when `x` is `narrow_channels_last`; the output and the
    gradient with respect to `x` are then channels-last again."""
    if not narrow_channels_last(x):
        return norm(x)
    out = norm(relayout(x, torch.contiguous_format, CHANNELS_LAST))
    return relayout(out, CHANNELS_LAST, torch.contiguous_format)
