"""Small per-epoch measurements of the search."""

from __future__ import annotations

import torch


def accuracy_counts(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(correct top-1 predictions, samples)."""
    return int((logits.argmax(1) == targets).sum()), int(targets.numel())
