"""The search's weight learning rate: the cosine schedule, and the ImageNet codes' linear warm-up."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.config import SearchTraining
from pipeline.search.loop import weight_lr_at


def test_without_warmup_the_rate_is_torchs_cosine_annealing():
    settings = SearchTraining(epochs=50)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=settings.weights.lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50, eta_min=settings.weights.lr_min)
    for epoch in range(50):
        assert weight_lr_at(epoch, settings) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        scheduler.step()


def test_warmup_ramps_the_base_rate_then_joins_the_cosine():
    settings = SearchTraining(epochs=60, weights={"lr": 0.5, "lr_min": 0.0, "warmup_epochs": 5})
    # By hand: 0.5 * (e + 1) / 5 for e < 5 (the codes scale the base rate, not the cosine value) ...
    assert [weight_lr_at(e, settings) for e in range(5)] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    # ... then the cosine over all 60 epochs, as if there had been no warm-up.
    assert weight_lr_at(5, settings) == pytest.approx(0.25 * (1 + math.cos(math.pi * 5 / 60)))
    assert weight_lr_at(30, settings) == pytest.approx(0.25)
