"""DDSAS: UCB scores and subspace selection by hand, sampled-only computation, saliency, elastic spaces."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from search_e2e import prepare_digits, search_via_cli
from space_support import bound

from pipeline.config import SearchTraining
from pipeline.methods import create_method
from pipeline.methods.ddsas import (
    EXPAND_ORDER,
    DdsasMethod,
    select_subspace,
    shrink_available,
    shrink_available_released,
    ucb_scores,
)
from pipeline.space.primitives import PARAMETER_FREE, PRIMITIVES
from pipeline.stages.bench import build_harness

REPO = Path(__file__).resolve().parents[1]
SPACE = bound("darts")
NON_NONE = torch.tensor([op != "none" for op in PRIMITIVES])


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(**options):
    torch.manual_seed(0)
    return create_method(DdsasMethod(algorithm="ddsas", **options), SPACE, SearchTraining())


def _epoch(method, epoch: int) -> None:
    method.on_epoch_start(SimpleNamespace(epoch=epoch))


def test_ucb_scores_match_hand_computation():
    zeta = torch.tensor([[0.0, 1.0], [-1.0, 2.0]])
    counts = torch.tensor([[1, 4], [0, 2]])
    scores = ucb_scores(zeta, counts, iterations=4, c=math.sqrt(2))
    def sig(v: float) -> float:
        return 1 / (1 + math.exp(-v))

    expected = [sig(0) + math.sqrt(2 * math.log(4) / 1), sig(1) + math.sqrt(2 * math.log(4) / 4),
                math.inf, sig(2) + math.sqrt(2 * math.log(4) / 2)]
    assert scores.flatten().tolist() == pytest.approx(expected)


def _hand_ucb_table() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three edges of four ops, op 0 playing `none`; edge 1's best op (3) is not available."""
    ucb = torch.tensor([[9.0, 1.0, 3.0, 2.0],
                        [0.5, 0.2, 0.1, 8.0],
                        [7.0, 0.3, 0.4, 0.6]])
    available = torch.ones(3, 4, dtype=torch.bool)
    available[1, 3] = False
    return ucb, available, torch.tensor([False, True, True, True])


def test_subspace_selection_matches_hand_computation():
    ucb, available, non_none = _hand_ucb_table()
    chosen = select_subspace(ucb, torch.zeros(3, 4), available, non_none, budget=5)
    # Per edge: (0, op 2), (1, op 1), (2, op 3). Then by UCB: none@0 (free), op3@1 unavailable, none@2
    # (free), op3@0 (4th), op1@0 (5th): stop.
    assert chosen.tolist() == [[True, True, True, True],
                               [False, True, False, False],
                               [True, False, False, True]]


def test_unexplored_ties_are_broken_by_sigmoid_zeta():
    ucb = torch.full((2, 3), math.inf)
    tie_break = torch.tensor([[0.1, 0.2, 0.9], [0.3, 0.8, 0.4]])
    chosen = select_subspace(ucb, tie_break, torch.ones(2, 3, dtype=torch.bool), torch.ones(3, dtype=torch.bool),
                             budget=3)
    assert chosen.tolist() == [[False, False, True], [False, True, True]]


def test_subspace_has_exactly_L_non_none_ops_and_one_per_edge():
    method = _method(num_sampled=20)
    for round_ in range(3):
        with torch.no_grad():
            method.zeta.normal_()
            method.counts.random_(0, 5)
            method.iterations.fill_(round_ + 3)
        method._resample()
        for cell in method.sampled:
            real = cell & NON_NONE
            assert int(real.sum()) == 20
            assert bool(real.any(-1).all())


@pytest.mark.parametrize("supernet", ["reference", "fast"])
def test_unsampled_ops_are_not_executed_and_get_no_gradient(supernet):
    """Forward hooks on the op modules see what the reference path runs; the fast path calls the pieces of
    an op (a shared ReLU, then the op's convolutions), so there only the gradients tell what ran."""
    torch.manual_seed(0)
    harness = build_harness(DdsasMethod(algorithm="ddsas", num_sampled=15), layers=3, channels=4, batch=2,
                            image_size=8, supernet=supernet)
    net, method = harness.net, harness.method
    executed = set()
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge.ops):
                op.register_forward_hook(lambda *_, key=(int(cell.reduction), e, k, c): executed.add(key))
    x, y = harness.train
    torch.nn.functional.cross_entropy(net(x, method.forward_weights()), y).backward()
    expected = {(int(cell.reduction), e, k, c) for c, cell in enumerate(net.cells)
                for e, k in (method.sampled[int(cell.reduction)] & NON_NONE).nonzero().tolist()}
    if supernet == "reference":
        assert executed == expected
    off = ~method.sampled
    assert bool((method.alpha.grad[off] == 0).all()) and bool((method.zeta.grad[off] == 0).all())
    assert method.alpha.grad[method.sampled & NON_NONE].abs().sum() > 0
    for c, cell in enumerate(net.cells):
        for e, edge in enumerate(cell.edges):
            for k, op in enumerate(edge.ops):
                grads = [p.grad for p in op.parameters()]
                if not method.sampled[int(cell.reduction), e, k]:
                    assert all(g is None for g in grads)
                elif grads and (int(cell.reduction), e, k, c) in expected:
                    assert all(g is not None for g in grads)


def test_saliency_is_the_running_mean_of_unnormalised_weights():
    method = _method(num_sampled=20, update_every=2)
    first_mask = method.sampled.clone()
    first = method.unnormalised_weights().detach().clone()
    method.after_weight_step(None)
    assert int(method.iterations) == 0  # not yet M steps
    method.after_weight_step(None)
    assert int(method.iterations) == 1
    assert torch.equal(method.counts, first_mask.long())
    with torch.no_grad():
        method.zeta.add_(0.5)
        method.alpha.normal_()
    second_mask = method.sampled.clone()
    second = method.unnormalised_weights().detach().clone()
    method.after_weight_step(None)
    method.after_weight_step(None)
    both, once_first, once_second = first_mask & second_mask, first_mask & ~second_mask, ~first_mask & second_mask
    assert torch.allclose(method.saliency[both], (first[both] + second[both]) / 2)
    assert torch.allclose(method.saliency[once_first], first[once_first])
    assert torch.allclose(method.saliency[once_second], second[once_second])
    assert bool((method.saliency[~first_mask & ~second_mask] == 0).all())
    assert torch.equal(method.counts, first_mask.long() + second_mask.long())
    assert int(method.iterations) == 2


def test_shrink_removes_the_lowest_saliency_ops_at_schedule_epochs():
    method = _method(num_sampled=28, schedule="shrink", schedule_every=2, shrink_count=14)
    with torch.no_grad():
        method.saliency.copy_(torch.rand_like(method.saliency) + 1.0)
        method.saliency[:, :, 4] = torch.linspace(0.0, 0.13, 14)  # sep_conv_3x3 on every edge: lowest
    _epoch(method, 0)
    _epoch(method, 1)
    assert bool(method.available.all())
    _epoch(method, 2)
    assert method.available.sum().item() == 2 * (112 - 14)
    assert not method.available[:, :, 4].any()
    assert bool((method.sampled <= method.available).all())
    assert bool((method.sampled & NON_NONE).any(-1).all())


def test_shrink_keeps_one_non_none_op_per_edge():
    available = torch.ones(2, 3, dtype=torch.bool)
    available[0, 2] = False
    saliency = torch.tensor([[5.0, 0.1, 9.0], [0.2, 0.3, 0.4]])
    non_none = torch.tensor([False, True, True])
    # Lowest is op 1 of edge 0, its last non-none op: kept; then edge 1's none, op 1.
    assert shrink_available(available, saliency, non_none, 2).tolist() == [[True, True, False],
                                                                            [False, False, True]]


def test_expand_adds_one_op_type_every_schedule_epochs():
    method = _method(num_sampled=40, schedule="expand", schedule_every=2)
    start = {"none", "skip_connect", "sep_conv_3x3"}

    def ops_available() -> set[str]:
        return {op for k, op in enumerate(PRIMITIVES) if method.available[:, :, k].all()}

    assert ops_available() == start
    assert not method.available[:, :, [k for k, op in enumerate(PRIMITIVES) if op not in start]].any()
    # L is capped by the 2 x 14 available non-`none` ops.
    assert int((method.sampled & NON_NONE).sum()) == 2 * 28
    _epoch(method, 1)
    assert ops_available() == start
    for epoch, added in ((2, 1), (4, 2), (8, 4), (10, 5), (14, 5)):
        _epoch(method, epoch)
        assert ops_available() == start | set(EXPAND_ORDER[:added])
    assert bool(method.available.all())


def test_parametric_first_offers_only_ops_with_weights_until_the_switch_epoch():
    method = _method(num_sampled=28, update_every=1, schedule="parametric_first", schedule_every=3)
    with_weights = [k for k, op in enumerate(PRIMITIVES) if op not in PARAMETER_FREE]
    without = [k for k, op in enumerate(PRIMITIVES) if op in PARAMETER_FREE]
    assert {PRIMITIVES[k] for k in with_weights} == {"sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"}
    for epoch in (0, 1, 2):
        _epoch(method, epoch)
        for _ in range(2):
            method.after_weight_step(None)  # one bandit period per step (M = 1)
            assert method.available[:, :, with_weights].all() and not method.available[:, :, without].any()
            assert not method.sampled[:, :, without].any()
            assert int((method.sampled & NON_NONE).sum()) == 2 * 28
    assert not method.counts[:, :, without].any()
    _epoch(method, 3)
    assert bool(method.available.all())
    # Never tried, the parameter-free ops now have infinite UCB: each edge's first pick is one of them.
    parameter_free_ops = [k for k in without if PRIMITIVES[k] != "none"]
    assert method.sampled[:, :, parameter_free_ops].any(-1).all()


def test_epoch_metrics_report_cosine_distance_and_active_ops():
    method = _method(num_sampled=20)
    first = method.epoch_metrics()
    assert math.isnan(first["arch_cosine_distance"])
    assert first["active_ops"] == 40 and first["available_ops"] == 2 * 14 * 7
    assert method.epoch_metrics()["arch_cosine_distance"] == pytest.approx(0.0, abs=1e-7)
    with torch.no_grad():
        method.saliency.copy_(torch.rand_like(method.saliency))
    distance = method.epoch_metrics()["arch_cosine_distance"]
    assert 0.0 < distance <= 1.0


def test_state_dict_round_trip_restores_the_bandit():
    method = _method(num_sampled=20, update_every=1)
    for _ in range(3):
        method.after_weight_step(None)
    restored = _method(num_sampled=20, update_every=1)
    with torch.no_grad():
        restored.zeta.normal_()
    restored.load_state_dict(method.state_dict())
    for name in ("sampled", "available", "counts", "saliency", "iterations", "period_steps"):
        assert torch.equal(getattr(restored, name), getattr(method, name)), name
    assert torch.equal(restored.forward_weights()["normal"], method.forward_weights()["normal"])


def test_ddsas_search_runs_end_to_end_through_the_cli(tmp_path: Path):
    methods = {"ddsas_shrink": {"algorithm": "ddsas", "num_sampled": 20, "update_every": 1, "schedule": "shrink",
                                "schedule_every": 1}}
    summary, rows = search_via_cli(tmp_path, prepare_digits(tmp_path), methods, "ddsas_shrink", nodes=4, batch_size=8)
    assert summary["epochs"] == 2 and summary["steps"] == 4
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    # Epoch 1 began with a shrink: 14 of the 112 entries per cell type left the space.
    assert int(rows[1]["available_ops"]) < int(rows[0]["available_ops"]) == 2 * 14 * 7
    assert all(int(r["active_ops"]) == 40 for r in rows)


SMALL = bound("darts", nodes=2)  # 5 edges: node 2 from inputs 0, 1; node 3 from 0, 1, 2


def _small_method(**options):
    torch.manual_seed(0)
    return create_method(DdsasMethod(algorithm="ddsas", num_sampled=6, **options), SMALL, SearchTraining(nodes=2))


def test_derivation_never_chooses_an_op_the_schedule_removed():
    method = _small_method()
    op = {name: k for k, name in enumerate(PRIMITIVES)}
    saliency = torch.full(SMALL.cells[0].shape, 0.01)
    available = torch.ones(SMALL.cells[0].shape, dtype=torch.bool)
    for edge, name, value, kept in [(0, "sep_conv_3x3", 0.9, False), (0, "skip_connect", 0.5, True),
                                    (1, "dil_conv_3x3", 0.4, True), (2, "max_pool_3x3", 0.95, False),
                                    (2, "sep_conv_5x5", 0.3, True), (3, "avg_pool_3x3", 0.35, True),
                                    (4, "dil_conv_5x5", 0.2, True), (4, "none", 0.99, True)]:
        saliency[edge, op[name]] = value
        available[edge, op[name]] = kept
    with torch.no_grad():
        method.saliency.copy_(saliency.expand(2, *SMALL.cells[0].shape))
        method.available.copy_(available.expand(2, *SMALL.cells[0].shape))
    # By hand, available ops only: node 2 keeps edge 0's skip (0.5) and edge 1's dil_conv_3x3 (0.4); node 3
    # keeps edge 3's avg_pool (0.35) and edge 2's sep_conv_5x5 (0.3). Raw saliency would pick sep_conv_3x3
    # and max_pool_3x3.
    expected = [{("skip_connect", 0), ("dil_conv_3x3", 1)}, {("avg_pool_3x3", 1), ("sep_conv_5x5", 0)}]
    genotype = method.derive()
    for cell in (genotype.normal, genotype.reduce):
        assert [set(node) for node in cell] == expected


def test_released_code_selection_lets_none_join_in_the_first_pass():
    # The same table as test_subspace_selection_matches_hand_computation: edge 1's none (0.5) now ranks
    # above its first real op (0.2), so it joins; the second pass adds budget - 3 edges = 2 real ops.
    ucb, available, non_none = _hand_ucb_table()
    chosen = select_subspace(ucb, torch.zeros(3, 4), available, non_none, budget=5, released_code=True)
    assert chosen.tolist() == [[True, True, True, True],
                               [True, True, False, False],
                               [True, False, False, True]]


def test_released_code_selection_spends_the_budget_beyond_an_emptied_edge():
    ucb = torch.tensor([[1.0, 5.0, 4.0, 0.5], [9.0, 9.0, 9.0, 9.0]])
    available = torch.tensor([[True, True, True, True], [False, False, False, False]])
    non_none = torch.tensor([False, True, True, True])
    # First pass: edge 0 takes op 1 (5.0), edge 1 has nothing; second pass: 3 - 2 edges = 1 more, op 2 (4.0).
    chosen = select_subspace(ucb, torch.zeros(2, 4), available, non_none, budget=3, released_code=True)
    assert chosen.tolist() == [[False, True, True, False], [False, False, False, False]]


def test_released_code_shrink_counts_edges_before_removing_and_may_empty_one():
    available = torch.tensor([[True, True, True], [False, False, True], [False, True, True]])
    saliency = torch.tensor([[0.1, 0.5, 0.6], [0.0, 0.0, 0.05], [0.0, 0.2, 0.3]])
    # Ascending: edge 1's op 2 (0.05) sits on an edge that held 1 entry: kept; then (0, none) 0.1, (2, 1) 0.2
    # and (2, 2) 0.3 go, the last although edge 2 is then empty (it held 2 before the shrink).
    assert shrink_available_released(available, saliency, 3).tolist() == [[False, True, True],
                                                                           [False, False, True],
                                                                           [False, False, False]]
    # The paper's rule keeps the last real op of every edge instead.
    assert shrink_available(available, saliency, torch.tensor([False, True, True]), 3).tolist() == [
        [False, False, True], [False, False, True], [False, False, True]]


def test_released_code_bookkeeping_follows_a_hand_worked_sequence():
    c = 1.44
    method = _small_method(bookkeeping="code", update_every=2, ucb_c=c)
    # Counters start at 1: before any evaluation the bonus is c * sqrt(log 1 / 1) = 0, so the first
    # subspace is the top of sigmoid(zeta) (not every op at +inf).
    assert bool((method.counts == 1).all()) and int(method.iterations) == 1
    first_mask, u1 = method.sampled.clone(), method.unnormalised_weights().detach().clone()
    method.after_weight_step(None)
    method.after_weight_step(None)
    # Saliency (s * n + u) / (n + 1) from s = 0, n = 1: u / 2.
    assert torch.allclose(method.saliency, torch.where(first_mask, u1 / 2, torch.zeros_like(u1)))
    assert torch.equal(method.counts, 1 + first_mask.long())
    assert int(method.iterations) == 2
    ucb = torch.sigmoid(method.zeta) + c * torch.sqrt(math.log(2) / method.counts.double()).float()
    assert torch.allclose(ucb_scores(method.zeta, method.counts, 2, c), ucb)
    with torch.no_grad():
        method.alpha.normal_()
    second_mask, u2 = method.sampled.clone(), method.unnormalised_weights().detach().clone()
    # One step into the next period, the epoch ends: the released code's step counter restarts, so the
    # one-step period is scored at the epoch start.
    method.after_weight_step(None)
    _epoch(method, 1)
    both, only_second = first_mask & second_mask, ~first_mask & second_mask
    assert torch.allclose(method.saliency[both], (u1[both] + u2[both]) / 3)
    assert torch.allclose(method.saliency[only_second], u2[only_second] / 2)
    assert torch.equal(method.counts, 1 + first_mask.long() + second_mask.long())
    assert int(method.iterations) == 3 and int(method.period_steps) == 0


def test_paper_bookkeeping_keeps_a_period_running_across_epochs():
    method = _small_method(update_every=2)
    method.after_weight_step(None)
    _epoch(method, 1)
    assert int(method.iterations) == 0 and int(method.period_steps) == 1


def test_an_edge_the_released_shrink_emptied_mixes_nothing_and_stays_finite():
    method = _small_method(bookkeeping="code")
    with torch.no_grad():
        method.available[:, 3] = False
    method._resample()
    assert not method.sampled[:, 3].any()
    weights = method.forward_weights()
    assert bool((weights["normal"][3] == 0).all()) and bool(torch.isfinite(weights["normal"]).all())
    (weights["normal"].sum() + weights["reduce"].sum()).backward()
    assert bool(torch.isfinite(method.alpha.grad).all()) and bool(torch.isfinite(method.zeta.grad).all())
