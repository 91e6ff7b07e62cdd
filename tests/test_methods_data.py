"""DATA: Ensemble Gumbel-Softmax codes (the paper's propositions), straight-through gradients, derivation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from search_e2e import prepare_digits, search_via_cli
from space_support import arch, bound, cnn_cells

from pipeline.config import SearchTraining
from pipeline.methods import StepContext, create_method
from pipeline.methods.data_egs import (
    DataMethod,
    best_cover_size,
    ensemble_gumbel_softmax,
    exact_cover_probability,
    relu_probabilities,
)
from pipeline.space.genotype import Genotype, edge_index
from pipeline.space.primitives import PRIMITIVES
from pipeline.space.supernet import Supernet, active_ops

REPO = Path(__file__).resolve().parents[1]
SPACE = bound("darts")


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(**options):
    torch.manual_seed(0)
    return create_method(DataMethod(algorithm="data", **options), SPACE, SearchTraining())


def _ones(codes: torch.Tensor) -> torch.Tensor:
    return (codes > 0).sum(-1)


def test_every_code_has_between_one_and_m_ones_with_exact_values():
    torch.manual_seed(0)
    probs = torch.distributions.Dirichlet(torch.full((8,), 0.5)).sample((2000,))
    for samples in (1, 4, 7):
        codes = ensemble_gumbel_softmax(probs, samples, tau=1.0)
        ones = _ones(codes)
        assert int(ones.min()) >= 1 and int(ones.max()) <= samples
        # Exactly 1/n on the n chosen ops and exactly 0 elsewhere: the supernet skips the zeros.
        assert torch.equal(codes, (codes > 0).float() / ones.unsqueeze(-1).float())
    assert int(_ones(ensemble_gumbel_softmax(probs, 7, tau=1.0)).max()) > 1


def test_inclusion_probability_is_monotone_in_p_proposition_1():
    torch.manual_seed(0)
    p = torch.tensor([0.05, 0.1, 0.15, 0.3, 0.4])
    codes = ensemble_gumbel_softmax(p.expand(40_000, 5), 3, tau=1.0)
    frequency = (codes > 0).float().mean(0)
    assert bool((frequency[1:] > frequency[:-1]).all()), frequency
    # Each draw picks op k with probability p_k, so P(b_k = 1) = 1 - (1 - p_k)^M.
    assert torch.allclose(frequency, 1 - (1 - p) ** 3, atol=0.01)


@pytest.mark.parametrize(("num_ops", "samples"), [(4, 2), (4, 3), (3, 5), (5, 1)])
def test_number_of_distinct_codes_matches_proposition_2(num_ops, samples):
    """Every code with 1..min(M, K) ones, i.e. sum_i C(K, i) codes (the paper prints C(K, M)(2^M - 1))."""
    torch.manual_seed(0)
    codes = ensemble_gumbel_softmax(torch.full((20_000, num_ops), 1 / num_ops), samples, tau=1.0)
    distinct = {tuple((row > 0).tolist()) for row in codes}
    assert len(distinct) == sum(math.comb(num_ops, i) for i in range(1, min(samples, num_ops) + 1))


def test_straight_through_gradients_reach_alpha():
    method = _method(samples=4)
    weights = method.forward_weights()
    for w in (weights["normal"], weights["reduce"]):
        # The forward value is the code itself: some ops are not computed at all.
        assert all(1 <= len(ops) <= 4 for ops in active_ops(w, torch.ones(w.shape, dtype=torch.bool)))
    target = torch.randn(2, *SPACE.cells[0].shape)
    (weights["normal"] * target[0] + weights["reduce"] * target[1]).sum().backward()
    for alpha in method.arch_parameters():
        assert alpha.grad is not None and bool(torch.isfinite(alpha.grad).all())
        assert alpha.grad.abs().sum() > 0


def test_l1_term_pulls_p_towards_the_last_code():
    method = _method(samples=4, l1_weight=0.1)
    code = method.forward_weights()
    p = method.probabilities()
    expected = 0.1 * ((p["normal"] - code["normal"]).abs().mean() + (p["reduce"] - code["reduce"]).abs().mean())
    reg = method.regularization()
    assert float(reg.detach()) == pytest.approx(float(expected.detach()))
    reg.backward()
    assert method.alpha_normal.grad.abs().sum() > 0
    assert _method(samples=4).regularization() == 0.0


def test_linear_temperature_schedule_is_applied_per_epoch_and_held_at_its_end():
    method = _method(tau_schedule="linear", tau_start=5.0, tau_end=1.0, tau_epochs=8)
    seen = []
    for epoch in (0, 2, 8, 12):
        method.on_epoch_start(SimpleNamespace(epoch=epoch))
        seen.append(float(method.tau))
    assert seen == pytest.approx([5.0, 4.0, 1.0, 1.0])
    constant = _method(tau=0.7)
    constant.on_epoch_start(SimpleNamespace(epoch=5))
    assert float(constant.tau) == pytest.approx(0.7)


def test_exact_cover_probability_matches_enumeration():
    probs = [0.4, 0.25, 0.2, 0.1, 0.05]
    for size, draws in ((1, 3), (2, 4), (3, 4), (3, 2)):
        brute = sum(math.prod(probs[i] for i in seq)
                    for seq in itertools.product(range(len(probs)), repeat=draws)
                    if set(seq) == set(range(size)))
        assert exact_cover_probability(probs[:size], draws) == pytest.approx(brute)
    # M = 1 can only land on one entry.
    assert best_cover_size(probs, 1) == 1


def _probabilities(entries: dict[tuple[int, int], dict[str, float]]) -> torch.Tensor:
    """A `[14, 8]` probability matrix: rows listed by (node, input), the others all `none`."""
    probs = torch.zeros(SPACE.cells[0].shape)
    probs[:, PRIMITIVES.index("none")] = 1.0
    for (node, source), row in entries.items():
        probs[edge_index(node, source)] = 0.0
        for op, value in row.items():
            probs[edge_index(node, source), PRIMITIVES.index(op)] = value
    return probs


def test_derivation_keeps_the_expected_top_i_pairs():
    probs = _probabilities({
        # node 2: avg@1 .5, skip@0 .25, sep3@0 .25 -> i=3 (P = .375 against .25 and .0625): two ops on one edge
        (2, 0): {"sep_conv_3x3": 0.5, "skip_connect": 0.5}, (2, 1): {"avg_pool_3x3": 1.0},
        # node 3: none 2/3, dil3@0 1/3 -> i=2 (P = .79): `none` dropped, one op left
        (3, 0): {"dil_conv_3x3": 1.0},
        # node 4: none .975, sep5@3 .025 -> i=1 is `none` alone: the strongest real op is kept
        (4, 3): {"none": 0.9, "sep_conv_5x5": 0.1},
        # node 5: none .8, skip@4 .2 -> i=2 (P = .589 against .41)
        (5, 4): {"skip_connect": 1.0},
    })
    method = _method(samples=4)
    with torch.no_grad():
        method.alpha_normal.copy_(probs)  # relu(alpha) / sum = alpha for a probability matrix
        method.alpha_reduce.copy_(probs)
    cell = (
        (("avg_pool_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0)),
        (("dil_conv_3x3", 0),),
        (("sep_conv_5x5", 3),),
        (("skip_connect", 4),),
    )
    assert method.derive() == Genotype(cell, (2, 3, 4, 5), cell, (2, 3, 4, 5))


def test_data_search_runs_end_to_end_through_the_cli(tmp_path: Path):
    methods = {"data_m4": {"algorithm": "data", "samples": 4, "l1_weight": 0.1, "tau_schedule": "linear",
                           "overrides": {"arch": {"weight_decay": 0}}}}
    summary, rows = search_via_cli(tmp_path, prepare_digits(tmp_path), methods, "data_m4", batch_size=8)
    assert summary["epochs"] == 2 and summary["steps"] == 4
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(math.isfinite(float(r["valid_loss"])) for r in rows)


def _double_setup(samples: int = 4):
    """A tiny float64 supernet and DATA method: finite differences are accurate to ~1e-9 there."""
    torch.manual_seed(0)
    space = bound("darts", nodes=2)
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES, 2), stem_multiplier=1,
                   in_channels=1).double()
    method = create_method(DataMethod(algorithm="data", samples=samples), space, SearchTraining(nodes=2)).double()
    with torch.no_grad():  # distinct probabilities, so the codes leave several ops out on every edge
        for alpha in method.arch_parameters():
            alpha.uniform_(0.05, 1.0)
    ctx = StepContext(net=net, criterion=torch.nn.CrossEntropyLoss(), w_optimizer=None, a_optimizer=None,
                      epoch=0, epochs=1, lr=0.1, device=torch.device("cpu"))
    batch = (torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0]))
    return net, method, ctx, batch


def _codes(alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor, samples: int, noise_seed: int) -> torch.Tensor:
    """The EGS codes of both cell types under fixed Gumbel noise, as a differentiable function of alpha."""
    torch.manual_seed(noise_seed)
    return torch.stack([ensemble_gumbel_softmax(relu_probabilities(a), samples, 1.0)
                        for a in (alpha_normal, alpha_reduce)])


def _loss_at_code(net, ctx, batch, code: torch.Tensor) -> float:
    with torch.no_grad():
        return float(ctx.criterion(net(batch[0], arch(code[0], code[1])), batch[1]))


def test_architecture_gradient_is_the_exact_straight_through_gradient():
    """d loss / d alpha = J^T g: g = d loss / d code by central differences on every code entry (perturbing an
    entry makes it non-zero, so the supernet computes that op however it treats zeros), J = d code / d alpha
    of the straight-through EGS alone. The supernet forward used for g is the plain skip-zeros one."""
    net, method, ctx, batch = _double_setup()
    seed, h = 11, 1e-6
    torch.manual_seed(seed)
    method.arch_loss(ctx, batch).backward()
    got = torch.cat([method.alpha_normal.grad.flatten(), method.alpha_reduce.grad.flatten()])

    alphas = [a.detach().clone().requires_grad_() for a in method.arch_parameters()]
    code = _codes(*alphas, method.config.samples, seed)
    assert int((code == 0).sum()) > code.numel() // 2  # most ops are left out by the codes
    g = torch.zeros_like(code)
    for index in itertools.product(*map(range, code.shape)):
        up, down = code.detach().clone(), code.detach().clone()
        up[index] += h
        down[index] -= h
        g[index] = (_loss_at_code(net, ctx, batch, up) - _loss_at_code(net, ctx, batch, down)) / (2 * h)
    expected = torch.cat([grad.flatten() for grad in torch.autograd.grad(code, alphas, g)])
    assert torch.allclose(got, expected, rtol=1e-6, atol=1e-9), (got - expected).abs().max()

    # The estimator without the left-out ops' terms (what skipping them computed) is far from it.
    torch.manual_seed(seed)
    skipped = method.forward_weights()
    loss = ctx.criterion(net(batch[0], skipped), batch[1])
    partial = torch.cat([grad.flatten() for grad in torch.autograd.grad(loss, list(method.arch_parameters()))])
    assert float((partial - expected).norm() / expected.norm()) > 0.05


def test_architecture_step_runs_every_op_but_none():
    net, method, ctx, batch = _double_setup()
    runs = []
    for cell in net.cells:
        for edge in cell.edges:
            for op in edge.ops:
                op.register_forward_hook(lambda *_: runs.append(1))
    method.arch_loss(ctx, batch)
    ops_but_none = sum(len(edge.ops) - 1 for cell in net.cells for edge in cell.edges)
    assert len(runs) == ops_but_none


def test_child_validation_shares_weight_one_among_an_edges_kept_ops():
    method = _method()
    discretised = torch.zeros(SPACE.cells[0].shape)
    sep, skip, pool = (PRIMITIVES.index(op) for op in ("sep_conv_3x3", "skip_connect", "max_pool_3x3"))
    discretised[0, sep] = discretised[0, skip] = 1.0  # two ops on edge 0: 1/2 each, as their EGS code
    discretised[3, pool] = 1.0  # one op: 1
    child = method.child_weights(arch(discretised, discretised))
    expected = torch.zeros(SPACE.cells[0].shape)
    expected[0, sep] = expected[0, skip] = 0.5
    expected[3, pool] = 1.0
    assert torch.equal(child["normal"], expected) and torch.equal(child["reduce"], expected)
