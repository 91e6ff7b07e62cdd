"""`skipped_ops`: what one weight step does to the ops a step's mixing weights leave at exactly 0.

The oracle is SGD's update rule written out: with momentum mu, weight decay wd and learning rate lr, a
parameter whose gradient is 0 moves to p - lr * (mu * buf + wd * p); one without a gradient does not move.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.methods.darts import DartsMethod
from pipeline.methods.data_egs import DataMethod
from pipeline.methods.ddsas import DdsasMethod
from pipeline.methods.drnas import DrnasMethod
from pipeline.methods.sdarts import SdartsMethod
from pipeline.stages.bench import build_harness

pytestmark = pytest.mark.usefixtures("one_thread")


def _snapshot(harness):
    """Per (cell, edge, op) of the supernet: its parameters, their momentum buffers and its BN statistics."""
    state = {}
    optimizer = harness.ctx.w_optimizer
    for c, cell in enumerate(harness.net.cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge.ops):
                params = [p.detach().clone() for p in op.parameters()]
                buffers = [optimizer.state[p]["momentum_buffer"].clone() for p in op.parameters()]
                stats = [m.running_mean.clone() for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
                state[c, e, k] = (params, buffers, stats)
    return state


def _weight_step(harness) -> None:
    """The search loop's weight step (pipeline/search/loop.py `_step`), without the architecture step."""
    method, ctx = harness.method, harness.ctx
    weights = method.weight_step_supernet_weights(ctx, harness.train)
    ctx.w_optimizer.zero_grad(set_to_none=True)
    ctx.criterion(harness.net(harness.train[0], weights), harness.train[1]).backward()
    method.complete_skipped_gradients(harness.net)
    ctx.w_optimizer.step()


def _weight_step_zeros(harness):
    """(cell, edge, op) whose weight in the last weight step was exactly 0 (DATA records its last code)."""
    code = harness.method.cell_tensors("last_code")
    return {(c, e, k) for c, cell in enumerate(harness.net.cells)
            for e, k in (code[cell.cell_type] == 0).nonzero().tolist()}


@pytest.mark.parametrize("mode", ["frozen", "zero_grad", "computed"])
def test_zero_weight_ops_follow_the_sgd_rule_of_the_chosen_mode(mode):
    torch.manual_seed(0)
    harness = build_harness(DataMethod(algorithm="data", samples=2, skipped_ops="computed"), layers=3, channels=4,
                            batch=4, image_size=8)
    harness.step()  # every op ran: every parameter has a momentum buffer
    harness.method.config.skipped_ops = mode
    # DATA's architecture step runs every op in train mode (BN statistics move): snapshot after it.
    harness.method.architecture_step(harness.ctx, harness.train, harness.valid)
    before = _snapshot(harness)
    _weight_step(harness)
    after = _snapshot(harness)
    group = harness.ctx.w_optimizer.param_groups[0]
    lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
    zeros = _weight_step_zeros(harness)
    none = harness.method.space.cells[0].edge_ops[0].index("none")  # the darts space: the same ops on every edge
    checked = 0
    for key in zeros:
        if key[2] == none or not before[key][0]:
            continue
        (params, buffers, stats), (new_params, new_buffers, new_stats) = before[key], after[key]
        for p, buf, new_p, new_buf in zip(params, buffers, new_params, new_buffers, strict=True):
            if mode == "frozen":
                assert torch.equal(new_p, p) and torch.equal(new_buf, buf)
            else:
                assert torch.allclose(new_buf, mu * buf + wd * p, rtol=1e-5, atol=1e-9)
                assert torch.allclose(new_p, p - lr * (mu * buf + wd * p), rtol=1e-5, atol=1e-9)
        moved = any(not torch.equal(a, b) for a, b in zip(stats, new_stats, strict=True))
        assert moved == (mode == "computed")  # only a computed op's BN sees the batch
        checked += 1
    assert checked > 10


@pytest.mark.parametrize(("config", "expected"), [
    (SdartsMethod(algorithm="sdarts"), "computed"),  # the released SDARTS code runs every op
    (DataMethod(algorithm="data"), "computed"),  # so does DATA's
    (DdsasMethod(algorithm="ddsas"), "frozen"),  # DDSAS' code runs only the sampled ops
    (DrnasMethod(algorithm="drnas"), "frozen"),  # DrNAS' code skips w == 0 (its pruned ops)
    (DartsMethod(algorithm="darts"), "frozen"),  # softmax weights are never exactly 0
])
def test_default_follows_what_the_released_code_computes(config, expected):
    assert config.skipped_ops == expected
