"""DATA (Chang et al., NeurIPS 2019): Ensemble Gumbel-Softmax codes, several ops per edge.

DARTS trains a dense mixture and then keeps one op per edge, so the child it derives is not the network
it trained (the search-child gap). DATA trains binary codes instead: per edge, M hard Gumbel-softmax
draws from p = relu(alpha) / sum, combined by element-wise max into a multi-hot code (normalised to sum
1). The weight step can run only the ops the code picks (`skipped_ops: frozen`); the architecture step
runs every op, since with straight-through gradients an op the code left out still has gradient op(x)
with respect to its relaxed weight. The derived genotype keeps as many ops as the probabilities support,
which is what the search trained.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from pipeline.config import COMPUTED_LIKE_CODE, MethodBase, SearchTraining, SkippedOps
from pipeline.methods.base import StepContext, register_method
from pipeline.methods.darts import AlphaMethod
from pipeline.space.base import ArchWeights, BoundSpace, CellSpec
from pipeline.space.genotype import Genotype, Node, edge_index

# Keeps log(p) finite when relu(alpha) is 0: such ops are (almost) never drawn, and an edge whose alphas
# are all non-positive samples uniformly instead of producing NaN (the released code adds 1e-10 too).
_LOG_FLOOR = 1e-10


def relu_probabilities(alpha: torch.Tensor) -> torch.Tensor:
    """p = relu(alpha) / sum over the last dimension (all zeros where every alpha is non-positive)."""
    r = F.relu(alpha)
    return r / r.sum(-1, keepdim=True).clamp_min(1e-12)


def ensemble_gumbel_softmax(probs: torch.Tensor, samples: int, tau: float) -> torch.Tensor:
    """One EGS code per row of `probs`: M hard Gumbel-softmax draws, element-wise max, normalised to sum 1.

    Forward values are exact: 1/n on the n chosen ops and 0.0 elsewhere, so the supernet skips the rest.
    Each draw is `hard + (soft - soft.detach())`, whose value is the one-hot and whose gradient is the
    soft sample's (straight-through), so gradients reach `probs` (and alpha behind it).
    """
    logits = probs.clamp_min(_LOG_FLOOR).log().unsqueeze(0).expand(samples, *probs.shape)
    gumbels = -torch.empty_like(logits).exponential_().log()
    soft = ((logits + gumbels) / tau).softmax(-1)
    hard = F.one_hot(soft.argmax(-1), probs.shape[-1]).to(soft.dtype)
    code = (hard + (soft - soft.detach())).max(0).values
    return code / code.sum(-1, keepdim=True)


def exact_cover_probability(probs: Sequence[float], draws: int) -> float:
    """P(`draws` i.i.d. categorical draws hit every entry of `probs` at least once and nothing else).

    `probs` are the (unnormalised-to-the-set) probabilities of the entries of a set S within the full
    distribution. Inclusion-exclusion over the entries left out: sum over T subset of S of
    (-1)^(|S| - |T|) * (sum of T)^draws.
    """
    size = len(probs)
    total = 0.0
    for k in range(size + 1):
        sign = -1.0 if (size - k) % 2 else 1.0
        total += sign * sum(math.fsum(subset) ** draws for subset in itertools.combinations(probs, k))
    return max(total, 0.0)


def best_cover_size(sorted_probs: Sequence[float], draws: int) -> int:
    """The i <= draws maximising the probability that the draws land exactly on the top-i entries."""
    sizes = range(1, min(draws, len(sorted_probs)) + 1)
    return max(sizes, key=lambda i: (exact_cover_probability(sorted_probs[:i], draws), -i))


def _derive_cell(probs: torch.Tensor, spec: CellSpec, draws: int) -> tuple[Node, ...]:
    cell = []
    for node in range(2, len(spec.node_inputs) + 2):
        edges = [edge_index(node, source) for source in range(node)]
        entries: list[tuple[float, str, int]] = [
            (float(probs[edge, i]), op, source)
            for source, edge in enumerate(edges) for i, op in enumerate(spec.edge_ops[edge]) if op != "none"
        ]
        none_mass = [float(probs[edge, i]) for edge in edges for i, op in enumerate(spec.edge_ops[edge])
                     if op == "none"]
        if none_mass:
            entries.append((math.fsum(none_mass), "none", -1))
        total = math.fsum(p for p, _, _ in entries)
        # Stable sort: ties keep edge-then-op order, so the result does not depend on float noise alone.
        entries = sorted(((p / total, op, source) for p, op, source in entries), key=lambda e: -e[0])
        keep = best_cover_size([p for p, _, _ in entries], draws)
        pairs = [(op, source) for _, op, source in entries[:keep] if op != "none"]
        if not pairs:
            # Only `none` won: keep the strongest real op, a node must have an input.
            pairs = [next((op, source) for _, op, source in entries if op != "none")]
        cell.append(tuple(pairs))
    return tuple(cell)


def derive_multi(weights: ArchWeights, space: BoundSpace, draws: int) -> Genotype:
    """DATA's rule on a DARTS cell: per node, the top-i (edge, op) pairs of the jointly normalised
    probabilities (all `none` merged into one entry), i chosen to maximise the probability of M draws
    landing exactly on them."""
    normal, reduce = (_derive_cell(weights[cell].detach().double().cpu(), space.cell(cell), draws)
                      for cell in ("normal", "reduce"))
    concat = tuple(range(2, len(normal) + 2))
    return Genotype(normal, concat, reduce, concat, search_space=space.name)


class DataMethod(MethodBase):
    """DATA's options: the Ensemble Gumbel-Softmax draws and their temperature."""

    skipped_ops: SkippedOps = Field("computed", description=COMPUTED_LIKE_CODE)
    samples: Annotated[int, Field(ge=1)] = Field(4, description="M: Gumbel-softmax draws per edge (EGS).")
    tau: Annotated[float, Field(gt=0)] = Field(1.0, description="Gumbel-softmax temperature (released code: 1).")
    tau_schedule: Literal["constant", "linear"] = Field(
        "constant", description="linear: tau = tau_start - (tau_start - tau_end) * epoch / tau_epochs."
    )
    tau_start: Annotated[float, Field(gt=0)] = Field(5.0, description="Linear schedule start temperature.")
    tau_end: Annotated[float, Field(gt=0)] = Field(1.0, description="Linear schedule end temperature.")
    tau_epochs: Annotated[int, Field(ge=1)] = Field(150, description="Linear schedule length in epochs.")
    l1_weight: Annotated[float, Field(ge=0)] = Field(
        0.0, description="Weight of L1(p, sampled code) in the architecture loss (released code: 0.1)."
    )


@register_method("data", options=DataMethod, bench={
    "data_m4": {"samples": 4},
    "data_m7": {"samples": 7},
    # The cost of the weight-step switch: only the code's ops run (the architecture step still runs all).
    "data_m4_frozen": {"samples": 4, "skipped_ops": "frozen"},
})
class Data(AlphaMethod):
    """alpha initialised at 1 + 1e-3 N(0, 1) (relu keeps every op alive at the start), EGS codes each forward."""

    config: DataMethod

    @classmethod
    def required_features(cls, config: DataMethod) -> dict[str, str]:  # type: ignore[override]
        return {"darts_cell": "DATA's multi-pair derivation"}

    def __init__(self, config: DataMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training, init_mean=1.0)
        # Buffers: a search resumed mid-epoch must sample at the same temperature.
        self.register_buffer("tau", torch.tensor(self._tau_at(0)))
        self.per_cell("last_code", lambda spec: torch.zeros(spec.shape), buffer=True, persistent=False)

    def _tau_at(self, epoch: int) -> float:
        c = self.config
        if c.tau_schedule == "constant":
            return c.tau
        # Linear to tau_end over tau_epochs, then held (the schedule the released code meant to apply).
        return max(c.tau_end, c.tau_start - (c.tau_start - c.tau_end) * epoch / c.tau_epochs)

    def on_epoch_start(self, ctx: StepContext) -> None:
        self.tau.fill_(self._tau_at(ctx.epoch))

    def probabilities(self) -> ArchWeights:
        return ArchWeights({cell: relu_probabilities(alpha) for cell, alpha in self.alphas.items()})

    def forward_weights(self) -> ArchWeights:
        tau, samples = float(self.tau), self.config.samples
        codes = self.probabilities().map(lambda p: ensemble_gumbel_softmax(p, samples, tau))
        for cell, last in self.cell_tensors("last_code").items():
            last.copy_(codes[cell].detach())
        return codes

    def architecture_step_weights(self) -> ArchWeights:
        """EGS codes with every op computed: the straight-through gradient of an op the code left out
        (forward weight 0) is d loss / d code_k = <dL/dy, op_k(x)>, non-zero, so skipping it would drop
        that term from d loss / d alpha."""
        return replace(self.forward_weights(), compute_all=True)

    def eval_weights(self) -> ArchWeights:
        return self.probabilities()

    def mixing_probabilities(self) -> ArchWeights:
        return self.probabilities()

    def child_weights(self, discretised: ArchWeights) -> ArchWeights:
        """Each edge's kept ops share weight 1 equally, as an EGS code normalises them (and DATA's code does)."""
        def per_edge(weights: torch.Tensor) -> torch.Tensor:
            return weights / weights.sum(-1, keepdim=True).clamp_min(1.0)

        return discretised.map(per_edge)

    def regularization(self) -> torch.Tensor | float:
        """l1_weight * mean |p - last sampled code| per cell type (the released code's weight is 0.1)."""
        if not self.config.l1_weight:
            return 0.0
        p = self.probabilities()
        l1 = sum(F.l1_loss(p[cell], last) for cell, last in self.cell_tensors("last_code").items())
        return self.config.l1_weight * l1

    def derive(self) -> Genotype:
        return derive_multi(self.mixing_probabilities(), self.space, self.config.samples)
