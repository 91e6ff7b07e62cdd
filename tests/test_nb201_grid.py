"""The NAS-Bench-201 sub-grid's params: the space's retrain protocol and where its variants read their data.

The expected settings are typed here from NAS-Bench-201 (Dong & Yang, ICLR 2020, Sec. 2.3: 200 epochs,
Nesterov SGD momentum 0.9, lr 0.1 cosine to 0, weight decay 5e-4, batch 256, N = 5, C = 16, no auxiliary
head, cutout or drop path), not read from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_params, params_from_dict
from pipeline.space.base import data_dir_of
from tests.shipped_params import REPO, deep_update, narrowed

NB201_PROTOCOL = {"epochs": 200, "batch_size": 256, "layers": 15, "channels": 16, "lr": 0.1, "lr_min": 0.0,
                  "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "auxiliary_weight": 0.0, "cutout": 0,
                  "drop_path": 0.0}
ON_NB201 = {"algorithm": "darts", "order": 1, "space": "nb201"}


def _with_nb201(edits: dict | None = None) -> dict:
    raw = narrowed({"darts_1st": {"algorithm": "darts", "order": 1}, "on_nb201": ON_NB201})
    raw["grid"]["methods"] = ["darts_1st"]
    raw["grid"]["nb201"] = {"datasets": ["digits"], "methods": ["on_nb201"]}
    return deep_update(raw, edits or {})


def test_the_paper_config_retrains_nb201_cells_with_the_benchmarks_protocol() -> None:
    paper = load_params(REPO / "configs" / "paper.yaml")
    for dataset in paper.grid.nb201.datasets or ["cifar10"]:
        for method in paper.grid.nb201.methods:
            settings = paper.retrain_settings(method, dataset).model_dump()
            assert {key: settings[key] for key in NB201_PROTOCOL} == NB201_PROTOCOL, (method, dataset)
    # The CNN variants keep DARTS' protocol (600 epochs, auxiliary head).
    assert (paper.retrain_settings("darts_1st", "cifar10").epochs,
            paper.retrain_settings("darts_1st", "cifar10").auxiliary_weight) == (600, 0.4)


def test_space_overrides_come_first_then_the_datasets_then_the_variants() -> None:
    params = params_from_dict(_with_nb201({"retrain": {
        "space_overrides": {"nb201": {"epochs": 7, "layers": 6, "channels": 4, "lr": 0.1}},
        "dataset_overrides": {"digits": {"layers": 9, "channels": 5}},
        "method_overrides": {"on_nb201": {"channels": 6}},
    }}))
    on_digits = params.retrain_settings("on_nb201", "digits")
    # epochs and lr from the space, layers from the dataset (over the space's), channels from the variant.
    assert (on_digits.epochs, on_digits.lr, on_digits.layers, on_digits.channels) == (7, 0.1, 9, 6)
    elsewhere = params.retrain_settings("on_nb201", "cifar10")
    assert (elsewhere.layers, elsewhere.channels) == (6, 6)
    cnn = params.retrain_settings("darts_1st", "cifar10")
    raw_retrain = _with_nb201()["retrain"]
    assert (cnn.epochs, cnn.layers, cnn.lr) == (raw_retrain["epochs"], raw_retrain["layers"], raw_retrain["lr"])
    assert cnn.space_overrides == {} and on_digits.space_overrides == {}


@pytest.mark.parametrize(("overrides", "message"), [
    ({"nb20": {}}, r"retrain.space_overrides.nb20: unknown search space 'nb20'"),
    ({"nb201": {"epoch": 3}}, r"retrain.space_overrides.nb201.epoch: unknown key \(did you mean 'epochs'\?\)"),
    ({"nb201": {"drop_path": 1.5}}, r"retrain.space_overrides.nb201.drop_path"),
])
def test_bad_space_overrides_are_refused_naming_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        params_from_dict(_with_nb201({"retrain": {"space_overrides": overrides}}))


def test_an_nb201_variant_reads_the_sub_grids_prepared_data_by_default() -> None:
    params = params_from_dict(_with_nb201())
    assert data_dir_of(params, "on_nb201", "digits") == Path("results/data/nb201/digits")
    assert data_dir_of(params, "darts_1st", "digits") == Path("results/data/digits")


def test_the_paper_configs_nb201_grid_is_the_papers() -> None:
    """Values typed from DrNAS Sec. 4.3 and its 201-space/train_search_progressive.py (100 epochs as two
    stages of 50, K 4 -> 2, 5 -> 3 ops kept, architecture steps after 10 epochs, batch 64, lr 0.025 -> 0.001,
    arch Adam 3e-4, anchor 1e-3), DDSAS Sec. 4.5 (L = 12, M = 30, the rest as DARTS) and DrNAS Tables 1
    (K = 1, 2, 4, 8, progressive) and 5 (lambda 5e-4 .. 1)."""
    paper = load_params(REPO / "configs" / "paper.yaml")
    assert paper.grid.nb201.datasets == ["cifar10", "cifar100", "imagenet16_120"]
    methods = paper.grid.nb201.methods
    for method in methods:  # the benchmark's supernet: 3 stages of N = 5 cells at C = 16
        settings = paper.search_settings(method)
        assert (settings.layers, settings.channels) == (15, 16), method
    drnas = paper.method("drnas_nb201")
    settings = paper.search_settings("drnas_nb201")
    assert [(stage.epochs, stage.partial_k, stage.keep_ops) for stage in drnas.stages] == [(50, 4, 5), (50, 2, 3)]
    assert (settings.epochs, settings.batch_size, settings.weights.lr, settings.weights.lr_min, settings.arch.lr) == (
        100, 64, 0.025, 0.001, 3e-4)
    assert (drnas.warmup_epochs, drnas.reg_lambda) == (10, 1e-3)
    ddsas = paper.method("ddsas_nb201")
    assert (ddsas.num_sampled, ddsas.update_every, paper.search_settings("ddsas_nb201").epochs) == (12, 30, 50)
    gdas = paper.method("gdas_nb201")
    assert (gdas.tau_start, gdas.tau_end) == (10.0, 0.1)
    variants = {name: paper.method(name) for name in methods if paper.method(name).algorithm == "drnas"}
    at_default = [spec for spec in variants.values() if spec.reg_lambda == 1e-3]
    assert {"progressive" if spec.stages else spec.partial_k for spec in at_default} == {1, 2, 4, 8, "progressive"}
    assert {spec.reg_lambda for spec in variants.values()} == {5e-4, 1e-3, 1.0}
    assert {paper.method(name).algorithm for name in methods} == {"darts", "gdas", "sdarts", "pc_darts", "random",
                                                                  "ddsas", "drnas"}
