"""S1-S4 and the R-DARTS baselines of SDARTS Table 4: the noise op, ScheduledDropPath, DARTS-ES.

Oracles: the definitions in the R-DARTS paper and code (noise ~ N(0, 1); drop probability p * e / (E - 1)),
and stopping decisions worked out by hand from the rule of Zela et al. (Section 4.3).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from search_e2e import prepare_digits, search_via_cli

from pipeline.cli import main
from pipeline.config import SearchTraining, load_params, params_from_dict
from pipeline.errors import ConfigError
from pipeline.methods.darts import DartsMethod
from pipeline.search import loop
from pipeline.search.drop_path import search_drop_path_prob
from pipeline.search.early_stop import eigenvalue_stop
from pipeline.space.base import get_space
from pipeline.space.primitives import PARAMETER_FREE, build_op
from pipeline.space.supernet import MixedOp
from pipeline.stages.bench import build_harness

# Zela et al.'s spaces retyped from automl/RobustDARTS src/spaces.py, node by node (edges from c_{k-2},
# c_{k-1}, then the earlier nodes), in shorthand; the module under test transcribes the same source.
_SHORT = {"skip": "skip_connect", "sep3": "sep_conv_3x3", "dil3": "dil_conv_3x3", "dil5": "dil_conv_5x5",
          "max": "max_pool_3x3", "avg": "avg_pool_3x3", "none": "none", "noise": "noise"}
_S1_BY_NODE = {
    "normal": ["skip/dil3 skip/dil5",
               "skip/dil5 skip/sep3 skip/dil3",
               "max/skip skip/sep3 skip/sep3 skip/dil3",
               "skip/sep3 max/skip skip/dil3 dil3/dil5 dil3/dil5"],
    "reduce": ["max/avg max/dil3",
               "max/avg max/avg skip/dil5",
               "max/avg max/sep3 skip/dil3 skip/dil5",
               "max/avg max/avg skip/dil5 skip/dil5 skip/dil5"],
}
_UNIFORM = {"s2": "skip/sep3", "s3": "none/skip/sep3", "s4": "noise/sep3"}


def _expand(pairs: str) -> list[list[str]]:
    return [[_SHORT[op] for op in pair.split("/")] for pair in pairs.split()]


def _published(space: str) -> dict[str, list[list[str]]]:
    if space == "s1":
        return {cell: [ops for node in nodes for ops in _expand(node)] for cell, nodes in _S1_BY_NODE.items()}
    return {cell: _expand(_UNIFORM[space]) * 14 for cell in ("normal", "reduce")}


@pytest.mark.parametrize("space", ["s1", "s2", "s3", "s4"])
def test_spaces_show_json_lists_the_published_candidates_of_every_edge(space, capsys):
    params = Path(__file__).resolve().parents[1] / "params.yaml"  # the DARTS cell: search.nodes 4
    assert main(["spaces", "show", space, "--json", "--params", str(params)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {cell["name"]: cell["edges"] for cell in shown["cells"]} == _published(space)


def test_s1_supernet_searches_its_own_pair_on_every_edge_and_derives_a_valid_genotype(one_thread):
    config = DartsMethod(algorithm="darts", space="s1")
    harness = build_harness(config, layers=3, channels=4, batch=2, image_size=8, nodes=4)
    for _ in range(2):
        assert torch.isfinite(harness.step())
    for cell in harness.net.cells:
        kind = "reduce" if cell.reduction else "normal"
        assert [list(edge.primitives) for edge in cell.edges] == _published("s1")[kind]
    genotype = harness.method.derive()
    for kind in ("normal", "reduce"):
        offered = _published("s1")[kind]
        for node, pairs in enumerate(getattr(genotype, kind), start=2):
            for op, source in pairs:
                assert op in offered[sum(range(2, node)) + source]  # edge (source -> node)


def test_s1_refuses_a_cell_its_pairs_do_not_cover():
    with pytest.raises(ValueError, match=r"s1.*4 intermediate nodes.*search\.nodes is 2"):
        get_space("s1").cells(SearchTraining(nodes=2))


@pytest.mark.parametrize("training", [True, False])
def test_noise_op_outputs_standard_normal_noise_whatever_the_input(training):
    torch.manual_seed(0)
    op = build_op("noise", 8, 1, affine=False, pool_bn=True).train(training)
    x = torch.full((4, 8, 16, 16), 7.0, requires_grad=True)  # 8192 outputs: std error of the mean ~0.011
    out = op(x)
    assert out.shape == x.shape
    assert abs(out.mean().item()) < 0.05
    assert abs(out.std().item() - 1.0) < 0.05
    assert not out.requires_grad  # no path back to the input: the search cannot learn through it
    assert not torch.equal(op(x), out)  # fresh noise on every forward, in evaluation too


def test_strided_noise_op_halves_the_resolution_and_has_no_weights():
    op = build_op("noise", 8, 2, affine=False, pool_bn=True)
    assert op(torch.zeros(2, 8, 8, 8)).shape == (2, 8, 4, 4)
    assert not list(op.parameters())
    assert "noise" in PARAMETER_FREE  # SDARTS Table 5 counts it with the parameter-free ops


def test_search_drop_path_probability_ramps_from_zero_to_the_final_value():
    # R-DARTS train_search.py: drop_path_prob * epoch / (epochs - 1).
    assert [search_drop_path_prob(e, 5, 0.6) for e in range(5)] == pytest.approx([0.0, 0.15, 0.3, 0.45, 0.6])
    assert search_drop_path_prob(0, 1, 0.6) == 0.0


def test_mixed_op_drops_whole_samples_in_training_only():
    torch.manual_seed(0)
    edge = MixedOp(4, 1, ("skip_connect",))
    edge.drop_prob = 0.5
    x = torch.randn(64, 4, 3, 3)
    weights = torch.ones(1)
    out = edge(x, weights, [0])
    dropped = out.flatten(1).abs().sum(1) == 0
    assert 0 < dropped.sum() < 64
    torch.testing.assert_close(out[~dropped], 2 * x[~dropped])  # survivors scaled by 1 / keep = 2
    torch.testing.assert_close(edge.eval()(x, weights, [0]), x)


# Epochs 0-9 flat, then the curvature grows: lambda = 1 x 10, 2, 3, 4, 5.
_EIGENVALUES = [1.0] * 10 + [2.0, 3.0, 4.0, 5.0]


def _first_stop(eigenvalues, **rule):
    for last in range(len(eigenvalues)):
        stop = eigenvalue_stop(eigenvalues[: last + 1], **rule)
        if stop is not None:
            return stop
    return None


def test_darts_es_stops_when_the_averaged_eigenvalue_grows_past_the_ratio():
    # Paper: w = 5, k = 5, T = 0.75. After epoch e the newest centred average is that of e - 2.
    # e = 10: avg(6..10) = 6/5 = 1.2 vs avg(1..5) = 1 -> 1/1.2 = 0.83, go on.
    # e = 11: avg(7..11) = 8/5 = 1.6 vs avg(2..6) = 1 -> 0.625 < 0.75: stop, return epoch 9 - 5 = 4.
    stop = _first_stop(_EIGENVALUES, window=5, lag=5, threshold=0.75)
    assert (stop.stopped_after_epoch, stop.returned_epoch) == (11, 4)
    assert stop.ratio == pytest.approx(1 / 1.6)


def test_darts_es_returns_no_epoch_before_its_start_epoch():
    # e = 11 would return epoch 4; e = 12: avg(8..12) = 11/5 vs avg(3..7) = 1 -> 0.45: return epoch 5.
    stop = _first_stop(_EIGENVALUES, window=5, lag=5, threshold=0.75, start_epoch=5)
    assert (stop.stopped_after_epoch, stop.returned_epoch) == (12, 5)


def test_darts_es_never_stops_on_a_flat_or_shrinking_curvature():
    assert _first_stop([3.0, 2.0, 2.0, 1.0, 1.0, 1.0, 0.5, 0.5], window=3, lag=2, threshold=0.75) is None


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, one_thread):
    return prepare_digits(tmp_path_factory.mktemp("robust"))


def test_early_stopped_search_ends_and_hands_over_the_returned_epochs_genotype(prepared, tmp_path, monkeypatch):
    # Scripted eigenvalues 1, 1, 2, ...: with w = 1, k = 1 the search stops after epoch 2 (1/2 < 0.75) and
    # returns epoch 1, although 5 epochs were asked for.
    script = iter([1.0, 1.0, 2.0, 4.0, 8.0])
    monkeypatch.setattr(loop, "dominant_hessian_eigenvalue", lambda *args, **kwargs: next(script))
    methods = {"darts_es": {"algorithm": "darts",
                            "overrides": {"early_stop": {"window": 1, "lag": 1}, "drop_path": 0.3}}}
    summary, rows = search_via_cli(tmp_path, prepared, methods, "darts_es", epochs=5)
    assert summary["early_stop"] == {"stopped_after_epoch": 2, "returned_epoch": 1, "ratio": 0.5}
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    records = (tmp_path / "search" / "darts_es" / "arch_weights.jsonl").read_text().splitlines()
    assert summary["genotype"] == json.loads(records[1])["genotype"]

    # The selection's short retrain of that architecture, on the search's halves of the training split.
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["select"] = {"epochs": 1, "max_steps_per_epoch": 2}
    raw["retrain"].update(layers=3, batch_size=8, auxiliary_weight=0.0)
    params.write_text(yaml.safe_dump(raw))
    out = tmp_path / "select"
    assert main(["derive", "--params", str(params), "--search-dir", str(tmp_path / "search" / "darts_es"),
                 "--out", str(tmp_path / "g.json")]) == 0
    assert main(["select", "--params", str(params), "--genotype", str(tmp_path / "g.json"), "--dataset", "digits",
                 "--seed", "0", "--prepared", str(prepared), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["valid_acc"] <= 100.0 and metrics["valid_error"] == pytest.approx(100 - metrics["valid_acc"])


ROBUSTNESS = load_params(Path(__file__).resolve().parents[1] / "configs" / "robustness.yaml")


def test_robustness_config_follows_the_papers_protocol():
    # SDARTS section 5.5: CIFAR-10, CIFAR-100, SVHN; 20 cells / C=36 on CIFAR-10, 8 / 16 on the others;
    # 4 independent searches, the architecture picked after a short retrain.
    assert set(ROBUSTNESS.grid.datasets) == {"cifar10", "cifar100", "svhn"}
    assert len(ROBUSTNESS.grid.seeds) == 4 and ROBUSTNESS.grid.select
    sizes = {d: ROBUSTNESS.retrain_settings("darts_2nd_s1", d) for d in ROBUSTNESS.grid.datasets}
    assert {d: (s.layers, s.channels) for d, s in sizes.items()} == {
        "cifar10": (20, 36), "cifar100": (8, 16), "svhn": (8, 16)}
    spaces = {ROBUSTNESS.method(m).space for m in ROBUSTNESS.grid.methods}
    assert spaces == {"s1", "s2", "s3", "s4"}


@pytest.mark.parametrize("space", ["s1", "s2", "s3", "s4"])
def test_robustness_baselines_use_zela_et_al_settings(space):
    def variants(prefix):
        return [m for m in ROBUSTNESS.grid.methods if m.startswith(f"{prefix}_{space}")]

    drop = sorted(ROBUSTNESS.search_settings(m).drop_path for m in variants("r_darts_dp"))
    assert drop == pytest.approx([0.0, 0.2, 0.4, 0.6])
    decay = sorted(ROBUSTNESS.search_settings(m).weights.weight_decay for m in variants("r_darts_l2"))
    assert decay == pytest.approx([3e-4, 9e-4, 27e-4, 81e-4])
    (es,) = variants("darts_es")
    rule = ROBUSTNESS.search_settings(es).early_stop
    assert (rule.window, rule.lag, rule.threshold) == (5, 5, 0.75)


def test_retrain_dataset_overrides_apply_before_the_variants_own():
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["retrain"]["dataset_overrides"] = {"svhn": {"layers": 8, "channels": 16}}
    raw["retrain"]["method_overrides"] = {"darts_1st": {"channels": 24}}
    params = params_from_dict(raw)
    assert (params.retrain_settings("darts_1st", "svhn").layers, params.retrain_settings("darts_1st", "svhn").channels
            ) == (8, 24)
    assert params.retrain_settings("darts_2nd", "svhn").channels == 16
    assert params.retrain_settings("darts_2nd", "digits").layers == raw["retrain"]["layers"]


def test_drop_path_is_refused_at_validation_on_a_space_whose_supernet_has_none(monkeypatch):
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["search"]["methods"]["darts_1st_s4"]["overrides"] = {"drop_path": 0.2}
    params_from_dict(raw)
    monkeypatch.setattr(type(get_space("s4")), "features", frozenset())
    with pytest.raises(ConfigError, match=r"search.methods.darts_1st_s4: search.drop_path is 0.2, but the supernet "
                                          r"of space 's4' has no drop path"):
        params_from_dict(raw)
