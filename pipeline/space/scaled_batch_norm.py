"""`weight * batch_norm(z)`: an op's term in a mixed edge, as one BN whose scale is the mixing weight.

An op's term in a mixed edge is its mixing weight times the op's last BN output. The search cells' BNs
have no affine parameters, so the BN kernel's per-channel scale is free to carry the mixing weight: the
kernel then computes the scaled output in its one pass, scales the input gradient in its backward pass,
and computes the weight's gradient, sum(grad * BN(z)), from the per-channel sums it forms anyway. Against
a BN followed by a multiplication this saves the multiplication's pass in the forward and its gradient's
in the backward, and in an architecture step (the weight needs a gradient) autograd no longer keeps the
BN's output for that gradient: only the BN's input and its batch statistics are kept. At batch 64, two
threads, C=16, 32 px: forward and backward 2.3 ms against 5.8 ms (architecture step) and 1.8 ms
against 3.3 ms (weight step).

The BN is one without affine parameters whose running statistics move by momentum, as the search cells'
BNs are (`nn.BatchNorm2d(C, affine=False)`), in training or evaluation mode (SDARTS-ADV's attack and the
Hessian analysis run the supernet in evaluation mode); `F.batch_norm` moves the statistics exactly as the
module's forward does, and its backward pass is differentiable (second derivatives).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.space.bn_layout import batch_norm_in_fast_layout
from pipeline.space.bn_tally import BatchNormTally


def plain_batch_norm(bn: nn.Module) -> bool:
    """A BN as the search cells' are: a plain `nn.BatchNorm2d` (not a subclass, such as the data-parallel
    search's global BN) without affine parameters, with momentum-averaged running statistics. In training
    mode its output depends on its input batch only and its update is one momentum step; in evaluation
    mode it normalises by its running statistics. `scaled_batch_norm` computes such a BN in either mode."""
    return type(bn) is nn.BatchNorm2d and not bn.affine and bn.track_running_stats and bn.momentum is not None


def plain_training_batch_norm(bn: nn.Module) -> bool:
    """A `plain_batch_norm` in training mode."""
    return plain_batch_norm(bn) and bn.training


def scaled_batch_norm(z: torch.Tensor, scale: torch.Tensor, bn: nn.BatchNorm2d,
                      tally: BatchNormTally) -> torch.Tensor:
    """`scale * bn(z)` for a `plain_batch_norm` and a per-channel `scale` (`channel_scales`: a mixing weight
    repeated); in training mode it moves `bn`'s running statistics as its forward would, and counts the
    batch in `tally`."""
    assert bn.running_mean is not None and bn.running_var is not None and bn.momentum is not None
    out = batch_norm_in_fast_layout(
        lambda x: F.batch_norm(x, bn.running_mean, bn.running_var, scale, None, bn.training, bn.momentum, bn.eps), z)
    if bn.training:
        tally.count(bn)
    return out


def channel_scales(weights: torch.Tensor, positions: Sequence[int],
                   bns: Sequence[nn.BatchNorm2d]) -> list[torch.Tensor]:
    """For each position p and BN, the mixing weight `weights.flatten()[p]` as that BN's per-channel scale,
    in the dtype of its statistics (the kernel wants its parameters alike).

    The scales are materialised (given a stride-0 expansion the CPU kernels take a path 2-6x slower) and
    made for all of a cell's ops at once: one gather of the weights and one copy per width (forward), one
    sum and one scatter (backward), where a scale per op takes a copy, a sum and a scatter of its own
    (2168 operations fewer in a darts_1st step, each a kernel launch on a GPU). Each scale's gradient sums
    back into its weight."""
    scales: dict[int, torch.Tensor] = {}
    groups: dict[tuple[int, torch.dtype], list[int]] = defaultdict(list)
    for i, bn in enumerate(bns):
        assert bn.running_mean is not None
        groups[bn.num_features, bn.running_mean.dtype].append(i)
    flat = weights.flatten()
    for (width, dtype), members in groups.items():
        index = _index(tuple(positions[i] for i in members), flat.device)
        table = flat.index_select(0, index).to(dtype).unsqueeze(1).expand(len(members), width).contiguous()
        for i, scale in zip(members, table.unbind(0), strict=True):
            scales[i] = scale
    return [scales[i] for i in range(len(bns))]


@functools.lru_cache(maxsize=256)
def _index(positions: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The positions as an index tensor on `device`, made once per set of positions (no host-to-device copy
    per forward while a method's active ops stay the same)."""
    return torch.tensor(positions, dtype=torch.long, device=device)
