"""The fast supernet: the same network, weights and numbers as `Supernet`, computed with less work.

`FastSupernet` is a `Supernet` (same modules, parameters, state dict, checkpoints, DrNAS widening,
`functional_call` for second-order DARTS) that only changes how a cell is evaluated:

* Channels-last memory layout. On a CPU the depthwise and 1x1 convolutions of the separable and dilated
  ops run 3-4x faster on NHWC tensors than on NCHW ones; on a GPU channels-last feeds the tensor cores.
* Edge by source state. Every edge leaving one state applies the same candidate op types to the same
  tensor, so the ReLU that starts each convolutional op is computed once per state instead of once per
  op and edge, and so are the max and average pooling and, in training mode, the BN after them (its
  output depends on the batch only; each edge's running statistics are still updated as its own). The
  second ReLU of a separable conv runs in place on its BN output, which that BN's backward does not
  need. Fewer tensors are kept for the backward pass.
* A conv whose dilation equals its stride (the dilated convs of reduction edges) reads only every
  second pixel, so it runs as the plain conv of that subsample: oneDNN's backward pass of the strided
  dilated depthwise conv costs 10-25x that of the plain one on a CPU.
* The ops to compute still come from the caller (`Supernet.forward` decides them once, for both paths),
  so a method that skips zero-weight ops, or computes every op, gets the same decision on either path.

Batching the edges that leave one state into grouped convolutions was measured and dropped on the CPU:
PyTorch's grouped convolution with one group per (edge, channel) ran 2-3x slower than the per-edge
convolutions it replaces (see README, "Fast supernet").
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.space.global_batch_norm import GlobalBatchNorm2d
from pipeline.space.primitives import DilConv, FactorizedReduce, Identity, SepConv
from pipeline.space.supernet import ArchWeights, SearchCell, Supernet, num_edges

CHANNELS_LAST = torch.channels_last


class SharedInput:
    """The work every edge leaving one state can share: its ReLU and its max/avg pools, computed once."""

    def __init__(self) -> None:
        self._rectified: torch.Tensor | None = None
        self._pooled: dict[tuple[type[nn.Module], int], torch.Tensor] = {}
        self._normalized: dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def rectified(self, x: torch.Tensor) -> torch.Tensor:
        if self._rectified is None:
            self._rectified = torch.relu(x)
        return self._rectified

    def pooled(self, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
        stride = pool.stride if isinstance(pool.stride, int) else pool.stride[0]  # type: ignore[union-attr]
        key = (type(pool), int(stride))
        if key not in self._pooled:
            self._pooled[key] = pool(x)
        return self._pooled[key]

    def apply(self, op: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`op(x)`, with the ReLU and pooling that start it taken from the shared results."""
        if isinstance(op, Identity):
            return x
        if isinstance(op, SepConv):
            first, second = op
            return _conv_tail(second, torch.relu_(_conv_tail(first, self.rectified(x))))
        if isinstance(op, DilConv):
            return _conv_tail(op, self.rectified(x))
        if isinstance(op, FactorizedReduce):
            return op.reduce_rectified(self.rectified(x))
        if isinstance(op, nn.Sequential) and isinstance(op[0], nn.MaxPool2d | nn.AvgPool2d):
            pooled = self.pooled(op[0], x)
            if len(op) == 2 and _shareable_batch_norm(op[1]):
                return self.normalized(op[0], pooled, op[1])
            out = pooled
            for layer in list(op)[1:]:
                out = layer(out)
            return out
        return op(x)

    def normalized(self, pool: nn.Module, pooled: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
        """BN of a shared pool in training mode: the output depends on the batch only, so it is computed
        once; each edge's BN still updates its own running statistics, as its own call would."""
        key = id(pooled), bn.eps
        if key not in self._normalized:
            with torch.no_grad():
                var, mean = torch.var_mean(pooled, dim=(0, 2, 3), correction=1)
            out = nn.functional.batch_norm(pooled, None, None, training=True, eps=bn.eps)
            self._normalized[key] = (out, mean, var)
        out, mean, var = self._normalized[key]
        momentum = bn.momentum
        assert momentum is not None and bn.running_mean is not None and bn.running_var is not None
        assert bn.num_batches_tracked is not None
        with torch.no_grad():
            bn.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
            bn.running_var.mul_(1 - momentum).add_(var, alpha=momentum)
            bn.num_batches_tracked.add_(1)
        return out


def _shareable_batch_norm(bn: nn.Module) -> bool:
    """A training-mode BN without affine parameters and with momentum-averaged running statistics, of this
    process's batch (a data-parallel search's global BN runs its own forward)."""
    return (isinstance(bn, nn.BatchNorm2d) and not isinstance(bn, GlobalBatchNorm2d) and bn.training
            and not bn.affine and bn.track_running_stats and bn.momentum is not None)


def _conv_tail(block: nn.Sequential, rectified: torch.Tensor) -> torch.Tensor:
    """A [ReLU, conv, ..., BN] block applied to an input whose ReLU is already done."""
    out = rectified
    for layer in list(block)[1:]:
        out = conv_on_read_pixels(layer, out) if reads_one_pixel_in_stride(layer) else layer(out)
    return out


def reads_one_pixel_in_stride(conv: nn.Module) -> bool:
    """A conv whose dilation equals its stride s > 1, with padding a multiple of s: every tap of every
    output lands on a pixel at a multiple of s (output h, tap i reads row s*h + s*i - padding), so it
    reads only the input's (::s, ::s) subsample. The dilated convs of reduction edges are such convs."""
    return (isinstance(conv, nn.Conv2d) and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.stride[0] == conv.dilation[0] > 1 and conv.stride[1] == conv.dilation[1] > 1
            and conv.padding[0] % conv.stride[0] == 0 and conv.padding[1] % conv.stride[1] == 0)


def conv_on_read_pixels(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """`conv(x)` as the plain (stride 1, dilation 1) conv of the subsample it reads: the same products and
    sums, but oneDNN's backward pass of a strided dilated depthwise conv on a CPU takes 10-25x that of
    the plain one (41.7 ms against 2.9 ms for a 3x3 dil_conv at batch 64, C=32, 32 px)."""
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    return nn.functional.conv2d(x[:, :, ::sh, ::sw], conv.weight, conv.bias, 1, (ph // sh, pw // sw), 1, conv.groups)


def _node_sum(terms: list[torch.Tensor]) -> torch.Tensor:
    """Sum in edge order by pairwise adds (keeps channels-last, unlike stack + sum)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def fast_cell_forward(cell: SearchCell, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                      edge_weights: torch.Tensor | None, active: list[list[int]]) -> torch.Tensor:
    """`cell(s0, s1, ...)` evaluated source state by source state, sharing each state's ReLU and pools."""
    nodes = cell.nodes
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    incoming: list[list[torch.Tensor]] = [[] for _ in range(nodes)]
    for source in range(nodes + 1):  # the last node feeds no edge inside the cell
        if source >= 2:
            states.append(_node_sum(incoming[source - 2]))
        shared = SharedInput()
        apply: Callable[[nn.Module, torch.Tensor], torch.Tensor] = shared.apply
        for node in range(max(0, source - 1), nodes):
            edge = num_edges(node) + source
            y = cell.edges[edge](states[source], weights[edge], active[edge], apply)
            incoming[node].append(y if edge_weights is None else edge_weights[edge] * y)
    states.append(_node_sum(incoming[-1]))
    return torch.cat(states[-nodes:], dim=1)


class FastSupernet(Supernet):
    """`Supernet` with cells evaluated by `fast_cell_forward` on channels-last tensors."""

    def forward(self, x: torch.Tensor, arch: ArchWeights) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=CHANNELS_LAST), arch)

    def run_cell(self, cell: SearchCell, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                 edge_weights: torch.Tensor | None, active: list[list[int]]) -> torch.Tensor:
        return fast_cell_forward(cell, s0, s1, weights, edge_weights, active)


SUPERNETS: dict[str, type[Supernet]] = {"fast": FastSupernet, "reference": Supernet}


def supernet_class(kind: str) -> type[Supernet]:
    """The supernet implementation `search.supernet` names: `fast` (default) or the `reference` oracle."""
    if kind not in SUPERNETS:
        raise ValueError(f"search.supernet: unknown supernet '{kind}'; known: {', '.join(SUPERNETS)}")
    return SUPERNETS[kind]
