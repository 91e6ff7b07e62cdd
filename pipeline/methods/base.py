"""What every search method is: an `nn.Module` holding architecture state, plus hooks the shared loop calls.

A method decides the mixing weights the supernet uses on each step (`forward_weights`), updates its
architecture state (`architecture_step`), and derives a genotype (`derive`). It never touches data
loading, and the supernet never knows which method drives it. Everything a method must remember across
a preemption is either a parameter/buffer (saved by `state_dict`) or returned by `get_extra_state`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from pipeline.config import MethodBase, SearchTraining
from pipeline.space.base import ArchWeights, BoundSpace, CellSpec

Batch = tuple[torch.Tensor, torch.Tensor]


@contextmanager
def frozen(parameters: Iterable[nn.Parameter]) -> Iterator[None]:
    """`parameters` do not require a gradient inside the block (restored afterwards, also on error)."""
    thawed = [p for p in parameters if p.requires_grad]
    for param in thawed:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in thawed:
            param.requires_grad_(True)


@dataclass
class StepContext:
    """What the loop shares with a method on each step. Methods may replace `w_optimizer` (DrNAS widening)."""

    net: nn.Module
    criterion: nn.Module
    w_optimizer: torch.optim.Optimizer
    a_optimizer: torch.optim.Optimizer | None
    epoch: int
    epochs: int
    lr: float
    device: torch.device
    global_step: int = 0
    autocast: Callable[[], AbstractContextManager[Any]] = field(default=nullcontext)
    # In a data-parallel search (pipeline/train/distributed.py, `DistContext.average`): replaces each tensor
    # in place by its mean over the processes. A method averages every quantity computed from its shard of
    # the batch that decides a shared result (gradients of a virtual step, an attack's ascent direction).
    average: Callable[[Sequence[torch.Tensor]], None] = field(default=lambda tensors: None)


class SearchMethod(nn.Module, abc.ABC):
    """Base class: a DARTS-style first-order method over per-edge architecture weights."""

    algorithm: ClassVar[str]
    # Set by register_method: the options schema of this method and the variants `bench` times.
    options: ClassVar[type[MethodBase]]
    bench_variants: ClassVar[dict[str, dict[str, Any]]]

    def __init__(self, config: MethodBase, space: BoundSpace, training: SearchTraining) -> None:
        super().__init__()
        self.config = config
        self.space = space
        self.training_settings = training

    def per_cell(self, prefix: str, make: Callable[[CellSpec], torch.Tensor], *,
                 buffer: bool = False, persistent: bool = True) -> dict[str, torch.Tensor]:
        """One parameter (or buffer) per cell type of the space, registered as `{prefix}_{cell}`.

        The names keep the checkpoint keys of the CNN spaces (`alpha_normal`, `alpha_reduce`) while the
        method itself never names a cell type. Returns them by cell-type name, in the space's order.
        """
        tensors: dict[str, torch.Tensor] = {}
        for spec in self.space.cells:
            name = f"{prefix}_{spec.name}"
            if buffer:
                self.register_buffer(name, make(spec), persistent=persistent)
            else:
                self.register_parameter(name, nn.Parameter(make(spec)))
            tensors[spec.name] = getattr(self, name)
        return tensors

    def cell_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The current `{prefix}_{cell}` tensors by cell-type name (buffers may be replaced by assignment)."""
        return {spec.name: getattr(self, f"{prefix}_{spec.name}") for spec in self.space.cells}

    @classmethod
    def required_features(cls, config: MethodBase) -> dict[str, str]:
        """Space features (`SearchSpace.features`) these options need, each with the option that needs it;
        params validation refuses the variant on a space without them."""
        return {}

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
        """First-order update on a validation batch.

        Only the architecture gradient is computed: `loss.backward()` would also fill every network
        weight's gradient, which the weight step discards (the released DARTS code pays for it; a third or
        more of this step's backward, mostly the depthwise convolutions' weight gradients). The network
        weights are frozen meanwhile, so that operations which keep tensors only for a weight gradient
        (the fast supernet's convolutions keep their inputs) know at forward time that none is asked for."""
        assert ctx.a_optimizer is not None
        ctx.a_optimizer.zero_grad(set_to_none=True)
        params = self.arch_parameters()
        with frozen(ctx.net.parameters()):
            grads = torch.autograd.grad(self.arch_loss(ctx, valid_batch), params, allow_unused=True)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
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

    def prepare_supernet_for_restore(self, net: nn.Module, parts: Any) -> None:
        """Before a checkpoint's supernet tensors are loaded, after this method's own state: restructure
        `net` to fit them (DrNAS widens it to the checkpointed stage). Most methods change nothing."""

    # -- results ------------------------------------------------------------------------------------
    def derive(self) -> Any:
        """The space's default derivation (DARTS top-2 on the CNN spaces) of `mixing_probabilities`."""
        return self.space.derive(self.mixing_probabilities())


_REGISTRY: dict[str, type[SearchMethod]] = {}


def register_method(algorithm: str, options: type[MethodBase], *,
                    bench: Mapping[str, Mapping[str, Any]] | None = None,
                    ) -> Callable[[type[SearchMethod]], type[SearchMethod]]:
    """Class decorator: make `algorithm` (the `algorithm:` value in params.yaml) build this class, its
    variants validated by `options` (a MethodBase subclass: defaults, descriptions, `check_search`).

    `bench` names the variants `python -m pipeline bench` times, each by the options it sets (default: one
    variant named `algorithm` with default options). The registry is the one home of the method list: the
    params schema, `config --explain`, `bench` and the tests read it.
    """

    def decorate(cls: type[SearchMethod]) -> type[SearchMethod]:
        if algorithm in _REGISTRY:
            raise ValueError(f"method algorithm '{algorithm}' registered twice")
        if not (isinstance(options, type) and issubclass(options, MethodBase)):
            raise TypeError(f"register_method('{algorithm}'): options must subclass pipeline.config.MethodBase, "
                            f"got {options!r}")
        if options.registered_as is not None:
            raise ValueError(f"register_method('{algorithm}'): {options.__name__} already holds the options of "
                             f"'{options.registered_as}'")
        options.registered_as = algorithm
        cls.algorithm = algorithm
        cls.options = options
        cls.bench_variants = {name: dict(keys) for name, keys in (bench or {algorithm: {}}).items()}
        _REGISTRY[algorithm] = cls
        return cls

    return decorate


def method_class(algorithm: str) -> type[SearchMethod]:
    """The class registered for `algorithm`."""
    if algorithm not in _REGISTRY:
        raise KeyError(f"no search method registered for algorithm '{algorithm}'; known: {list_methods()}")
    return _REGISTRY[algorithm]


def create_method(config: MethodBase, space: BoundSpace, training: SearchTraining) -> SearchMethod:
    """The one factory for search methods."""
    return method_class(config.algorithm)(config, space, training)


def list_methods() -> list[str]:
    return sorted(_REGISTRY)
