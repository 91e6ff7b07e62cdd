"""Widening the mixed ops of a supernet: more channels enter every candidate op (DrNAS progressive stages).

DrNAS (Sec. 2.4, eq. 7-8) grows the partial-channel fraction C/K between stages by enlarging every
convolution with a random Net2Net-style mapping g: new channel j copies old channel g(j), with g(j) = j
for the old channels and a uniformly drawn old channel for the new ones, and U[o, i] = W[g(o), g(i)].
Unlike Net2Net the copies are *not* divided by the replication count (the paper argues an edge's
information flow has the same scale at any fraction), so the function is not preserved: what is
preserved is that every new channel is an exact copy of the channel it was mapped from.

One mapping serves every layer of every op of an edge, so all ops of a mixed op agree on which channel
a new one copies (the ops' outputs are summed channel by channel). FactorizedReduce (skip_connect on
reduction edges) builds its output from two half-width convs, so it has a mapping per half.

Everything here is pure given the mappings except `draw_edge_mapping`, which draws from torch's global
RNG: checkpointing that RNG makes a resumed search widen exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.space.primitives import FactorizedReduce
from pipeline.space.supernet import MixedOp


@dataclass(frozen=True)
class Widened:
    """A parameter replaced by a wider copy: `new == widen_tensor(old, index_by_dim)`.

    The optimiser uses the same record to move and widen the parameter's state (SGD momentum).
    """

    old: nn.Parameter
    new: nn.Parameter
    index_by_dim: dict[int, torch.Tensor]


@dataclass(frozen=True)
class EdgeMapping:
    """The mapping g of one mixed op: new channel j copies old channel `channels[j]`.

    `halves` map the output channels of FactorizedReduce's two half-width convs; None on edges too narrow
    to have them (one channel per op: only stride-1 edges, which have no FactorizedReduce, are that narrow).
    """

    channels: torch.Tensor
    halves: tuple[torch.Tensor, torch.Tensor] | None


def random_mapping(old: int, new: int) -> torch.Tensor:
    """g of DrNAS eq. 7: identity on the first `old` channels, uniform old channels for the rest."""
    if new < old:
        raise ValueError(f"cannot widen {old} channels to {new}")
    return torch.cat([torch.arange(old), torch.randint(0, old, (new - old,))])


def draw_edge_mapping(old: int, new: int) -> EdgeMapping:
    """The random mapping of one edge widened from `old` to `new` op channels (global torch RNG)."""
    channels = random_mapping(old, new)
    halves = (random_mapping(old // 2, new // 2), random_mapping(old // 2, new // 2)) if old >= 2 else None
    return EdgeMapping(channels, halves)


def widen_tensor(tensor: torch.Tensor, index_by_dim: dict[int, torch.Tensor]) -> torch.Tensor:
    """Gather `tensor` along each dimension by its index: entry j of a widened dim copies entry index[j]."""
    for dim, index in index_by_dim.items():
        tensor = tensor.index_select(dim, index.to(tensor.device))
    return tensor


def _replace_parameter(module: nn.Module, name: str, index_by_dim: dict[int, torch.Tensor]) -> Widened:
    old = getattr(module, name)
    new = nn.Parameter(widen_tensor(old.detach(), index_by_dim), requires_grad=old.requires_grad)
    setattr(module, name, new)
    return Widened(old, new, index_by_dim)


def widen_conv(conv: nn.Conv2d, in_index: torch.Tensor, out_index: torch.Tensor) -> list[Widened]:
    """U[o, i] = W[out_index[o], in_index[i]]; a depthwise conv (one group per channel) keeps its groups
    equal to its channels, so its input and output mappings must be the same."""
    depthwise = conv.groups > 1
    one_group_per_channel = conv.groups == conv.in_channels == conv.out_channels
    if depthwise and not (one_group_per_channel and torch.equal(in_index, out_index)):
        raise ValueError("a grouped conv is widened only as a depthwise conv with one mapping for both sides")
    index_by_dim = {0: out_index} if depthwise else {0: out_index, 1: in_index}
    widened = [_replace_parameter(conv, "weight", index_by_dim)]
    if conv.bias is not None:
        widened.append(_replace_parameter(conv, "bias", {0: out_index}))
    conv.in_channels, conv.out_channels = len(in_index), len(out_index)
    if depthwise:
        conv.groups = len(out_index)
    return widened


def widen_batchnorm(bn: nn.BatchNorm2d, index: torch.Tensor) -> list[Widened]:
    """Copy per-channel statistics (and affine parameters) along `index`."""
    if bn.running_mean is not None and bn.running_var is not None:
        bn.running_mean = widen_tensor(bn.running_mean, {0: index})
        bn.running_var = widen_tensor(bn.running_var, {0: index})
    bn.num_features = len(index)
    if not bn.affine:
        return []
    return [_replace_parameter(bn, "weight", {0: index}), _replace_parameter(bn, "bias", {0: index})]


def _widen_factorized_reduce(op: FactorizedReduce, mapping: EdgeMapping) -> list[Widened]:
    assert mapping.halves is not None, "FactorizedReduce always has at least one channel per half"
    first, second = mapping.halves
    half = op.conv_1.out_channels
    widened = widen_conv(op.conv_1, mapping.channels, first) + widen_conv(op.conv_2, mapping.channels, second)
    # Its BN sees [conv_1 outputs, conv_2 outputs]: conv_2's old channels start at `half`.
    return widened + widen_batchnorm(op.bn, torch.cat([first, half + second]))


def widen_op(op: nn.Module, mapping: EdgeMapping) -> list[Widened]:
    """Widen one candidate op (channel-preserving, as all DARTS ops are) along `mapping`."""
    if isinstance(op, FactorizedReduce):
        return _widen_factorized_reduce(op, mapping)
    if isinstance(op, nn.Conv2d):
        return widen_conv(op, mapping.channels, mapping.channels)
    if isinstance(op, nn.BatchNorm2d):
        return widen_batchnorm(op, mapping.channels)
    if next(op.parameters(recurse=False), None) is not None:
        raise TypeError(f"do not know how to widen {type(op).__name__}")
    return [w for child in op.children() for w in widen_op(child, mapping)]


def widen_mixed_op(op: MixedOp, partial_k: int, mapping: EdgeMapping) -> list[Widened]:
    """Let C/`partial_k` channels enter `op` (fewer bypass it); `mapping` covers the new op width."""
    if op.channels % partial_k:
        raise ValueError(f"partial_k={partial_k} does not divide {op.channels} channels")
    new = op.channels // partial_k
    if len(mapping.channels) != new:
        raise ValueError(f"mapping covers {len(mapping.channels)} channels, the op needs {new}")
    widened = [w for candidate in op.ops for w in widen_op(candidate, mapping)]
    op.partial_k = partial_k
    op.bypass = nn.MaxPool2d(2, 2) if op.stride == 2 and partial_k > 1 else None
    return widened


def widen_supernet(net: nn.Module, partial_k: int) -> list[Widened]:
    """Widen every mixed op of `net` to C/`partial_k` op channels, drawing one mapping per edge.

    `net.cells` are the searched cells, each with `edges` of mixed ops; blocks without edges (NAS-Bench-
    201's residual reductions) have nothing to widen."""
    widened: list[Widened] = []
    for cell in net.cells:
        for edge in getattr(cell, "edges", ()):
            old, new = edge.channels // edge.partial_k, edge.channels // partial_k
            if new != old:
                widened += widen_mixed_op(edge, partial_k, draw_edge_mapping(old, new))
    return widened


def widen_optimizer(optimizer: torch.optim.Optimizer, widened: list[Widened]) -> None:
    """Swap the widened parameters into `optimizer` in place (same positions, so its state dict and any
    scheduler stay valid) and widen their per-parameter state the same way (SGD momentum buffers)."""
    by_old = {id(w.old): w for w in widened}
    for group in optimizer.param_groups:
        group["params"] = [by_old[id(p)].new if id(p) in by_old else p for p in group["params"]]
    for w in widened:
        state = optimizer.state.pop(w.old, None)
        if state is None:
            continue
        optimizer.state[w.new] = {
            key: widen_tensor(value, w.index_by_dim)
            if torch.is_tensor(value) and value.shape == w.old.shape else value
            for key, value in state.items()
        }
