"""The weight gradient of a wide depthwise conv on a CPU, as weight gradients of kernels oneDNN runs fast.

oneDNN's fast depthwise weight-gradient kernel takes kernels at most 3 wide and undilated; anything else
falls to a generic kernel 5-50x slower (batch 64, two threads: a 5x3 kernel at C=16, 32 px takes 0.5 ms,
a 5x5 one 4.1 ms; a 5x5 dilated one at C=64, 8 px 14 ms). The separable and dilated 5x5 convs of the DARTS
space are such convs. Their gradient is computed here from pieces the fast kernel takes:

* Dilation d: tap i of a dilated conv reads input row h + d*i for output row h, so output rows of one
  phase r (h = d*h' + r) read only input rows of phase r, consecutively: the dilated correlation is the
  sum over phases of undilated ones, and the phases, stacked along the batch, are one undilated problem.
* Width: columns of the kernel in windows of 3, each the weight gradient of a kernel 3 wide on the
  input's matching columns (the last window overlaps the one before where the width is no multiple of 3).

The input is padded explicitly (the pieces run unpadded), and rows or columns a phase lacks are zeros of
the output gradient. Measured (batch 64, two threads, CIFAR sizes): 5x5 4.1 -> 2.1 ms at C=16, 32 px,
3.0 -> 1.5 ms at C=32, 16 px; 5x5 dilated 7.5 -> 3.9 ms, 3.0 -> 2.5 ms, 14.0 -> 2.4 ms at C=64, 8 px.
Kernels 3 wide are left to oneDNN: for them (3x3 dilated) the split gained at most 1.3x and lost at 8 px.
Every operation used is differentiable, so second derivatives through it still work.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

FAST_WIDTH = 3  # the widest kernel oneDNN's fast depthwise weight gradient takes


def splits(x: torch.Tensor, weight: torch.Tensor, groups: int) -> bool:
    """A depthwise conv on a CPU whose kernel is wider than the fast kernel takes."""
    return (x.device.type == "cpu" and weight.shape[1] == 1 and groups == weight.shape[0] == x.shape[1]
            and weight.shape[3] > FAST_WIDTH)


def depthwise_weight_gradient(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                              padding: tuple[int, int], dilation: tuple[int, int]) -> torch.Tensor:
    """The weight gradient of the stride-1 depthwise conv (`weight`, `padding`, `dilation`) of `x` whose
    output gradient is `grad`, from the pieces described above."""
    (ph, pw), (dh, dw) = padding, dilation
    height, width = grad.shape[2:]
    extra_h, extra_w = -height % dh, -width % dw  # zero rows/columns that give every phase one size
    padded = F.pad(x, (pw, pw + extra_w, ph, ph + extra_h))
    if extra_h or extra_w:
        grad = F.pad(grad, (0, extra_w, 0, extra_h))
    if dh > 1 or dw > 1:
        grad, padded = (torch.cat([t[:, :, r::dh, s::dw] for r in range(dh) for s in range(dw)])
                        for t in (grad, padded))
    kw, out_width = weight.shape[3], grad.shape[3]
    pieces, done = [], 0
    for start in [*range(0, kw - FAST_WIDTH, FAST_WIDTH), kw - FAST_WIDTH]:
        window = padded[:, :, :, start : start + out_width + FAST_WIDTH - 1]
        piece = torch.ops.aten.convolution_backward(
            grad, window, weight[:, :, :, start : start + FAST_WIDTH], None, [1, 1], [0, 0], [1, 1], False, [0, 0],
            weight.shape[0], [False, True, False])[1]
        pieces.append(piece[:, :, :, done - start :])
        done = start + FAST_WIDTH
    return torch.cat(pieces, dim=3)
