"""The fast supernet: the same network, weights and numbers as `Supernet`, computed with less work.

`FastSupernet` is a `Supernet` (same modules, parameters, state dict, checkpoints, DrNAS widening,
`functional_call` for second-order DARTS) that only changes how a cell is evaluated:

* Channels-last memory layout. On a CPU the depthwise and 1x1 convolutions of the separable and dilated
  ops run 3-4x faster on NHWC tensors than on NCHW ones (10-25x at PC-DARTS' 4 channels); on a GPU
  channels-last feeds the tensor cores. PC-DARTS' channel shuffle keeps the layout (torch's shuffle), and
  a BN of fewer than 16 channels runs in NCHW, where its CPU kernel is faster (bn_layout.py).
* Edge by source state. Every edge leaving one state applies the same candidate op types to the same
  tensor, so the ReLU that starts each convolutional op is computed once per state instead of once per
  op and edge, and so are the max and average pooling and, in training mode, the BN after them (its
  output depends on the batch only; each edge's running statistics are still updated as its own). The
  second ReLU of a separable conv runs in place on its BN output, which that BN's backward does not
  need. Fewer tensors are kept for the backward pass. The max pool keeps the state, not its indices
  (max_pool.py).
* A strided conv that reads only every s-th pixel (the dilated convs of reduction edges, FactorizedReduce's
  1x1 convs) runs as the stride-1 conv of that subsample: oneDNN's backward pass of the strided dilated
  depthwise conv costs 10-25x that of the plain one on a CPU. The subsample's gradient keeps the state's
  layout (pixel_grid.py).
* The depthwise and 1x1 convs of each separable/dilated conv run as one `conv_chain` (fast_conv.py): it
  keeps only its input, none at all in an architecture step, and runs input gradients as forward convs.
* A conv op's last BN and its mixing weight run as one BN whose per-channel scale is the weight
  (`scaled_batch_norm`): no separate multiplication in either pass, and the BN's output is not kept for
  the weight's gradient (the BN kernel forms that gradient from its input).
* That BN runs inside the op's last chain, and a separable conv's inner BN and ReLU too
  (`normalized_chain`): it keeps the chain's input (the shared ReLU's output, or the inner BN's input),
  and its backward pass recomputes the chain's output instead of keeping it.
* Bookkeeping in bulk: the mixing weights become their BNs' per-channel scales for the whole cell in a
  few operations (`channel_scales`), and the BN counters and shared-pool statistics of a cell move at
  its end in a few `_foreach` operations (`BatchNormTally`): on a GPU, bound by launching kernels, each
  operation is a launch (darts_1st: 5 704 fewer a step).
* PC-DARTS' partial channels: each state is split once for all its edges into dense parts whose gradient
  is one concat (partial_channels.py), and the ops' sum gets a dense gradient from the edge's concat.
* The CPU's workarounds (input gradients as forward convs, split depthwise weight gradients, narrow BNs
  in NCHW) apply on the CPU only; elsewhere a conv's backward pass is the library's, one call.
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

from pipeline.space.bn_layout import batch_norm_in_fast_layout, memory_layout, narrow, relayout
from pipeline.space.bn_tally import BatchNormTally
from pipeline.space.fast_conv import ConvShape, Pair, chainable, conv_chain, fits_reach, normalized_chain
from pipeline.space.max_pool import max_pool_keeping_input
from pipeline.space.partial_channels import split_channels
from pipeline.space.pixel_grid import pixel_grid
from pipeline.space.primitives import DilConv, FactorizedReduce, Identity, SepConv
from pipeline.space.scaled_batch_norm import (
    channel_scales,
    plain_batch_norm,
    plain_training_batch_norm,
    scaled_batch_norm,
)
from pipeline.space.supernet import ArchWeights, SearchCell, Supernet, num_edges

CHANNELS_LAST = torch.channels_last
# A conv op's last chain: its input, conv shapes and weights, and the BN (if any) whose ReLU starts it.
LastChain = tuple[torch.Tensor, list[ConvShape], list[torch.Tensor], nn.BatchNorm2d | None]
# `read_pixels` or a function like it: the subsample a strided conv reads, and the stride-1 conv on it.
Reader = Callable[[nn.Conv2d, torch.Tensor], tuple[torch.Tensor, ConvShape]]


class SharedInput:
    """The work every edge leaving one state can share, computed once: its ReLU, its max/avg pools, and
    PC-DARTS' split of its channels."""

    def __init__(self, tally: BatchNormTally, scales: dict[nn.Module, torch.Tensor]) -> None:
        self.tally = tally
        self.scales = scales
        self._rectified: torch.Tensor | None = None
        self._pooled: dict[tuple[type[nn.Module], int], torch.Tensor] = {}
        self._normalized: dict[tuple[int, float], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._subsampled: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}
        self._split: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def rectified(self, x: torch.Tensor) -> torch.Tensor:
        if self._rectified is None:
            self._rectified = torch.relu(x)
        return self._rectified

    def partial(self, x: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """PC-DARTS' split of the state into the channels that enter the ops and those that bypass them,
        made once for all the edges leaving it (partial_channels.py)."""
        if channels not in self._split:
            self._split[channels] = split_channels(x, channels)
        return self._split[channels]

    def parts(self, out: torch.Tensor, rest: torch.Tensor) -> list[torch.Tensor]:
        """The ops' sum and the bypassed channels for the edge's concat; the sum's gradient, a channel slice
        of the concat's, made dense (the ops' last BNs take it)."""
        return [relayout(out, memory_layout(out), memory_layout(out)), rest]

    def read_pixels(self, conv: nn.Conv2d, x: torch.Tensor) -> tuple[torch.Tensor, ConvShape]:
        """`read_pixels`, with one subsample (a view) per input and stride for all the convs that read it:
        their gradients then add up at the subsample's size, and the view's backward pass (zeros of the
        full size, the gradient copied into every s-th pixel) runs once, not once per conv."""
        key = (id(x), tuple(conv.stride))
        if key not in self._subsampled:
            self._subsampled[key] = pixel_grid(x, tuple(conv.stride))
        return self._subsampled[key], subsample_conv(conv)

    def pooled(self, pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
        stride = pool.stride if isinstance(pool.stride, int) else pool.stride[0]  # type: ignore[union-attr]
        key = (type(pool), int(stride))
        if key not in self._pooled:
            keeps_input = isinstance(pool, nn.MaxPool2d) and not pool.return_indices
            self._pooled[key] = max_pool_keeping_input(pool, x) if keeps_input else pool(x)
        return self._pooled[key]

    def term(self, op: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """`weight * op(x)`. A conv op's last BN takes the weight as its per-channel scale (made for the
        whole cell: `self.scales`, `scaled_ops`) and, where it can, runs inside the op's last conv chain
        (`normalized_chain`), which keeps that chain's input instead of the BN's (kept anyway: the shared
        ReLU, or a separable conv's inner BN input)."""
        if op in self.scales:
            assert isinstance(op, SepConv | DilConv)
            bn, scale = _last_block(op)[-1], self.scales[op]
            last_chain = None if narrow(bn.num_features, x.device) else self._last_chain(op, x)
            if last_chain is None:
                return scaled_batch_norm(self._before_last_bn(op, x), scale, bn, self.tally)
            start, shapes, weights, before = last_chain
            return normalized_chain(start, shapes, weights, bn, scale, before, self.tally)
        return weight * self.apply(op, x)

    def _last_chain(self, op: SepConv | DilConv, x: torch.Tensor) -> LastChain | None:
        """The input of a conv op's last conv chain, the chain, and the BN before it (a separable conv's
        inner BN, whose ReLU starts the chain), if the op's last block is such a chain."""
        if isinstance(op, DilConv):
            start, shapes, weights = _pending_chain(op, self.rectified(x), -1, self.read_pixels)
            return (start, shapes, weights, None) if shapes else None
        first, second = op
        convs = list(second)[1:-1]
        if not (plain_batch_norm(first[-1]) and all(chainable(conv) for conv in convs)):
            return None
        return (_conv_tail(first, self.rectified(x), -1, self.read_pixels), [ConvShape.of(conv) for conv in convs],
                [conv.weight for conv in convs], first[-1])

    def _before_last_bn(self, op: SepConv | DilConv, x: torch.Tensor) -> torch.Tensor:
        """A conv op's output before its last BN."""
        if isinstance(op, DilConv):
            return _conv_tail(op, self.rectified(x), -1, self.read_pixels)
        first, second = op
        z = _conv_tail(first, self.rectified(x), -1, self.read_pixels)
        return _conv_tail(second, torch.relu_(_layer(first[-1], z)), through=-1)

    def apply(self, op: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """`op(x)`, with the ReLU and pooling that start it taken from the shared results."""
        if isinstance(op, Identity):
            return x
        if isinstance(op, SepConv | DilConv):
            return _layer(_last_block(op)[-1], self._before_last_bn(op, x))
        if isinstance(op, FactorizedReduce):
            return factorized_reduce(op, self.rectified(x))
        if isinstance(op, nn.Sequential) and isinstance(op[0], nn.MaxPool2d | nn.AvgPool2d):
            pooled = self.pooled(op[0], x)
            if len(op) == 2 and plain_training_batch_norm(op[1]):
                return self.normalized(op[0], pooled, op[1])
            out = pooled
            for layer in list(op)[1:]:
                out = _layer(layer, out)
            return out
        return op(x)

    def normalized(self, pool: nn.Module, pooled: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
        """BN of a shared pool in training mode: the output depends on the batch only, so it is computed
        once; each edge's BN still updates its own running statistics, as its own call would."""
        key = id(pooled), bn.eps
        if key not in self._normalized:
            # Running statistics of momentum 1 receive the batch's own mean and unbiased variance, as
            # the BN kernel computes them (no second pass over the pooled tensor for them).
            mean, var = pooled.new_zeros(pooled.shape[1]), pooled.new_zeros(pooled.shape[1])
            out = batch_norm_in_fast_layout(
                lambda x: nn.functional.batch_norm(x, mean, var, training=True, momentum=1.0, eps=bn.eps), pooled)
            self._normalized[key] = (out, mean, var)
        out, mean, var = self._normalized[key]
        self.tally.move(bn, mean, var)
        self.tally.count(bn)
        return out


def _layer(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)`; a BN in the layout it is fastest in (bn_layout.py)."""
    return batch_norm_in_fast_layout(layer, x) if isinstance(layer, nn.BatchNorm2d) else layer(x)


def _last_block(op: SepConv | DilConv) -> DilConv:
    """The [ReLU, conv, ..., BN] block that ends a conv op (a separable conv has two)."""
    return op[-1] if isinstance(op, SepConv) else op


def _conv_tail(block: nn.Sequential, rectified: torch.Tensor, through: int | None = None,
               read: Reader | None = None) -> torch.Tensor:
    """A [ReLU, conv, ..., BN] block (its layers up to `through`, exclusive, if given) applied to an input
    whose ReLU is already done; consecutive stride-1 convs run as one `conv_chain`, a conv that reads one
    pixel in stride on the subsample `read` (default `read_pixels`) gives."""
    out, shapes, weights = _pending_chain(block, rectified, through, read)
    return conv_chain(out, shapes, weights) if shapes else out


def _pending_chain(block: nn.Sequential, rectified: torch.Tensor, through: int | None,
                   read: Reader | None = None) -> tuple[torch.Tensor, list[ConvShape], list[torch.Tensor]]:
    """`_conv_tail` up to its last run of chainable convs: that chain's input, shapes and weights (no
    shapes if the block's last layer before `through` is no such conv)."""
    out = rectified
    shapes: list[ConvShape] = []
    weights: list[torch.Tensor] = []
    for layer in list(block)[1:through]:
        if reads_one_pixel_in_stride(layer) or not chainable(layer):
            if shapes:
                out, shapes, weights = conv_chain(out, shapes, weights), [], []
            if not reads_one_pixel_in_stride(layer):
                out = _layer(layer, out)
                continue
            out, shape = (read or read_pixels)(layer, out)
        else:
            shape = ConvShape.of(layer)
        shapes.append(shape)
        weights.append(layer.weight)
    return out, shapes, weights


def reads_one_pixel_in_stride(conv: nn.Module) -> bool:
    """A bias-free, zero-padded conv with stride s > 1 whose every tap lands on a pixel at a multiple of s:
    output h, tap i reads row s*h + d*i - p, so p and the dilation d must be multiples of s (d does not
    matter for a 1x1 kernel). It reads only the input's (::s, ::s) subsample. The dilated convs of
    reduction edges (d = s = 2) and FactorizedReduce's 1x1 convs are such convs."""
    if not (isinstance(conv, nn.Conv2d) and conv.bias is None and conv.padding_mode == "zeros"
            and not isinstance(conv.padding, str)):
        return False
    per_dim = list(zip(conv.stride, conv.dilation, conv.padding, conv.kernel_size, strict=True))
    return (all(s > 1 and p % s == 0 and (d % s == 0 or k == 1) for s, d, p, k in per_dim)
            and fits_reach(*_read_pixels_shape(conv)))


def _read_pixels_shape(conv: nn.Conv2d) -> tuple[Pair, Pair, Pair]:
    """Padding, dilation and kernel of the stride-1 conv on the subsample that `conv` reads."""
    per_dim = list(zip(conv.stride, conv.dilation, conv.padding, conv.kernel_size, strict=True))
    padding = (per_dim[0][2] // per_dim[0][0], per_dim[1][2] // per_dim[1][0])
    dilation = tuple(1 if k == 1 else d // s for s, d, _, k in per_dim)
    return padding, (dilation[0], dilation[1]), (conv.kernel_size[0], conv.kernel_size[1])


def read_pixels(conv: nn.Conv2d, x: torch.Tensor, start: Pair = (0, 0)) -> tuple[torch.Tensor, ConvShape]:
    """The subsample a conv that `reads_one_pixel_in_stride` reads (of `x` from pixel `start` on), and the
    stride-1 conv that computes `conv(x)` on it: the same products and sums, but oneDNN's backward pass of
    a strided dilated depthwise conv on a CPU takes 10-25x that of the plain one (41.7 ms against 2.9 ms
    for a 3x3 dil_conv at batch 64, C=32, 32 px). The subsample's gradient keeps x's layout (pixel_grid.py)."""
    return pixel_grid(x, tuple(conv.stride), start), subsample_conv(conv)


def subsample_conv(conv: nn.Conv2d) -> ConvShape:
    """The stride-1 conv that computes `conv`, a conv that `reads_one_pixel_in_stride`, on its subsample."""
    padding, dilation, _ = _read_pixels_shape(conv)
    return ConvShape(padding, dilation, conv.groups)


def factorized_reduce(op: FactorizedReduce, rectified: torch.Tensor) -> torch.Tensor:
    """`op.reduce_rectified(rectified)` without the padded copy of the shifted input it makes.

    Its second 1x1 stride-2 conv reads the input shifted by one pixel, zero-padded at the far edges: the
    odd rows and columns, then a zero row (column) where the height (width) is odd. That subsample is
    read directly, and padded only where the shift ran off the edge."""
    if not all(reads_one_pixel_in_stride(conv) and tuple(conv.kernel_size) == (1, 1)
               and tuple(conv.padding) == (0, 0) and conv.stride == op.conv_1.stride
               for conv in (op.conv_1, op.conv_2)):
        return op.reduce_rectified(rectified)
    even, first = read_pixels(op.conv_1, rectified)
    odd, second = read_pixels(op.conv_2, rectified, start=(1, 1))
    odd = nn.functional.pad(odd, (0, even.shape[-1] - odd.shape[-1], 0, even.shape[-2] - odd.shape[-2]))
    return _layer(op.bn, torch.cat([conv_chain(even, [first], [op.conv_1.weight]),
                                    conv_chain(odd, [second], [op.conv_2.weight])], dim=1))


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
    pre0 = cell.preprocess0
    s0 = factorized_reduce(pre0, torch.relu(s0)) if isinstance(pre0, FactorizedReduce) else pre0(s0)
    states = [s0, cell.preprocess1(s1)]
    incoming: list[list[torch.Tensor]] = [[] for _ in range(nodes)]
    tally = BatchNormTally()
    scaled = scaled_ops(cell, active)
    positions = [edge * weights.shape[1] + index for edge, index in scaled.values()]
    scales = dict(zip(scaled, channel_scales(weights, positions, [_last_block(op)[-1] for op in scaled]), strict=True))
    for source in range(nodes + 1):  # the last node feeds no edge inside the cell
        if source >= 2:
            states.append(_node_sum(incoming[source - 2]))
        shared = SharedInput(tally, scales)
        for node in range(max(0, source - 1), nodes):
            edge = num_edges(node) + source
            y = cell.edges[edge](states[source], weights[edge], active[edge], shared)
            incoming[node].append(y if edge_weights is None else edge_weights[edge] * y)
    states.append(_node_sum(incoming[-1]))
    tally.apply()
    return _concat(states[-nodes:])


def scaled_ops(cell: SearchCell, active: list[list[int]]) -> dict[nn.Module, tuple[int, int]]:
    """The cell's ops to compute whose last BN takes the mixing weight as its scale (`SharedInput.term`),
    with their (edge, candidate) position: the separable and dilated convs ending in a `plain_batch_norm`."""
    return {op: (edge, index) for edge, indices in enumerate(active) for index in indices
            if isinstance(op := cell.edges[edge].ops[index], SepConv | DilConv)
            and plain_batch_norm(_last_block(op)[-1])}


def _concat(nodes: list[torch.Tensor]) -> torch.Tensor:
    """The cell's output: its nodes concatenated along channels. The concat's backward pass hands each node
    a channel slice of the output's gradient, a strided view of it; on such a gradient the CPU BN kernels
    of the ops that made the last node take a generic path ~10x slower (12 ms against 1 ms at batch 64,
    C=16, 32 px), so each slice is copied into a dense channels-last tensor first (a node that feeds
    later edges sums its gradients into one anyway)."""
    return torch.cat([relayout(node, CHANNELS_LAST, CHANNELS_LAST) for node in nodes], dim=1)


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
