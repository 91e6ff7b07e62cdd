"""Per-epoch learning rates of the evaluation trainings.

The schedules are pure functions of the epoch rather than torch LR schedulers, so a resumed run needs no
scheduler state to land on exactly the rate the uninterrupted run would have used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pipeline.config import LINEAR_TAIL_EPOCHS

ScheduleKind = Literal["cosine", "step", "linear", "poly"]
WarmupBase = Literal["scheduled", "initial"]


@dataclass(frozen=True)
class LrSchedule:
    """The rate of every epoch: a decay, optionally preceded by `warmup_epochs` of linear warm-up.

    Decays: `cosine` to `lr_min` (CIFAR retraining); `step`, x `gamma` per epoch (DARTS on ImageNet);
    `linear`, the released ImageNet schedule of PC-DARTS / SDARTS / DrNAS / DDSAS: lr (1 - e / (E - 5))
    for e < E - 5, then lr (E - e) / (5 (E - 5)) in the last 5 epochs;
    `poly`, lr (1 - e / E), the plain linear decay (DATA's "poly" scheduler, whose power its paper omits).

    Warm-up epoch e < W uses (e + 1) / W of a base rate: the decayed rate of that epoch (`scheduled`, as
    PC-DARTS' and DDSAS' train_imagenet.py do) or the initial rate `lr` (`initial`, as DrNAS' does).
    """

    kind: ScheduleKind
    lr: float
    epochs: int
    lr_min: float = 0.0
    gamma: float = 1.0
    warmup_epochs: int = 0
    warmup_base: WarmupBase = "scheduled"

    def __post_init__(self) -> None:
        if self.kind == "linear" and self.epochs <= LINEAR_TAIL_EPOCHS:
            raise ValueError(f"the linear schedule needs more than {LINEAR_TAIL_EPOCHS} epochs (its last "
                             f"{LINEAR_TAIL_EPOCHS} are a separate tail), got {self.epochs}; use poly")

    def at(self, epoch: int) -> float:
        """The learning rate used throughout `epoch` (0-based)."""
        rate = self._decayed(epoch)
        if epoch < self.warmup_epochs:
            base = rate if self.warmup_base == "scheduled" else self.lr
            rate = base * (epoch + 1) / self.warmup_epochs
        return rate

    def _decayed(self, epoch: int) -> float:
        if self.kind == "cosine":
            return self.lr_min + (self.lr - self.lr_min) * (1 + math.cos(math.pi * epoch / self.epochs)) / 2
        if self.kind == "step":
            return self.lr * self.gamma**epoch
        if self.kind == "poly":
            return self.lr * (1 - epoch / self.epochs)
        head = self.epochs - LINEAR_TAIL_EPOCHS
        if epoch < head:
            return self.lr * (head - epoch) / head
        return self.lr * (self.epochs - epoch) / (head * LINEAR_TAIL_EPOCHS)
