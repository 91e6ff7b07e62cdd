"""Random search: uniform valid candidates, each trained in turn from scratch, the best one derived."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml
from search_e2e import prepare_digits, search_via_cli
from space_support import bound

from pipeline.config import SearchTraining, params_from_dict
from pipeline.errors import ConfigError
from pipeline.methods import create_method
from pipeline.methods.random_search import RandomMethod
from pipeline.space.genotype import edge_index
from pipeline.space.primitives import PRIMITIVES
from pipeline.stages.bench import build_harness

REPO = Path(__file__).resolve().parents[1]
SPACE = bound("darts")


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(seed: int = 0, **options):
    torch.manual_seed(seed)
    return create_method(RandomMethod(algorithm="random", **options), SPACE, SearchTraining())


def test_candidates_are_valid_uniform_genotypes_and_seeded():
    method = _method(candidates=60)
    ops, inputs = Counter(), Counter()
    for k in range(60):
        genotype = method.genotype_of(k)  # construction validates names, inputs and `none`
        for cell in (genotype.normal, genotype.reduce):
            for node, pairs in enumerate(cell, start=2):
                assert len(pairs) == 2 and pairs[0][1] != pairs[1][1]
                ops.update(op for op, _ in pairs)
                inputs.update((node, source) for _, source in pairs)
    assert set(ops) == set(PRIMITIVES) - {"none"}
    assert len(inputs) == 14  # every edge of the cell is used by some candidate
    assert _method(candidates=60).genotype_of(7) == method.genotype_of(7)
    other_seed = _method(seed=1, candidates=60)
    assert [other_seed.genotype_of(k) for k in range(5)] != [method.genotype_of(k) for k in range(5)]


def test_one_hot_weights_are_the_discretised_supernet():
    method = _method(candidates=5)
    for k in range(5):
        weights = method.one_hot(k)
        genotype = method.genotype_of(k)
        for cell in ("normal", "reduce"):
            expected = torch.zeros(14, len(PRIMITIVES))
            for node, pairs in enumerate(getattr(genotype, cell), start=2):
                for op, source in pairs:
                    expected[edge_index(node, source), PRIMITIVES.index(op)] = 1.0
            assert torch.equal(weights[cell], expected)
        assert weights["normal"].sum() == 8 and weights["reduce"].sum() == 8


def test_candidates_train_in_turn_from_scratch_and_the_best_is_derived():
    torch.manual_seed(0)
    harness = build_harness(RandomMethod(algorithm="random", candidates=3, train_epochs=2), layers=3, channels=4,
                            batch=2, image_size=8)
    method, ctx = harness.method, harness.ctx
    assert method.arch_parameters() == [] and not method.updates_architecture(0)
    scores = [40.0, 70.0, 55.0]
    w = SearchTraining().weights
    for epoch in range(6):
        ctx.epoch = epoch
        before = harness.net.classifier.weight.detach().clone()
        method.on_epoch_start(ctx)
        assert int(method.current) == epoch // 2
        fresh = epoch % 2 == 0
        assert (not torch.equal(before, harness.net.classifier.weight)) == fresh
        assert (len(ctx.w_optimizer.state) == 0) == fresh
        # Every candidate gets the same cosine schedule over its own train_epochs.
        expected_lr = w.lr if fresh else w.lr_min + (w.lr - w.lr_min) / 2
        assert ctx.w_optimizer.param_groups[0]["lr"] == pytest.approx(expected_lr)
        assert torch.isfinite(harness.step())
        method.on_validation(epoch, scores[epoch // 2] - (0 if epoch % 2 else 30))
    assert method.scores.tolist() == scores
    assert method.derive() == method.genotype_of(1)
    assert method.epoch_metrics() == {"candidate": 2, "candidate_valid_acc": 55.0, "best_candidate": 1}


def test_state_dict_restores_candidates_and_scores():
    method = _method(candidates=4)
    method.scores[:2] = torch.tensor([10.0, 30.0])
    method.current.fill_(2)
    restored = _method(seed=5, candidates=4)
    restored.load_state_dict(method.state_dict())
    assert [restored.genotype_of(k) for k in range(4)] == [method.genotype_of(k) for k in range(4)]
    assert restored.scores[:2].tolist() == [10.0, 30.0] and math.isnan(float(restored.scores[3]))
    assert restored.derive() == method.genotype_of(1)


def test_epochs_must_equal_candidates_times_train_epochs():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["search"]["methods"]["random"] = {"algorithm": "random", "candidates": 3, "train_epochs": 2}
    with pytest.raises(ConfigError, match=r"search.methods.random: 3 candidates x 2 train_epochs = 6"):
        params_from_dict(raw)
    raw["search"]["methods"]["random"]["overrides"] = {"epochs": 6}
    assert params_from_dict(raw).search_settings("random").epochs == 6


def test_random_search_runs_end_to_end_through_the_cli(tmp_path: Path):
    methods = {"random": {"algorithm": "random", "candidates": 2, "train_epochs": 1}}
    summary, rows = search_via_cli(tmp_path, prepare_digits(tmp_path), methods, "random", batch_size=8)
    assert summary["epochs"] == 2 and summary["steps"] == 4
    assert [int(r["candidate"]) for r in rows] == [0, 1]
    scores = [float(r["candidate_valid_acc"]) for r in rows]
    assert scores == [float(r["valid_acc"]) for r in rows]
    best = int(rows[-1]["best_candidate"])
    assert scores[best] == max(scores)
    architecture = json.loads((tmp_path / "search" / "random" / "architecture.json").read_text())
    assert architecture["method_state"]["scores"] == scores
