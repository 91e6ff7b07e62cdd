"""Per-epoch learning rates of the evaluation trainings.

The schedules are pure functions of the epoch rather than torch LR schedulers, so a resumed run needs no
scheduler state to land on exactly the rate the uninterrupted run would have used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

ScheduleKind = Literal["cosine", "step", "linear"]


@dataclass(frozen=True)
class LrSchedule:
    """`cosine` to `lr_min` (CIFAR retraining), `step` x `gamma` per epoch (DARTS on ImageNet) or `linear`
    to 0 (SDARTS, DrNAS, DDSAS on ImageNet); any of them after `warmup_epochs` of linear warm-up."""

    kind: ScheduleKind
    lr: float
    epochs: int
    lr_min: float = 0.0
    gamma: float = 1.0
    warmup_epochs: int = 0

    def at(self, epoch: int) -> float:
        """The learning rate used throughout `epoch` (0-based)."""
        if self.kind == "cosine":
            rate = self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2
        elif self.kind == "step":
            rate = self.lr * self.gamma**epoch
        else:
            rate = self.lr * (1 - epoch / self.epochs)
        if epoch < self.warmup_epochs:
            # As the large-batch ImageNet recipes do: ramp towards the scheduled rate, reaching it after warm-up.
            rate *= (epoch + 1) / self.warmup_epochs
        return rate
