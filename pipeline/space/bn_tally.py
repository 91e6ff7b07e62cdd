"""The bookkeeping of a cell's training-mode BNs, done for the whole cell at once.

A training-mode BN counts the batch (`num_batches_tracked += 1`) and moves its running statistics; the
module does both as separate small operations per BN, and the fast path's shared pools move each edge's
BN statistics by hand (two operations per buffer). Nothing in a search cell reads these buffers until the
cell is done (a plain BN in training mode normalises by the batch's statistics, and its momentum is
fixed, so the counter is never read), so the fast path collects them and applies them when the cell
ends, with `_foreach` operations over all of the cell's buffers: one kernel launch each on a GPU (a few
per cell) against one or two per BN (in a darts_1st step ~1800 counter increments and ~1800 moves).
The arithmetic per buffer is the module's: `count + 1`, `running * (1 - momentum) + momentum * batch`.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn


class BatchNormTally:
    """Counter increments and running-statistics moves collected over a cell, applied by `apply`."""

    def __init__(self) -> None:
        self._counters: list[torch.Tensor] = []
        self._moves: defaultdict[float, tuple[list[torch.Tensor], list[torch.Tensor]]] = defaultdict(
            lambda: ([], []))

    def count(self, bn: nn.BatchNorm2d) -> None:
        """`bn` normalised one batch in training mode."""
        assert bn.num_batches_tracked is not None
        self._counters.append(bn.num_batches_tracked)

    def move(self, bn: nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor) -> None:
        """`bn`'s running statistics move towards a batch's `mean` and unbiased `var` by its momentum."""
        assert bn.momentum is not None and bn.running_mean is not None and bn.running_var is not None
        running, batch = self._moves[bn.momentum]
        running += [bn.running_mean, bn.running_var]
        batch += [mean, var]

    def apply(self) -> None:
        """Apply everything collected (each buffer once: a BN runs once per cell), and start afresh."""
        with torch.no_grad():
            if self._counters:
                torch._foreach_add_(self._counters, 1)
            for momentum, (running, batch) in self._moves.items():
                torch._foreach_mul_(running, 1 - momentum)
                torch._foreach_add_(running, batch, alpha=momentum)
        self._counters.clear()
        self._moves.clear()
