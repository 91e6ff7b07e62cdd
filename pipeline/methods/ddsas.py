"""DDSAS (Yang et al., ACML 2021): differentiable search inside subspaces that a UCB bandit samples.

Plain DARTS only exploits: gradient descent on one softmax settles early. DDSAS keeps a bandit over the
(edge, op) entries of each cell type. Every M weight steps it scores the subspace it just trained
(`saliency`, the running mean of each sampled op's unnormalised weight sigmoid(zeta) * softmax(alpha)),
then samples the next subspace by UCB: sigmoid(zeta) + c * sqrt(log T / t). Only sampled ops get non-zero
mixing weights, so the supernet computes (and back-propagates through) only them, which is where the
method's speed and memory saving come from. The genotype is the space's rule (DARTS' top-2, NAS-Bench-201's
argmax per edge) applied to the saliency, which averages over every subspace an op took part in instead
of trusting the last one.

The available set can change at epoch boundaries: `shrink` drops the lowest-saliency entries, `expand`
starts from three ops per edge and adds one op type at a time (the paper's two elastic-space runs), and
`parametric_first` offers only the ops with weights until epoch `schedule_every`, then all of them (the
paper's direct ImageNet search: 40 of 60 epochs).

`bookkeeping: code` reproduces the released code's bandit instead of the paper's: counters that start at
1, `none` joining in the per-edge pass, a shrink that may empty an edge, and a new period at every epoch
start. Derivation uses only available ops in both (an op the schedule removed is never derived).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from pipeline.config import MethodBase, SearchTraining
from pipeline.methods.base import SearchMethod, StepContext, register_method
from pipeline.space.base import ArchWeights, BoundSpace
from pipeline.space.primitives import PARAMETER_FREE

# The paper's expanding space: these three first, then one more op type every `schedule_every` epochs.
EXPAND_START = ("none", "skip_connect", "sep_conv_3x3")
EXPAND_ORDER = ("max_pool_3x3", "dil_conv_3x3", "avg_pool_3x3", "sep_conv_5x5", "dil_conv_5x5")


def ucb_scores(zeta: torch.Tensor, counts: torch.Tensor, iterations: int, c: float) -> torch.Tensor:
    """UCB_k = sigmoid(zeta_k) + c * sqrt(log T / t_k), +inf for entries never evaluated (t_k = 0).

    An entry nobody has evaluated must be tried before any estimate can be trusted, hence +inf.
    """
    bonus = c * torch.sqrt(math.log(max(iterations, 1)) / counts.clamp_min(1).to(zeta.dtype))
    return torch.where(counts > 0, torch.sigmoid(zeta) + bonus, torch.full_like(zeta, math.inf))


def _ranking(scores: torch.Tensor, tie_break: torch.Tensor) -> list[int]:
    """Flat indices by descending `scores`, ties by descending `tie_break`, then by index (stable sorts)."""
    order = torch.sort(tie_break.flatten(), descending=True, stable=True).indices
    return order[torch.sort(scores.flatten()[order], descending=True, stable=True).indices].tolist()


def select_subspace(ucb: torch.Tensor, tie_break: torch.Tensor, available: torch.Tensor,
                    non_none: torch.Tensor, budget: int, released_code: bool = False) -> torch.Tensor:
    """The sampled subspace of one cell type, as a bool `[num_edges, num_ops]` mask.

    First the best available non-`none` op of every edge, so every edge stays connected; then the best
    remaining available entries overall until `budget` non-`none` ops are in. A `none` entry ranked
    above the cut-off joins too (it is never computed, but takes part in the edge's normalisation, as in
    DARTS) without counting towards the budget. `budget` is capped by the available non-`none` entries.

    `released_code`: as the released code, an available `none` ranked above an edge's first real op joins
    in the first pass too, and the second pass adds `budget - num_edges` real ops whether or not every
    edge found one in the first (an edge a shrink emptied finds none).
    """
    num_edges, num_ops = ucb.shape
    avail = available.tolist()
    counted = non_none.expand(num_edges, num_ops).tolist()
    chosen = [[False] * num_ops for _ in range(num_edges)]
    order = [divmod(flat, num_ops) for flat in _ranking(ucb, tie_break)]
    connected = [False] * num_edges
    for edge, op in order:
        if not avail[edge][op] or connected[edge]:
            continue
        if counted[edge][op]:
            chosen[edge][op] = connected[edge] = True
        elif released_code:
            chosen[edge][op] = True
    if released_code:
        count, budget = 0, budget - num_edges
    else:
        count = sum(connected)
        budget = min(budget, sum(a and n for row, kept in zip(avail, counted, strict=True)
                                 for a, n in zip(row, kept, strict=True)))
    for edge, op in order:
        if count >= budget:
            break
        if avail[edge][op] and not chosen[edge][op]:
            chosen[edge][op] = True
            count += counted[edge][op]
    return torch.tensor(chosen)


def shrink_available(available: torch.Tensor, saliency: torch.Tensor, non_none: torch.Tensor,
                     count: int) -> torch.Tensor:
    """`available` without its `count` lowest-saliency entries, never the last non-`none` op of an edge."""
    available = available.clone()
    num_ops = available.shape[1]
    non_none = non_none.expand_as(available)
    removed = 0
    for flat in torch.sort(saliency.flatten(), stable=True).indices.tolist():
        if removed == count:
            break
        edge, op = divmod(flat, num_ops)
        if not available[edge, op]:
            continue
        if non_none[edge, op] and int((available[edge] & non_none[edge]).sum()) == 1:
            continue
        available[edge, op] = False
        removed += 1
    return available


def shrink_available_released(available: torch.Tensor, saliency: torch.Tensor, count: int) -> torch.Tensor:
    """The released code's shrink: the `count` lowest-saliency available entries, `none` included, from
    edges that held more than one available entry *before* this shrink (the per-edge totals are not
    updated while removing), so an edge can lose every op."""
    available = available.clone()
    num_ops = available.shape[1]
    before = available.sum(-1).tolist()
    removed = 0
    for flat in torch.sort(saliency.flatten(), stable=True).indices.tolist():
        if removed == count:
            break
        edge, op = divmod(flat, num_ops)
        if available[edge, op] and before[edge] > 1:
            available[edge, op] = False
            removed += 1
    return available


class DdsasMethod(MethodBase):
    """DDSAS' options; `check_search` bounds the subspace size L by the space's edges and ops."""

    num_sampled: Annotated[int, Field(ge=1)] = Field(28, description="L: non-`none` ops sampled per cell type.")
    update_every: Annotated[int, Field(ge=1)] = Field(30, description="M: steps between subspace resamples.")
    ucb_c: Annotated[float, Field(ge=0)] = Field(
        math.sqrt(2), description="UCB exploration constant (paper sqrt(2); code 1.44)."
    )
    schedule: Literal["fixed", "shrink", "expand", "parametric_first"] = Field(
        "fixed", description="Available-op schedule; parametric_first: only ops with weights until epoch "
                             "schedule_every, then all (the paper's direct ImageNet search: 40 of 60 epochs)."
    )
    schedule_every: Annotated[int, Field(ge=1)] = Field(
        10, description="Epochs between shrink/expand events; the switch epoch of parametric_first."
    )
    shrink_count: Annotated[int, Field(ge=1)] = Field(14, description="Ops removed per cell type at each shrink.")
    bookkeeping: Literal["paper", "code"] = Field(
        "paper", description="paper: counts from 0, UCB +inf until an op is tried, first pass over real ops only, "
                             "at least one real op per edge after a shrink, periods run across epochs. code (the "
                             "released code): counts from 1, finite UCB bonus with t+1 and T+1, `none` may join in "
                             "the first pass, shrinking may empty an edge, a new period at every epoch start."
    )

    def check_search(self, where: str, training: SearchTraining, shape: tuple[int, int]) -> None:
        num_edges, num_ops = shape
        low, high = num_edges + 1, num_edges * num_ops
        if not low <= self.num_sampled <= high:
            raise ValueError(f"{where}.num_sampled: L = {self.num_sampled} is outside [{low}, {high}] "
                             f"({num_edges} edges x {num_ops} ops; one op per edge plus at least one more)")


@register_method("ddsas", options=DdsasMethod, bench={"ddsas": {"num_sampled": 28}})
class Ddsas(SearchMethod):
    """Space parameters zeta and architecture parameters alpha (`[cell, edge, op]`, one Adam) over UCB subspaces.

    Counters, saliency, the sampled and available masks and the previous epoch's architecture are
    buffers, so a resumed search continues the same bandit.
    """

    config: DdsasMethod

    @classmethod
    def required_features(cls, config: DdsasMethod) -> dict[str, str]:  # type: ignore[override]
        # The expanding space adds the DARTS operations in the paper's order; the bandit itself works on
        # any space whose cell types share one shape.
        if config.schedule == "expand":
            return {"darts_cell": "schedule: expand (the DARTS ops in the paper's order)"}
        return {}

    def __init__(self, config: DdsasMethod, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__(config, space, training)
        # One `[cells, edges, ops]` tensor: every cell type of the space must have the same shape.
        shape = (len(space.cells), *space.cells[0].shape)
        self.alpha = nn.Parameter(1e-3 * torch.randn(shape))
        # Near zero, like alpha: every op starts with sigmoid(zeta) ~ 0.5, no prior preference.
        self.zeta = nn.Parameter(1e-3 * torch.randn(shape))
        self.register_buffer("non_none", self._op_mask(lambda op: op != "none"), persistent=False)
        self.register_buffer("saliency", torch.zeros(shape))
        # The released code starts both counters at 1: its saliency is n/(n+1) of the running mean and
        # its UCB bonus is finite (c * sqrt(log 1 / 1) = 0 before any evaluation).
        start = int(self.released_bookkeeping)
        self.register_buffer("counts", torch.full(shape, start, dtype=torch.long))
        self.register_buffer("iterations", torch.tensor(start, dtype=torch.long))
        self.register_buffer("period_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("available", self._available_at(0, torch.ones(shape, dtype=torch.bool)))
        self.register_buffer("sampled", torch.zeros(shape, dtype=torch.bool))
        self.register_buffer("previous_architecture", torch.zeros(shape))
        self._resample()

    def _op_mask(self, keep: Callable[[str], bool]) -> torch.Tensor:
        """`[cells, edges, ops]`: True where `keep(op)` for that edge's candidate."""
        return torch.stack([spec.mask(keep) for spec in self.space.cells])

    @property
    def released_bookkeeping(self) -> bool:
        return self.config.bookkeeping == "code"

    # -- mixing weights -------------------------------------------------------------------------------
    def unnormalised_weights(self) -> torch.Tensor:
        """sigmoid(zeta) * softmax of alpha over the sampled ops: exactly 0 outside the subspace.

        An edge with nothing sampled (only after the released code's shrink) gets weights 0, not the NaN
        of a softmax over no entries.
        """
        empty = ~self.sampled.any(-1, keepdim=True)
        q = self.alpha.masked_fill(~(self.sampled | empty), -math.inf).softmax(-1) * self.sampled
        return torch.sigmoid(self.zeta) * q

    def forward_weights(self) -> ArchWeights:
        u = self.unnormalised_weights()
        w = u / u.sum(-1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)
        return self._by_cell(w)

    def mixing_probabilities(self) -> ArchWeights:
        """The saliency of the available ops (0 for removed ones): what the genotype is derived from and
        arch_weights.jsonl records. An op a shrink removed can never be chosen (as in the released code)."""
        return self._by_cell(self.saliency * self.available)

    def _by_cell(self, stacked: torch.Tensor) -> ArchWeights:
        return ArchWeights({spec.name: stacked[c] for c, spec in enumerate(self.space.cells)})

    # -- the bandit -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _end_period(self) -> None:
        """Score the subspace just trained: saliency running mean over evaluations, t_k += 1, T += 1."""
        u = self.unnormalised_weights()
        counts = self.counts + self.sampled.long()
        mean = (self.saliency * self.counts + u) / counts.clamp_min(1)
        self.saliency.copy_(torch.where(self.sampled, mean, self.saliency))
        self.counts.copy_(counts)
        self.iterations += 1
        self.period_steps.zero_()

    @torch.no_grad()
    def _resample(self) -> None:
        ucb = ucb_scores(self.zeta, self.counts, int(self.iterations), self.config.ucb_c)
        tie_break = torch.sigmoid(self.zeta)
        for c in range(len(self.space.cells)):
            mask = select_subspace(ucb[c], tie_break[c], self.available[c], self.non_none[c], self.config.num_sampled,
                                   released_code=self.released_bookkeeping)
            self.sampled[c] = mask.to(self.sampled.device)

    def after_weight_step(self, ctx: StepContext) -> None:
        self.period_steps += 1
        if int(self.period_steps) >= self.config.update_every:
            self._end_period()
            self._resample()

    # -- elastic space --------------------------------------------------------------------------------
    def _available_at(self, epoch: int, current: torch.Tensor) -> torch.Tensor:
        """The available mask at the start of `epoch` under the configured schedule."""
        every = self.config.schedule_every
        if self.config.schedule == "expand":
            added = EXPAND_ORDER[: epoch // every]
            return self._op_mask(lambda op: op in EXPAND_START or op in added).to(current.device)
        if self.config.schedule == "parametric_first":
            return self._op_mask(lambda op: epoch >= every or op not in PARAMETER_FREE).to(current.device)
        if self.config.schedule == "shrink" and epoch > 0 and epoch % every == 0:
            count = self.config.shrink_count
            if self.released_bookkeeping:
                return torch.stack([shrink_available_released(current[c], self.saliency[c], count)
                                    for c in range(len(self.space.cells))])
            return torch.stack([shrink_available(current[c], self.saliency[c], self.non_none[c], count)
                                for c in range(len(self.space.cells))])
        return current

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Apply the schedule. The released code also starts a new period at every epoch start (its step
        counter restarts), scoring the subspace of the epoch's last, possibly short, period."""
        available = self._available_at(ctx.epoch, self.available)
        unchanged = torch.equal(available, self.available)
        if unchanged and not (self.released_bookkeeping and int(self.period_steps) > 0):
            return
        # A schedule event ends the current period early: the subspace may hold removed ops.
        if int(self.period_steps) > 0:
            self._end_period()
        self.available.copy_(available)
        self._resample()

    # -- analyses -------------------------------------------------------------------------------------
    def epoch_metrics(self) -> dict[str, float]:
        """Cosine distance to the previous epoch's derived architecture (exploration), subspace sizes."""
        chosen = self.space.space.discretise(self.derive(), self.space.cells)
        current = torch.stack([chosen[spec.name] for spec in self.space.cells]).to(self.previous_architecture.device)
        previous = self.previous_architecture
        distance = math.nan
        if previous.any():
            distance = 1.0 - float(torch.nn.functional.cosine_similarity(current.flatten(), previous.flatten(), 0))
        self.previous_architecture.copy_(current)
        return {
            "arch_cosine_distance": distance,
            "active_ops": int((self.sampled & self.non_none).sum()),
            "available_ops": int((self.available & self.non_none).sum()),
        }
