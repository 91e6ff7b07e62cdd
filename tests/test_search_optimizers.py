"""The search's optimisers (pipeline/search/optimizers.py) against PyTorch's per-parameter loop.

They run their arithmetic as `_foreach` operations; the oracle is the same optimiser class built by hand
from the same settings with `foreach=False` (PyTorch's one-tensor-at-a-time implementation, its default
on a CPU): after three steps with random gradients every parameter and every optimiser state is equal,
bit for bit, and the per-step operation count is a few, not a few per parameter."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from pipeline.config import ArchOptimConfig, WeightOptimConfig
from pipeline.search.optimizers import architecture_optimizer, weight_optimizer
from pipeline.stages.kernel_ops import count_kernel_ops

WEIGHTS = WeightOptimConfig(lr=0.05, momentum=0.8, weight_decay=1e-3)
ARCH = ArchOptimConfig(lr=0.01, betas=(0.6, 0.99), weight_decay=2e-3)
BUILDERS: dict[str, tuple[Callable, Callable]] = {
    "weights": (lambda params: weight_optimizer(params, WEIGHTS),
                lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.8, weight_decay=1e-3, foreach=False)),
    "architecture": (lambda params: architecture_optimizer(params, ARCH),
                     lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.6, 0.99), weight_decay=2e-3,
                                                     foreach=False)),
}


def _parameters(seed: int) -> list[torch.nn.Parameter]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=generator)) for shape in [(4, 3, 3, 3), (7,), (2, 5)]]


@pytest.mark.parametrize("kind", BUILDERS)
def test_the_search_optimisers_match_the_per_parameter_loop_bit_for_bit(kind: str):
    build, oracle = BUILDERS[kind]
    ours, theirs = _parameters(0), _parameters(0)
    ours_optimizer, theirs_optimizer = build(ours), oracle(theirs)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for mine, other in zip(ours, theirs, strict=True):
            mine.grad = torch.randn(mine.shape, generator=generator)
            other.grad = mine.grad.clone()
        ours_optimizer.step()
        theirs_optimizer.step()
    for mine, other in zip(ours, theirs, strict=True):
        assert torch.equal(mine, other)
        for key, value in theirs_optimizer.state[other].items():
            assert torch.equal(torch.as_tensor(ours_optimizer.state[mine][key]), torch.as_tensor(value)), key


@pytest.mark.parametrize("kind", BUILDERS)
def test_a_step_takes_as_many_operations_for_many_parameters_as_for_few(kind: str):
    def step_ops(count: int) -> int:
        params = [torch.nn.Parameter(torch.randn(3)) for _ in range(count)]
        for param in params:
            param.grad = torch.randn(3)
        optimizer = BUILDERS[kind][0](params)
        optimizer.step()  # the first step creates the state
        counts = count_kernel_ops(optimizer.step).counts
        # Adam reads each parameter's step count, a number it keeps on the host (no kernel on any device)
        return counts.total() - counts["_local_scalar_dense"]
    assert step_ops(50) == step_ops(2)


def test_a_method_without_architecture_parameters_gets_no_architecture_optimiser():
    assert architecture_optimizer([], ARCH) is None
