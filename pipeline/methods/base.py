"""What every search method is: an `nn.Module` holding architecture state, plus hooks the shared loop calls.

A method decides the mixing weights the supernet uses on each step (`forward_weights`), updates its
architecture state (`architecture_step`), and derives a genotype (`derive`). It never touches data
loading, and the supernet never knows which method drives it. Everything a method must remember across
a preemption is either a parameter/buffer (saved by `state_dict`) or returned by `get_extra_state`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from pipeline.config import MethodBase, SearchTraining
from pipeline.space.genotype import Genotype, derive_top2
from pipeline.space.supernet import ArchWeights, Supernet, num_edges

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class SearchSpace:
    """The operations and cell size a method searches over."""

    primitives: tuple[str, ...]
    nodes: int = 4

    @property
    def num_edges(self) -> int:
        return num_edges(self.nodes)

    @property
    def num_ops(self) -> int:
        return len(self.primitives)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_edges, self.num_ops)


@dataclass
class StepContext:
    """What the loop shares with a method on each step. Methods may replace `w_optimizer` (DrNAS widening)."""

    net: Supernet
    criterion: nn.Module
    w_optimizer: torch.optim.Optimizer
    a_optimizer: torch.optim.Optimizer | None
    epoch: int
    epochs: int
    lr: float
    device: torch.device
    global_step: int = 0
    autocast: Callable[[], AbstractContextManager[Any]] = field(default=nullcontext)


class SearchMethod(nn.Module, abc.ABC):
    """Base class: a DARTS-style first-order method over per-edge architecture weights."""

    algorithm: ClassVar[str]

    def __init__(self, config: MethodBase, space: SearchSpace, training: SearchTraining) -> None:
        super().__init__()
        self.config = config
        self.space = space
        self.training_settings = training

    # -- what the supernet needs --------------------------------------------------------------------
    def supernet_options(self) -> dict[str, Any]:
        """Keyword arguments for `Supernet` this method requires (e.g. partial channels)."""
        return {}

    def arch_parameters(self) -> list[nn.Parameter]:
        """Parameters the architecture optimiser updates."""
        return list(self.parameters())

    @abc.abstractmethod
    def forward_weights(self) -> ArchWeights:
        """Mixing weights for one forward pass (possibly sampled)."""

    def eval_weights(self) -> ArchWeights:
        """Mixing weights when measuring the supernet's validation accuracy."""
        return self.forward_weights()

    def mixing_probabilities(self) -> ArchWeights:
        """Deterministic per-edge op weights: logged every epoch and used for derivation."""
        return self.forward_weights()

    def child_weights(self, discretised: ArchWeights) -> ArchWeights:
        """The derived child's mixing weights for its supernet validation: `discretised` (weight 1 on each kept
        op) as this method's own supernet would mix those ops. DARTS-style cells sum their inputs: unchanged."""
        return discretised

    # -- what the loop calls ------------------------------------------------------------------------
    def updates_architecture(self, epoch: int) -> bool:
        """Whether the architecture step runs in `epoch` (DrNAS warms up the weights first)."""
        return bool(self.arch_parameters())

    def regularization(self) -> torch.Tensor | float:
        """Extra term of the architecture loss (DrNAS anchor, DATA L1)."""
        return 0.0

    def architecture_step_weights(self) -> ArchWeights:
        """Mixing weights of the architecture step (DATA asks for every op: straight-through gradients)."""
        return self.forward_weights()

    def arch_loss(self, ctx: StepContext, batch: Batch) -> torch.Tensor:
        x, y = batch
        with ctx.autocast():
            logits = ctx.net(x, self.architecture_step_weights())
        return ctx.criterion(logits.float(), y) + self.regularization()

    def architecture_step(self, ctx: StepContext, train_batch: Batch, valid_batch: Batch) -> None:
        """First-order update on a validation batch."""
        assert ctx.a_optimizer is not None
        ctx.a_optimizer.zero_grad(set_to_none=True)
        self.arch_loss(ctx, valid_batch).backward()
        ctx.a_optimizer.step()

    def weight_step_weights(self, ctx: StepContext, train_batch: Batch) -> ArchWeights:
        """Mixing weights for the weight step (SDARTS perturbs them here)."""
        return self.forward_weights()

    def weight_step_supernet_weights(self, ctx: StepContext, train_batch: Batch) -> ArchWeights:
        """`weight_step_weights`, asking the supernet to run zero-weight ops too under `skipped_ops: computed`."""
        weights = self.weight_step_weights(ctx, train_batch)
        return replace(weights, compute_all=True) if self.config.skipped_ops == "computed" else weights

    def complete_skipped_gradients(self, net: nn.Module) -> None:
        """Under `skipped_ops: zero_grad`, give every weight the step left without a gradient a zero one.

        Call after the weight step's backward. SGD skips parameters whose gradient is None (no momentum, no
        weight decay); with a zero gradient it treats them as a code that ran the op with weight 0 does.
        """
        if self.config.skipped_ops != "zero_grad":
            return
        for param in net.parameters():
            if param.grad is None:
                param.grad = torch.zeros_like(param)

    def on_epoch_start(self, ctx: StepContext) -> None:
        """Schedules that act at epoch boundaries (DrNAS stages, DDSAS shrink/expand)."""

    def after_weight_step(self, ctx: StepContext) -> None:
        """Bookkeeping after each weight step (DDSAS resampling)."""

    def on_validation(self, epoch: int, valid_acc: float) -> None:
        """The supernet's validation accuracy (%) under `eval_weights` at the end of `epoch`, before
        derivation. Random search scores its candidates with it; gradient methods learn from batches."""

    def epoch_metrics(self) -> dict[str, float]:
        """Method-specific per-epoch analyses for history.csv."""
        return {}

    # -- results ------------------------------------------------------------------------------------
    def derive(self) -> Genotype:
        """The DARTS top-2 genotype of `mixing_probabilities`."""
        probs = self.mixing_probabilities()
        edge_scores = None
        if probs.normal_edges is not None and probs.reduce_edges is not None:
            edge_scores = (probs.normal_edges, probs.reduce_edges)
        return derive_top2(probs.normal, probs.reduce, self.space.primitives, nodes=self.space.nodes,
                           edge_scores=edge_scores)


_REGISTRY: dict[str, type[SearchMethod]] = {}


def register_method(algorithm: str) -> Callable[[type[SearchMethod]], type[SearchMethod]]:
    """Class decorator: make `algorithm` (the `algorithm:` value in params.yaml) build this class."""

    def decorate(cls: type[SearchMethod]) -> type[SearchMethod]:
        if algorithm in _REGISTRY:
            raise ValueError(f"method algorithm '{algorithm}' registered twice")
        cls.algorithm = algorithm
        _REGISTRY[algorithm] = cls
        return cls

    return decorate


def create_method(config: MethodBase, space: SearchSpace, training: SearchTraining) -> SearchMethod:
    """The one factory for search methods."""
    algorithm = config.algorithm  # type: ignore[attr-defined]
    if algorithm not in _REGISTRY:
        raise KeyError(f"no search method registered for algorithm '{algorithm}'; known: {list_methods()}")
    return _REGISTRY[algorithm](config, space, training)


def list_methods() -> list[str]:
    return sorted(_REGISTRY)
