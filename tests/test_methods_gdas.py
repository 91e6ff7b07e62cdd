"""GDAS: hard one-hot samples forward, softmax gradients backward, the temperature schedule, a search step.

Oracles: the Gumbel-max trick (argmax of log p + Gumbel noise is a draw from p), the straight-through
gradient written out by hand from the softmax Jacobian, and the GDAS search script's linear schedule.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.methods.gdas import GdasMethod, gumbel_hard, linear_tau
from pipeline.space.primitives import PRIMITIVES
from pipeline.stages.bench import build_harness

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_forward_sample_is_exactly_one_hot():
    torch.manual_seed(0)
    alpha = torch.randn(14, 8, requires_grad=True)
    for tau in (10.0, 1.0, 0.1):
        h = gumbel_hard(alpha, tau)
        assert set(h.detach().unique().tolist()) <= {0.0, 1.0}
        assert torch.equal((h != 0).sum(-1), torch.ones(14, dtype=torch.long))


def test_samples_follow_softmax_alpha_at_any_temperature():
    # Gumbel-max: argmax(log p + g) ~ Categorical(p); dividing by tau does not move the argmax.
    alpha = torch.tensor([[0.0, 1.0, -1.0, 2.0]])
    expected = alpha.softmax(-1)[0]
    draws = 20000
    generator = torch.Generator().manual_seed(1)
    observed = gumbel_hard(alpha.expand(draws, 4), 3.0, generator).sum(0) / draws
    # Four binomial standard errors at most (each below 0.0036 here).
    assert torch.all((observed - expected).abs() <= 4 * (expected * (1 - expected) / draws).sqrt())


def test_the_gradient_is_the_softmax_straight_through_and_reaches_every_logit():
    alpha = torch.tensor([[0.3, -0.2, 0.9, 0.1, -1.0]], dtype=torch.float64, requires_grad=True)
    tau = 0.7
    generator = torch.Generator().manual_seed(3)
    h = gumbel_hard(alpha, tau, generator)
    sampled = int(h.argmax())
    # Only the sampled op is computed in the supernet: its output o enters the loss as h_k * o, so
    # d loss / d h = c on that op and 0 elsewhere.
    c = 2.5
    (h[0, sampled] * c).backward()
    # The same draws give the soft sample p = softmax((log_softmax(alpha) + g) / tau) ...
    u = torch.rand(alpha.shape, generator=torch.Generator().manual_seed(3)).double()  # drawn in fp32
    g = -torch.log(-torch.log(u))
    p = ((alpha.detach() - alpha.detach().logsumexp(-1) + g) / tau).softmax(-1)[0]
    assert int(p.argmax()) == sampled
    # ... whose Jacobian gives d h_k / d alpha_j = p_k (delta_kj - p_j) / tau.
    delta = torch.zeros(5, dtype=torch.float64)
    delta[sampled] = 1.0
    expected = c * p[sampled] * (delta - p) / tau
    assert torch.allclose(alpha.grad[0], expected, rtol=1e-10, atol=1e-14)
    assert bool((alpha.grad != 0).all())


def test_temperature_decays_linearly_to_the_end_value_at_the_last_epoch():
    # AutoDL-Projects' GDAS search: tau = tau_max - (tau_max - tau_min) * epoch / (epochs - 1).
    assert linear_tau(10.0, 0.1, 0, 250) == 10.0
    assert linear_tau(10.0, 0.1, 249, 250) == pytest.approx(0.1)
    assert linear_tau(10.0, 0.1, 100, 201) == pytest.approx(10.0 - 9.9 * 0.5)
    assert linear_tau(10.0, 0.1, 0, 1) == 10.0


def test_a_search_step_follows_the_temperature_schedule_and_moves_every_alpha():
    torch.manual_seed(0)
    harness = build_harness(GdasMethod(algorithm="gdas"), layers=3, channels=4, batch=2, image_size=8,
                            supernet="reference")
    method, ctx = harness.method, harness.ctx
    ctx.epoch, ctx.epochs = 3, 5
    method.on_epoch_start(ctx)
    assert float(method.tau) == pytest.approx(10.0 - 9.9 * 3 / 4)
    before = [a.detach().clone() for a in method.arch_parameters()]
    harness.step()
    harness.step()
    for old, new in zip(before, method.arch_parameters(), strict=True):
        assert bool((new != old).all())  # Adam moves every logit: each has a gradient
    weights = method.forward_weights()["normal"]
    assert torch.equal((weights != 0).sum(-1), torch.ones(weights.shape[0], dtype=torch.long))
    assert torch.allclose(method.eval_weights()["reduce"], method.alpha_reduce.softmax(-1))
    genotype = method.derive()
    assert all(len(node) == 2 for node in genotype.normal)


def test_the_supernet_runs_one_op_per_edge_under_a_sample():
    torch.manual_seed(1)
    harness = build_harness(GdasMethod(algorithm="gdas"), layers=3, channels=4, batch=2, image_size=8,
                            supernet="reference")
    calls: list[str] = []
    for cell in harness.net.cells:
        for edge in cell.edges:
            for name, op in zip(edge.primitives, edge.ops, strict=True):
                op.register_forward_hook(lambda module, args, out, name=name: calls.append(name))
    weights = harness.method.forward_weights()
    harness.net(harness.valid[0], weights)
    none = PRIMITIVES.index("none")
    expected = sum(int((weights[cell.cell_type].argmax(-1) != none).sum()) for cell in harness.net.cells)
    assert len(calls) == expected  # `none` adds nothing and is never run
