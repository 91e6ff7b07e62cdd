"""The search step skips work whose result is thrown away, and nothing it keeps changes.

`search_step` computes only the architecture gradient in the architecture step and runs the weight
step on detached mixing weights. The oracle is the straightforward step written out here, as the
released DARTS code takes it: `loss.backward()` for the architecture loss (filling every network
weight's gradient too) and a weight step whose mixing weights still require grad. Second-order DARTS
keeps its own architecture step on both sides. Every registered method, through the bench's variants.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pipeline.methods import list_methods
from pipeline.methods.darts import Darts
from pipeline.stages.bench import Harness, bench_variants, build_harness

pytestmark = pytest.mark.usefixtures("one_thread")

REGISTERED = [name for name, config in bench_variants().items() if config.algorithm in list_methods()]


def straightforward_step(h: Harness) -> None:
    method, ctx = h.method, h.ctx
    if method.arch_parameters():
        if isinstance(method, Darts) and method.config.order == 2:
            method.architecture_step(ctx, h.train, h.valid)
        else:
            assert ctx.a_optimizer is not None
            ctx.a_optimizer.zero_grad(set_to_none=True)
            method.arch_loss(ctx, h.valid).backward()
            ctx.a_optimizer.step()
    weights = method.weight_step_supernet_weights(ctx, h.train)
    ctx.w_optimizer.zero_grad(set_to_none=True)
    loss = ctx.criterion(ctx.net(h.train[0], weights).float(), h.train[1])  # as the loop: fp32 loss
    loss.backward()
    method.complete_skipped_gradients(ctx.net)
    nn.utils.clip_grad_norm_(ctx.net.parameters(), h.grad_clip)
    ctx.w_optimizer.step()
    method.after_weight_step(ctx)
    ctx.global_step += 1


@pytest.mark.parametrize("variant", REGISTERED)
def test_two_steps_end_where_the_straightforward_steps_end(variant: str):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        states = []
        for take_step in (Harness.step, straightforward_step):
            torch.manual_seed(0)
            h = build_harness(bench_variants()[variant], layers=3, channels=4, batch=4, image_size=8)
            torch.manual_seed(1)
            for _ in range(2):
                take_step(h)
            states.append({**{f"net.{k}": v for k, v in h.net.state_dict().items()},
                           **{f"method.{k}": v for k, v in h.method.state_dict().items()}})
    finally:
        torch.set_default_dtype(previous)
    fast, oracle = states
    assert list(fast) == list(oracle)
    for name, value in oracle.items():
        if torch.is_tensor(value) and value.is_floating_point():
            torch.testing.assert_close(fast[name], value, rtol=1e-10, atol=1e-12, equal_nan=True, msg=name)
        elif torch.is_tensor(value):
            assert torch.equal(fast[name], value), name
        else:
            assert fast[name] == value, name


def test_the_architecture_step_leaves_network_weights_without_gradient():
    """The work skipped is real: after the architecture step no network weight holds a gradient."""
    h = build_harness(bench_variants()["darts_1st"], layers=3, channels=4, batch=4, image_size=8)
    h.ctx.w_optimizer.zero_grad(set_to_none=True)
    h.method.architecture_step(h.ctx, h.train, h.valid)
    assert all(p.grad is None for p in h.net.parameters())
    assert all(p.grad is not None for p in h.method.arch_parameters())
