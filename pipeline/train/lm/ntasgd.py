"""NT-ASGD (Merity et al., AWD-LSTM §3; quark0/darts rnn/train.py): train with plain SGD until validation stops
improving, then switch to averaged SGD and evaluate with the running average of the weights.

The trigger is non-monotone: the switch happens at the first epoch whose validation loss is worse than the
best of all epochs except the latest `nonmono` ones, so a few bad epochs in a row are tolerated only as long
as they still beat the older best.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


def should_average(previous: Sequence[float], current: float, nonmono: int) -> bool:
    """Whether to switch to averaging after an epoch with validation loss `current`.

    `previous` holds the validation losses of the earlier SGD epochs, oldest first (train.py's
    `best_val_loss` before the append): switch when there are more than `nonmono` of them and `current`
    exceeds the minimum of all but the last `nonmono`.
    """
    if nonmono < 1:
        raise ValueError(f"nonmono must be at least 1, got {nonmono}")
    return len(previous) > nonmono and current > min(previous[:-nonmono])


def averaging_optimizer(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.ASGD:
    """ASGD averaging the iterates from its creation on (t0=0) without decaying the rate (lambd=0), as
    train.py builds it at the switch. (PyTorch's ASGD lags its averaging weight by one step, so the mean
    starts at the second iterate; the released code ran on the same rule.)"""
    return torch.optim.ASGD(params, lr=lr, t0=0, lambd=0.0, weight_decay=weight_decay)


@contextmanager
def averaged_weights(model: nn.Module, optimizer: torch.optim.Optimizer) -> Iterator[None]:
    """Inside: the model holds ASGD's averaged weights ('ax'); outside: its own again (train.py swaps the
    same way to evaluate and save the averaged model). A no-op before the switch."""
    if not isinstance(optimizer, torch.optim.ASGD):
        yield
        return
    saved = {}
    with torch.no_grad():
        for param in model.parameters():
            state = optimizer.state.get(param)
            if state and "ax" in state:
                saved[param] = param.detach().clone()
                param.copy_(state["ax"])
    try:
        yield
    finally:
        with torch.no_grad():
            for param, value in saved.items():
                param.copy_(value)
