"""DrNAS (Chen et al., ICLR 2021): the mixing weights of each edge are a Dirichlet random variable.

The architecture state is eta per (edge, op); the concentration is beta = ELU(eta) + 1 (positive, and 1
at eta = 0). Every forward draws theta ~ Dir(beta) per edge with a pathwise (reparameterised) sample, so
the validation loss is an expectation over architectures and its gradient reaches beta through the
sample. An anchor regulariser keeps beta near 1:

- `l2`: (reg_lambda / 2) * ||eta||^2, whose gradient reg_lambda * eta is what the released code adds as
  Adam weight decay reg_lambda: lambda = 1e-3 means the same strength in the paper, the code and here.
  (`reg_lambda: 0` with `arch.weight_decay: 1.0e-3` is the code's route to the identical update.)
- `kl`: reg_lambda * KL(Dir(beta) || Dir(1)), the variational reading of the same anchor.

Progressive learning (`stages`): the supernet starts with 1/K of the channels entering each mixed op;
at each stage start the ops with the smallest learnt concentration are pruned (masked: their weight is
exactly 0, so they are never computed, and the Dirichlet covers the kept ops only) and every mixed op is
widened to the stage's K (pipeline/space/widen.py), its SGD momentum widened alongside. Architecture
updates pause for `warmup_epochs` at the start of every stage while the weights adapt.
"""

from __future__ import annotations

from itertools import accumulate
from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch.distributions import Dirichlet, kl_divergence
from torch.nn import functional as F

from pipeline.config import MethodBase, SearchTraining, Section, check_partial_k
from pipeline.methods.base import SearchMethod, StepContext, register_method
from pipeline.space.base import ArchWeights, BoundSpace
from pipeline.space.supernet import Supernet
from pipeline.space.widen import widen_optimizer, widen_supernet


def concentration(eta: torch.Tensor) -> torch.Tensor:
    """beta = ELU(eta) + 1: positive for any eta, and exactly 1 (the anchor) at eta = 0."""
    return F.elu(eta) + 1.0


def kept_indices(mask: torch.Tensor) -> torch.Tensor:
    """`[num_edges, kept]` column indices of the kept ops (every edge keeps the same number)."""
    return mask.nonzero()[:, 1].view(mask.shape[0], -1)


def sample_mixing_weights(eta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """theta ~ Dir(beta) over each edge's kept ops (pathwise sample), 0 on pruned ops."""
    index = kept_indices(mask)
    theta = Dirichlet(concentration(eta).gather(1, index)).rsample()
    return torch.zeros_like(eta).scatter(1, index, theta)


def dirichlet_mean(eta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """E[theta] = beta / sum(beta) over each edge's kept ops."""
    beta = concentration(eta) * mask
    return beta / beta.sum(-1, keepdim=True)


def masked_softmax(eta: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax(eta) over each edge's kept ops: the released code's derivation weights."""
    return eta.masked_fill(~mask, float("-inf")).softmax(-1)


def top_concentration_mask(eta: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """A mask of the `keep` ops of each edge with the largest concentration among those `mask` kept."""
    beta = concentration(eta.detach()).masked_fill(~mask, float("-inf"))
    return torch.zeros_like(mask).scatter(1, beta.topk(keep, dim=-1).indices, True)


def edge_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each edge's weights; pruned ops (0) contribute 0."""
    return -torch.special.xlogy(probs, probs).sum(-1)


class DrnasStage(Section):
    epochs: Annotated[int, Field(gt=0)] = Field(25, description="Epochs of this progressive stage.")
    partial_k: Annotated[int, Field(ge=1)] = Field(6, description="1/K of the channels enter the mixed op.")
    keep_ops: Annotated[int, Field(ge=1)] = Field(8, description="Ops kept per edge at the start of this stage.")


class DrnasMethod(MethodBase):
    """DrNAS' options; `check_search` ties its progressive stages to the search's epochs and channels."""

    regularizer: Literal["l2", "kl"] = Field("l2", description="Anchor regulariser: L2 on eta, or KL to Dir(1).")
    reg_lambda: Annotated[float, Field(ge=0)] = Field(
        1e-3, description="Anchor strength lambda: l2 adds (lambda/2)||eta||^2 (gradient lambda*eta, as the released "
                          "code's Adam weight decay lambda); kl adds lambda * KL."
    )
    warmup_epochs: Annotated[int, Field(ge=0)] = Field(
        10, description="Epochs of each stage before architecture updates start."
    )
    partial_k: Annotated[int, Field(ge=1)] = Field(1, description="Partial-channel K without progressive stages.")
    stages: list[DrnasStage] = Field(
        default_factory=list, description="Progressive learning stages (empty: one stage, no pruning/widening)."
    )
    derive: Literal["dirichlet_mean", "softmax"] = Field(
        "dirichlet_mean", description="Derivation weights: Dirichlet mean (paper) or softmax(eta) (released code)."
    )

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        num_ops = shape[1]
        check_partial_k(f"{where}.partial_k", self.partial_k, training)
        for i, stage in enumerate(self.stages):
            check_partial_k(f"{where}.stages[{i}].partial_k", stage.partial_k, training)
            if stage.keep_ops > num_ops:
                raise ValueError(f"{where}.stages[{i}].keep_ops: {stage.keep_ops} > {num_ops} ops in the space")
            if i and stage.partial_k > self.stages[i - 1].partial_k:
                raise ValueError(f"{where}.stages[{i}].partial_k: stages only widen, so K = {stage.partial_k} "
                                 f"may not exceed the previous stage's {self.stages[i - 1].partial_k}")
        if self.stages and sum(s.epochs for s in self.stages) != training.epochs:
            raise ValueError(f"{where}.stages: stage epochs sum to {sum(s.epochs for s in self.stages)} "
                             f"but the search runs {training.epochs} epochs")


@register_method("drnas", options=DrnasMethod, bench={"drnas": {"space": "darts_no_none"}})
class Drnas(SearchMethod):
    """Dirichlet mixing weights with an anchor regulariser, optionally with progressive stages."""

    config: DrnasMethod

    @classmethod
    def required_features(cls, config: DrnasMethod) -> dict[str, str]:  # type: ignore[override]
        needs = {}
        if config.partial_k > 1 or any(stage.partial_k > 1 for stage in config.stages):
            needs["partial_channels"] = "partial_k > 1"
        if config.stages:
            needs["widening"] = "progressive stages"
        return needs

    def __init__(self, config: DrnasMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        self.per_cell("eta", lambda spec: 1e-3 * torch.randn(spec.shape))
        self.per_cell("mask", lambda spec: torch.ones(spec.shape, dtype=torch.bool), buffer=True)
        # The stage the supernet is in; -1 until the first epoch enters stage 0. Saved with the method.
        self.register_buffer("stage", torch.tensor(-1))
        self.stage_starts = [0, *accumulate(s.epochs for s in config.stages)][:-1] if config.stages else [0]

    def _pairs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(eta, mask) per cell type; masks are looked up afresh because pruning replaces them."""
        masks = self.cell_tensors("mask")
        return {cell: (eta, masks[cell]) for cell, eta in self.cell_tensors("eta").items()}

    def _per_cell(self, fn: Any) -> ArchWeights:
        return ArchWeights({cell: fn(eta, mask) for cell, (eta, mask) in self._pairs().items()})

    # -- weights ------------------------------------------------------------------------------------
    def supernet_options(self) -> dict[str, Any]:
        return {"partial_k": self.partial_k(0)}

    def partial_k(self, stage: int) -> int:
        return self.config.stages[stage].partial_k if self.config.stages else self.config.partial_k

    def forward_weights(self) -> ArchWeights:
        return self._per_cell(sample_mixing_weights)

    def eval_weights(self) -> ArchWeights:
        """The Dirichlet mean: validation accuracy is measured deterministically."""
        return self._per_cell(dirichlet_mean)

    def mixing_probabilities(self) -> ArchWeights:
        if self.config.derive == "softmax":
            return self._per_cell(masked_softmax)
        return self.eval_weights()

    def regularization(self) -> torch.Tensor:
        if self.config.regularizer == "l2":
            return 0.5 * self.config.reg_lambda * sum(eta.pow(2).sum() for eta, _ in self._pairs().values())
        total = 0.0
        for eta, mask in self._pairs().values():
            beta = concentration(eta).gather(1, kept_indices(mask))
            total = total + kl_divergence(Dirichlet(beta), Dirichlet(torch.ones_like(beta))).sum()
        return self.config.reg_lambda * total  # type: ignore[return-value]

    # -- schedule -----------------------------------------------------------------------------------
    def stage_of(self, epoch: int) -> int:
        return sum(start <= epoch for start in self.stage_starts) - 1

    def updates_architecture(self, epoch: int) -> bool:
        return epoch - self.stage_starts[self.stage_of(epoch)] >= self.config.warmup_epochs

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Enter the stage of this epoch: prune to its op count, widen to its K (optimiser included)."""
        target = self.stage_of(ctx.epoch)
        while self.config.stages and int(self.stage) < target:
            stage = int(self.stage) + 1
            self.prune(self.config.stages[stage].keep_ops)
            widen_optimizer(ctx.w_optimizer, widen_supernet(ctx.net, self.partial_k(stage)))
            self.stage.fill_(stage)

    def prune(self, keep: int) -> None:
        """Keep the `keep` ops of each edge with the largest concentration (a no-op when as many remain)."""
        for cell, (eta, mask) in self._pairs().items():
            if int(mask[0].sum()) > keep:
                setattr(self, f"mask_{cell}", top_concentration_mask(eta, mask, keep))

    def prepare_supernet_for_restore(self, net: Supernet, parts: Any) -> None:  # type: ignore[override]
        """Give a freshly built supernet the width of the checkpointed stage, so its saved tensors fit.

        The widening's random copies are overwritten by the checkpoint right after; the masks are part of
        the method's own state. `parts.w_optimizer` gets the new parameters before its state is loaded.
        """
        if self.config.stages and int(self.stage) > 0:
            widen_optimizer(parts.w_optimizer, widen_supernet(net, self.partial_k(int(self.stage))))

    # -- analyses -----------------------------------------------------------------------------------
    def epoch_metrics(self) -> dict[str, float]:
        """Entropy of each edge's Dirichlet mean (low: the distribution settled), mean and max per cell."""
        metrics: dict[str, float] = {}
        with torch.no_grad():
            for cell, (eta, mask) in self._pairs().items():
                entropy = edge_entropy(dirichlet_mean(eta, mask))
                metrics[f"entropy_{cell}_mean"] = float(entropy.mean())
                metrics[f"entropy_{cell}_max"] = float(entropy.max())
        if self.config.stages:
            metrics["stage"] = float(max(int(self.stage), 0))
        return metrics
