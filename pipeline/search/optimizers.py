"""The search's two optimisers, built in one place for the search loop, the text search and the bench.

SGD with momentum and weight decay on the network weights, Adam on the architecture parameters (none for
a method without them), as the papers' codes build them. Both take their per-parameter arithmetic as
`_foreach` operations over all their parameters at once (`foreach=True`): PyTorch's choice on a GPU
anyway, where it launches a few kernels a step instead of four per weight (a darts_1st supernet has 1399
weight tensors), and on a CPU the same arithmetic in one C++ loop instead of a Python one (the same
numbers, bit for bit; the bench's operation count then says what a GPU launches).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from pipeline.config import ArchOptimConfig, WeightOptimConfig


def weight_optimizer(params: Iterable[torch.nn.Parameter], settings: WeightOptimConfig) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay,
                           foreach=True)


def architecture_optimizer(params: list[torch.nn.Parameter], settings: ArchOptimConfig) -> torch.optim.Adam | None:
    """None for a method without architecture parameters (random search, DDSAS' sampled ones)."""
    if not params:
        return None
    return torch.optim.Adam(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay,
                            foreach=True)
