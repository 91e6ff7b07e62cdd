"""SDARTS (Chen & Hsieh, 2020): smooth the DARTS search by training weights under perturbed mixing weights.

The architecture step is plain first-order DARTS on softmax(alpha). Only the weight step sees perturbed
weights, so the network weights learn to work in a neighbourhood of the current architecture, which
flattens the validation loss landscape in alpha (smaller Hessian eigenvalue, less skip collapse). The
perturbation lives on the simplex, after the softmax, with a radius ramped linearly over the search:

- RS: uniform noise in [-eps, eps] on every entry, then each edge is clipped to [0, 1] and renormalised;
- ADV: the same random start, then projected sign-gradient ascent on the training loss inside the L-inf
  ball of radius eps (BN on running statistics during the attack), falling back to the unperturbed
  weights when the attack did not raise the loss.

The perturbed weights are constants: the weight step sends no gradient to alpha.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch.nn import functional as F

from pipeline.config import COMPUTED_LIKE_CODE, MethodBase, SkippedOps
from pipeline.methods.base import Batch, StepContext, frozen, register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.base import ArchWeights


def epsilon_at(epoch: int, epochs: int, start: float, end: float) -> float:
    """The perturbation radius of `epoch`: `start` at epoch 0, `end` at the last epoch."""
    if epochs <= 1:
        return start
    return start + (end - start) * epoch / (epochs - 1)


def clip_to_simplex(perturbed: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Clip each row (edge) to [0, 1] and renormalise it to sum 1.

    A row clipped to all zeros has no direction left: it becomes one-hot on the argmax of `reference`,
    the unperturbed weights. (The released code takes the argmax of the perturbed row; both only matter
    in this degenerate case.)
    """
    clipped = perturbed.clamp(0.0, 1.0)
    empty = clipped.sum(-1, keepdim=True) == 0
    one_hot = F.one_hot(reference.argmax(-1), reference.shape[-1]).to(clipped.dtype)
    clipped = torch.where(empty, one_hot, clipped)
    return clipped / clipped.sum(-1, keepdim=True)


def project_linf(weights: torch.Tensor, center: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The nearest point to `weights` in the L-inf ball of radius `epsilon` around `center`."""
    return center + (weights - center).clamp(-epsilon, epsilon)


def random_perturbation(weights: torch.Tensor, epsilon: float) -> torch.Tensor:
    """RS: U(-eps, eps) on every entry, back onto the simplex."""
    noise = torch.empty_like(weights).uniform_(-epsilon, epsilon)
    return clip_to_simplex(weights + noise, weights)


class SdartsMethod(MethodBase):
    """SDARTS' options: the perturbation of the mixing weights and its radius schedule."""

    skipped_ops: SkippedOps = Field("computed", description=COMPUTED_LIKE_CODE)
    perturbation: Literal["rs", "adv"] = Field("rs", description="rs: random smoothing; adv: PGD attack.")
    epsilon_start: Annotated[float, Field(gt=0)] = Field(0.03, description="Perturbation radius at epoch 0.")
    epsilon_end: Annotated[float, Field(gt=0)] = Field(0.3, description="Radius at the last epoch (linear ramp).")
    attack_steps: Annotated[int, Field(ge=1)] = Field(7, description="PGD steps (adv).")


@register_method("sdarts", options=SdartsMethod, bench={
    "sdarts_rs": {"space": "darts_no_none", "perturbation": "rs"},
    "sdarts_adv": {"space": "darts_no_none", "perturbation": "adv"},
})
class Sdarts(AlphaMethod):
    """softmax(alpha) like DARTS; RS or ADV perturbation of the weights the weight step uses."""

    config: SdartsMethod

    def forward_weights(self) -> ArchWeights:
        return self.softmax_weights()

    def epsilon(self, ctx: StepContext) -> float:
        return epsilon_at(ctx.epoch, ctx.epochs, self.config.epsilon_start, self.config.epsilon_end)

    def weight_step_weights(self, ctx: StepContext, train_batch: Batch) -> ArchWeights:
        clean = self.softmax_weights().detached()
        epsilon = self.epsilon(ctx)
        if self.config.perturbation == "rs":
            return clean.map(lambda w: random_perturbation(w, epsilon))
        return self.adversarial_weights(ctx, train_batch, clean, epsilon)

    def adversarial_weights(self, ctx: StepContext, batch: Batch, clean: ArchWeights,
                            epsilon: float) -> ArchWeights:
        """ADV: sign-gradient ascent from a random start; the clean weights when the loss did not rise.

        The attack asks for the mixing weights' gradient only, so the network weights are frozen meanwhile
        (as in the architecture step): operations that keep tensors for a weight gradient (the fast
        supernet's convolutions) then know at forward time that none is wanted, and compute none."""
        steps = self.config.attack_steps
        step_size = 2.0 * epsilon / steps
        cells = list(clean.cells)
        centers = [clean[cell] for cell in cells]
        was_training = ctx.net.training
        ctx.net.eval()
        try:
            with frozen(ctx.net.parameters()):
                # Data-parallel: losses and ascent directions are averaged to the global batch's (ctx.average),
                # so every process attacks alike and keeps the same weights.
                with torch.no_grad():
                    clean_loss = _loss(ctx, batch, clean)
                current = [random_perturbation(c, epsilon) for c in centers]
                for _ in range(steps):
                    leaves = [w.requires_grad_() for w in current]
                    # Every op runs: the ascent must be able to revive an op the clipping zeroed.
                    loss = _loss(ctx, batch, ArchWeights(dict(zip(cells, leaves, strict=True)), compute_all=True))
                    grads = torch.autograd.grad(loss, leaves)
                    ctx.average(grads)
                    current = [clip_to_simplex(project_linf(w.detach() + step_size * g.sign(), c, epsilon), c)
                               for w, g, c in zip(leaves, grads, centers, strict=True)]
                attacked = ArchWeights(dict(zip(cells, current, strict=True)))
                with torch.no_grad():
                    attacked_loss = _loss(ctx, batch, attacked)
                ctx.average([clean_loss, attacked_loss])
        finally:
            ctx.net.train(was_training)
        return attacked if attacked_loss > clean_loss else clean


def _loss(ctx: StepContext, batch: Batch, weights: ArchWeights) -> torch.Tensor:
    x, y = batch
    with ctx.autocast():
        logits = ctx.net(x, weights)
    return ctx.criterion(logits.float(), y)
