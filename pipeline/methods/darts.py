"""DARTS (Liu et al., 2019): softmax over per-edge architecture logits alpha, first or second order."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from pipeline.config import MethodBase, SearchTraining
from pipeline.methods.base import Batch, SearchMethod, StepContext, register_method
from pipeline.methods.unrolled import unrolled_arch_gradients
from pipeline.space.base import ArchWeights, BoundSpace


class AlphaMethod(SearchMethod):
    """Methods whose architecture state is one logit per (edge, op) and cell type, initialised at 1e-3 N(0,1)."""

    def __init__(self, config, space: BoundSpace, training: SearchTraining, init_mean: float = 0.0) -> None:
        super().__init__(config, space, training)
        self.alphas = self.per_cell("alpha", lambda spec: init_mean + 1e-3 * torch.randn(spec.shape))

    def softmax_weights(self) -> ArchWeights:
        return ArchWeights({cell: alpha.softmax(-1) for cell, alpha in self.alphas.items()})


class DartsMethod(MethodBase):
    """DARTS' options (search.methods.<name> with algorithm: darts)."""

    order: Literal[1, 2] = Field(1, description="1: first-order; 2: finite-difference second-order gradient.")


@register_method("darts", options=DartsMethod, bench={"darts_1st": {"order": 1}, "darts_2nd": {"order": 2}})
class Darts(AlphaMethod):
    """First order: d L_val / d alpha at the current weights. Second order: through one virtual SGD step."""

    config: DartsMethod

    def forward_weights(self) -> ArchWeights:
        return self.softmax_weights()

    def architecture_step(self, ctx: StepContext, train_batch: Batch, valid_batch: Batch) -> None:
        if self.config.order == 1:
            super().architecture_step(ctx, train_batch, valid_batch)
            return
        assert ctx.a_optimizer is not None
        grads = unrolled_arch_gradients(self, ctx, train_batch, valid_batch)
        ctx.a_optimizer.zero_grad(set_to_none=True)
        for param, grad in zip(self.arch_parameters(), grads, strict=True):
            param.grad = grad
        ctx.a_optimizer.step()
