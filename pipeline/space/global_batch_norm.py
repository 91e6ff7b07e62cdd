"""BatchNorm over the global batch of a data-parallel search.

In training mode a BatchNorm normalises with its input batch's statistics. Under `torchrun` each process
holds only its shard of the batch, so plain BatchNorm would make an N-process search a different
computation from the 1-process one (and differ between processes). `GlobalBatchNorm2d` normalises with
the statistics of the whole global batch: per-channel sums all-reduced with the differentiable
`torch.distributed.nn.functional.all_reduce`, whose backward all-reduces the gradient too, so the
gradient is also that of the global batch. torch's `SyncBatchNorm` would do this on CUDA only; this works
with gloo on CPU as well, which is how the tests run it.

The conversion swaps the class of each existing `nn.BatchNorm2d` in place: parameters, buffers and any
widening (pipeline/space/widen.py) are untouched, and `isinstance(bn, nn.BatchNorm2d)` still holds.
"""

from __future__ import annotations

import torch
from torch import distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce

_CHANNEL_DIMS = (0, 2, 3)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """`nn.BatchNorm2d` whose training-mode statistics are those of the batch summed over all processes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        mean, var, total = global_moments(x)
        out = (x - mean.view(1, -1, 1, 1)) * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * total / max(total - 1, 1))
        return out

    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """As `nn.BatchNorm2d` does: an exponential average, or a cumulative one when momentum is None."""
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
            self.running_var.mul_(1 - factor).add_(unbiased_var, alpha=factor)


def global_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Per-channel mean and biased variance of `x` (N, C, H, W) over every process's batch, and the count.

    One collective: each process writes (mean, variance, count) of its shard into its own row of a zero
    table, and a sum fills every row everywhere; the rows combine as Chan et al.'s parallel variance does
    (exact, without the cancellation of E[x^2] - E[x]^2). The all-reduce is differentiable, its backward
    another all-reduce, so the gradient is that of the global statistics too.
    """
    channels = x.shape[1]
    var, mean = torch.var_mean(x, dim=_CHANNEL_DIMS, correction=0)
    row = torch.cat([mean, var, x.new_tensor([x.numel() / channels])]).unsqueeze(0)
    rank = torch.tensor([dist.get_rank()], device=x.device)
    table = all_reduce(x.new_zeros(dist.get_world_size(), 2 * channels + 1).index_copy(0, rank, row),
                       op=dist.ReduceOp.SUM)
    means, variances, counts = table[:, :channels], table[:, channels:-1], table[:, -1:].detach()
    total = counts.sum()
    global_mean = (counts * means).sum(0) / total
    global_var = (counts * (variances + (means - global_mean).square())).sum(0) / total
    return global_mean, global_var, float(total)


def use_global_batch_norm(module: nn.Module) -> None:
    """Make every `nn.BatchNorm2d` of `module` a `GlobalBatchNorm2d`, in place (a data-parallel search)."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d
