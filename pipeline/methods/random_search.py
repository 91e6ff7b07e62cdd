"""Random search: the baseline every differentiable method has to beat (DARTS' and DATA's tables).

N genotypes are drawn uniformly from the space: each is the space's own derivation of i.i.d. uniform
scores (the argmax of i.i.d. scores is uniform, so on a DARTS cell top-2 picks two distinct inputs per
node uniformly and a uniform non-`none` op on each; on NAS-Bench-201 a uniform op per edge). This works on
every space without knowing its cells. Each is then trained from freshly initialised weights for
`train_epochs` short epochs, as the supernet discretised to its one-hot weights (so only its ops run),
with the same per-candidate cosine learning-rate schedule, and scored by the validation accuracy the loop
measures at the end of its last epoch. The best-scoring candidate is the result.

Candidate k occupies search epochs [k * train_epochs, (k + 1) * train_epochs); the params schema requires
epochs = candidates x train_epochs. The candidates' scores, their validation accuracies and the current
index are buffers, so a resumed search continues with the same candidates.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
from pydantic import Field
from torch import nn

from pipeline.config import MethodBase, SearchTraining
from pipeline.methods.base import SearchMethod, StepContext, register_method
from pipeline.space.base import ArchWeights, BoundSpace


def reset_weights(net: nn.Module) -> None:
    """Re-initialise every layer (and BN running statistics): each candidate trains from scratch."""
    for module in net.modules():
        if module is not net and hasattr(module, "reset_parameters"):
            module.reset_parameters()


class RandomMethod(MethodBase):
    """Random search's options; the candidates' short trainings must fill the search's epochs."""

    candidates: Annotated[int, Field(ge=1)] = Field(24, description="N genotypes sampled uniformly.")
    train_epochs: Annotated[int, Field(ge=1)] = Field(1, description="Epochs of the short selection training.")

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        if self.candidates * self.train_epochs != training.epochs:
            raise ValueError(f"{where}: {self.candidates} candidates x {self.train_epochs} train_epochs = "
                             f"{self.candidates * self.train_epochs} epochs, but the search runs "
                             f"{training.epochs}; set overrides: {{epochs: {self.candidates * self.train_epochs}}}")


@register_method("random", options=RandomMethod)
class RandomSearch(SearchMethod):
    """No architecture parameters: the method's state is its candidate list and their scores."""

    config: RandomMethod

    def __init__(self, config: RandomMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        # Candidate k is the derivation of these i.i.d. U(0, 1) scores (torch's RNG, so seeded).
        self.per_cell("draws", lambda spec: torch.rand(config.candidates, *spec.shape), buffer=True)
        self.register_buffer("scores", torch.full((config.candidates,), math.nan))
        self.register_buffer("current", torch.zeros((), dtype=torch.long))

    # -- candidates -----------------------------------------------------------------------------------
    def genotype_of(self, index: int) -> Any:
        draws = self.cell_tensors("draws")
        return self.space.derive(ArchWeights({cell: d[index] for cell, d in draws.items()}))

    def one_hot(self, index: int) -> ArchWeights:
        """The supernet discretised to candidate `index`: weight 1 on its pairs, exactly 0 elsewhere."""
        device = self.scores.device
        return self.space.space.discretise(self.genotype_of(index), self.space.cells).map(lambda w: w.to(device))

    def best_index(self) -> int:
        """The best-scoring candidate so far (the current one before any is scored)."""
        if torch.isnan(self.scores).all():
            return int(self.current)
        return int(torch.nan_to_num(self.scores, nan=-math.inf).argmax())

    # -- hooks ----------------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return []

    def forward_weights(self) -> ArchWeights:
        return self.one_hot(int(self.current))

    def mixing_probabilities(self) -> ArchWeights:
        return self.one_hot(self.best_index())

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Switch candidate (from scratch) every train_epochs epochs; set its own cosine learning rate."""
        per = self.config.train_epochs
        index, local = divmod(ctx.epoch, per)
        if index >= self.config.candidates:
            raise ValueError(f"random search: epoch {ctx.epoch} is past {self.config.candidates} candidates x "
                             f"{per} train_epochs")
        self.current.fill_(index)
        if local == 0:
            reset_weights(ctx.net)
            ctx.w_optimizer.state.clear()
        w = self.training_settings.weights
        lr = w.lr_min + (w.lr - w.lr_min) * (1 + math.cos(math.pi * local / per)) / 2
        for group in ctx.w_optimizer.param_groups:
            group["lr"] = lr
        ctx.lr = lr

    def on_validation(self, epoch: int, valid_acc: float) -> None:
        if (epoch + 1) % self.config.train_epochs == 0:
            self.scores[int(self.current)] = valid_acc

    def epoch_metrics(self) -> dict[str, float]:
        return {"candidate": int(self.current), "candidate_valid_acc": float(self.scores[int(self.current)]),
                "best_candidate": self.best_index()}

    def derive(self) -> Any:
        return self.genotype_of(self.best_index())
