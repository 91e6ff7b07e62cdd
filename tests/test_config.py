"""params.yaml validation: good files load, bad ones fail at load naming the key path and expectation."""

from pathlib import Path

import pytest
import yaml

from pipeline import cli
from pipeline.config import explain, load_params, params_from_dict
from pipeline.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _demo() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        params_from_dict(raw, source="params.yaml")
    return str(info.value)


@pytest.mark.parametrize("name", ["params.yaml", "configs/paper.yaml"])
def test_shipped_configs_load(name):
    params = load_params(REPO / name)
    for method in params.grid.methods:
        assert params.search_settings(method).epochs > 0


def test_unknown_key_suggests_the_closest_name():
    raw = _demo()
    raw["search"]["epoch"] = 3
    message = _error(raw)
    assert "search.epoch: unknown key" in message and "did you mean 'epochs'" in message


def test_unknown_key_inside_a_method_variant_names_its_path():
    raw = _demo()
    raw["search"]["methods"]["darts_2nd"]["ordr"] = 2
    message = _error(raw)
    assert "search.methods.darts_2nd" in message and "did you mean 'order'" in message


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("search", "epochs"), -1, "search.epochs: Input should be greater than 0"),
        (("retrain", "epochs"), 0, "retrain.epochs: Input should be greater than 0"),
        (("search", "batch_size"), "big", "search.batch_size: Input should be a valid integer"),
        (("grid", "seeds"), [0, 1.5], "grid.seeds.1: Input should be a valid integer"),
        (("grid", "datasets"), ["cifar11"], "did you mean 'cifar10'"),
        (("grid", "methods"), ["darts_3rd"], "grid.methods: 'darts_3rd' is not defined under search.methods"),
        (("runtime", "device"), "tpu", "runtime.device: String should match pattern"),
    ],
)
def test_impossible_values_name_key_and_expectation(path, value, expected):
    raw = _demo()
    raw[path[0]][path[1]] = value
    assert expected in _error(raw)


def test_unknown_algorithm_lists_known_ones():
    raw = _demo()
    raw["search"]["methods"]["darts_1st"] = {"algorithm": "dartz"}
    message = _error(raw)
    assert "unknown algorithm 'dartz'" in message and "did you mean 'darts'" in message


def test_ddsas_subspace_size_outside_range_is_rejected():
    raw = _demo()
    raw["search"]["methods"]["ddsas_bad"] = {"algorithm": "ddsas", "num_sampled": 14}
    assert "search.methods.ddsas_bad.num_sampled: L = 14 is outside [15, 112]" in _error(raw)


def test_partial_channel_k_must_divide_channels():
    raw = _demo()
    raw["search"]["channels"] = 8
    raw["search"]["methods"]["pc"] = {"algorithm": "pc_darts", "partial_k": 3}
    assert "search.methods.pc.partial_k: K = 3 does not divide search.channels = 8" in _error(raw)


def test_data_needs_at_least_one_sample():
    raw = _demo()
    raw["search"]["methods"]["data_m0"] = {"algorithm": "data", "samples": 0}
    assert "search.methods.data_m0.samples: Input should be greater than or equal to 1" in _error(raw)


def test_method_overrides_are_validated_against_search_keys():
    raw = _demo()
    raw["search"]["methods"]["darts_1st"]["overrides"] = {"layerz": 3}
    assert "search.methods.darts_1st.overrides.layerz: unknown key" in _error(raw)


def test_overrides_apply_to_one_variant_only():
    raw = _demo()
    raw["search"]["methods"]["darts_1st"]["overrides"] = {"epochs": 7, "weights": {"lr": 0.1}}
    params = params_from_dict(raw)
    assert params.search_settings("darts_1st").epochs == 7
    assert params.search_settings("darts_1st").weights.lr == 0.1
    assert params.search_settings("darts_1st").weights.momentum == params.search.weights.momentum
    assert params.search_settings("darts_2nd").epochs == params.search.epochs


def test_transfer_overrides_apply_to_one_variant_and_name_bad_keys():
    raw = _demo()
    raw["transfer"]["method_overrides"] = {"darts_1st": {"lr": 0.5, "lr_schedule": "poly", "batch_size": 64}}
    params = params_from_dict(raw)
    assert (params.transfer_settings("darts_1st").lr, params.transfer_settings("darts_1st").batch_size) == (0.5, 64)
    assert params.transfer_settings("darts_2nd").lr == raw["transfer"]["lr"]
    raw["transfer"]["method_overrides"] = {"darts_1st": {"warmup_epoch": 5}}
    assert "transfer.method_overrides.darts_1st.warmup_epoch: unknown key" in _error(raw)
    raw["transfer"]["method_overrides"] = {"darts_3rd": {"lr": 0.5}}
    assert "transfer.method_overrides: 'darts_3rd' is not a method under search.methods" in _error(raw)


def test_the_released_linear_schedule_needs_more_epochs_than_its_tail():
    raw = _demo()
    raw["transfer"]["method_overrides"] = {"darts_1st": {"lr_schedule": "linear", "epochs": 5}}
    assert "lr_schedule linear needs epochs > 5" in _error(raw)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_every_key_is_explained():
    lines = explain()
    assert any(line.startswith("search.epochs = 50: ") for line in lines)
    assert all(not line.endswith(": None") for line in lines)


def test_more_threads_than_a_training_job_reserves_is_refused_naming_both_keys():
    raw = _demo()
    raw["runtime"]["threads"] = 2
    raw["resources"]["retrain"]["cpus_per_task"] = 1
    raw["resources"]["search"]["cpus_per_task"] = raw["resources"]["transfer"]["cpus_per_task"] = 2
    assert "runtime.threads 2 exceeds resources.retrain.cpus_per_task 1" in _error(raw)


@pytest.mark.parametrize("params_file", ["params.yaml", "configs/paper.yaml"])
def test_config_counts_the_searches_of_every_grid(params_file: str, capsys):
    """The summary's total against a count written out from the YAML: dataset x variant x seed of the main
    grid and of each sub-grid, plus one per directly-on-ImageNet variant and seed."""
    path = REPO / params_file
    grid = yaml.safe_load(path.read_text())["grid"]
    seeds = len(grid["seeds"])
    expected = (len(grid["datasets"]) * len(grid["methods"]) + len(grid.get("imagenet_methods", []))
                + sum(len(grid.get(sub, {}).get("datasets", [])) * len(grid.get(sub, {}).get("methods", []))
                      for sub in ("nb201", "rnn"))) * seeds
    assert cli.main(["config", "--params", str(path)]) == 0
    assert f": valid; {expected} searches over seeds" in capsys.readouterr().out
