"""GDAS (Dong & Yang, CVPR 2019): one op per edge, sampled by a hard Gumbel-softmax every forward.

Each edge draws h = one_hot(argmax p) with p = softmax((log_softmax(alpha) + g) / tau), g ~ Gumbel(0, 1),
and uses it straight-through: the forward value is the one-hot (so the supernet computes only the
sampled op of every edge, GDAS' speed-up), the gradient is that of p. The weight step and the
architecture step each draw their own sample. tau decays linearly from `tau_start` to `tau_end`, reaching
it at the last epoch (tau_max - (tau_max - tau_min) * epoch / (epochs - 1) in the released search
scripts of D-X-Y/AutoDL-Projects, 10 -> 0.1). The genotype comes from softmax(alpha): DARTS' top-2
rule on the CNN space, argmax per edge on NAS-Bench-201, as GDAS' own `genotype()` does.

One difference from the released code, kept on purpose: there an edge adds its non-sampled weights
h_k (value 0) to the node as scalars, so their gradient is the sum of the node's upstream gradient, a
term with no meaning in the straight-through estimator. Here the non-sampled ops are not computed and
have no gradient; alpha still gets gradient on every entry through p's Jacobian (see `gumbel_hard`).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline.config import MethodBase, SearchTraining
from pipeline.methods.base import StepContext, register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.base import ArchWeights, BoundSpace


def gumbel_hard(alpha: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per row of `alpha`, a straight-through hard Gumbel-softmax sample: one-hot forward, soft gradient.

    The value is exactly 0 off the sampled op ((0 - p) + p is 0 in floating point) and 1 up to rounding on
    it. With only the sampled op k computed, d loss / d alpha_j = d loss / d h_k * p_k (delta_kj - p_j) / tau,
    non-zero for every j.
    """
    # Uniforms drawn in fp32 whatever alpha's dtype: an fp64 run samples the same ops as an fp32 one.
    tiny = torch.finfo(torch.float32).tiny
    uniform = torch.rand(alpha.shape, generator=generator, device=alpha.device).clamp(tiny, 1.0).to(alpha.dtype)
    gumbels = -(-uniform.log()).clamp_min(tiny).log()
    soft = ((alpha.log_softmax(-1) + gumbels) / tau).softmax(-1)
    hard = F.one_hot(soft.argmax(-1), alpha.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def linear_tau(start: float, end: float, epoch: int, epochs: int) -> float:
    """The temperature of `epoch` (0-based): `start` at the first epoch, `end` at the last."""
    return start if epochs <= 1 else start - (start - end) * epoch / (epochs - 1)


class GdasMethod(MethodBase):
    """GDAS' options: the Gumbel-softmax temperature schedule."""

    tau_start: Annotated[float, Field(gt=0)] = Field(
        10.0, description="Gumbel-softmax temperature at the first epoch (GDAS code: tau_max 10)."
    )
    tau_end: Annotated[float, Field(gt=0)] = Field(
        0.1, description="Temperature at the last epoch, reached linearly (GDAS code: tau_min 0.1; its paper: 1)."
    )


@register_method("gdas", options=GdasMethod)
class Gdas(AlphaMethod):
    """alpha initialised at 1e-3 N(0, 1) (as GDAS' code); a fresh hard sample for every forward."""

    config: GdasMethod

    def __init__(self, config: GdasMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        # A buffer: a search resumed mid-epoch samples at the temperature it stopped at.
        self.register_buffer("tau", torch.tensor(config.tau_start))

    def on_epoch_start(self, ctx: StepContext) -> None:
        self.tau.fill_(linear_tau(self.config.tau_start, self.config.tau_end, ctx.epoch, ctx.epochs))

    def forward_weights(self) -> ArchWeights:
        tau = float(self.tau)
        return ArchWeights({cell: gumbel_hard(alpha, tau) for cell, alpha in self.alphas.items()})

    def eval_weights(self) -> ArchWeights:
        """softmax(alpha): the expectation of the hard sample (Gumbel-max draws op k with probability
        softmax(alpha)_k at any tau), so validation and the Hessian of the validation loss w.r.t. alpha
        see the distribution the search samples from, deterministically."""
        return self.softmax_weights()

    def mixing_probabilities(self) -> ArchWeights:
        return self.softmax_weights()

    def epoch_metrics(self) -> dict[str, float]:
        return {"tau": float(self.tau)}
