"""The `nb201` space as a registered plugin: every method the space admits searches it, the rest are refused.

Which methods NB201 cannot host is stated here independently of the code: DATA (its multi-pair genotypes
are the DARTS cell's) and DDSAS' expanding space (it adds the DARTS operations in the paper's order).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from shipped_params import narrowed

from pipeline.config import params_from_dict
from pipeline.errors import ConfigError, GenotypeError
from pipeline.methods import create_method, list_methods, method_class
from pipeline.space.base import BoundSpace, CellSpec, genotype_from_json, get_space
from pipeline.space.nb201.arch import Nb201Arch
from pipeline.space.nb201.ops import NB201_OPS
from pipeline.stages.bench import build_harness

REPO = Path(__file__).resolve().parents[1]
# algorithm name -> its options class, as registered with the method
CONFIG_CLASSES = {algorithm: method_class(algorithm).options for algorithm in list_methods()}
REFUSED = {"data": "darts_cell"}
# What a variant needs besides its algorithm to be a valid params entry on the demo's 2-epoch search (DDSAS:
# L = 12 of the 24 non-`none` entries, a new subspace every step).
EXTRA = {"random": {"candidates": 2, "train_epochs": 1}, "ddsas": {"num_sampled": 12, "update_every": 1}}
OPTIMUM = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"

pytestmark = pytest.mark.usefixtures("one_thread")


def _params_with(variant: dict) -> dict:
    return narrowed({"on_nb201": variant})


@pytest.mark.parametrize("algorithm", list_methods())
def test_every_admitted_method_searches_nb201_and_derives_an_arch_string(algorithm: str) -> None:
    variant = {"algorithm": algorithm, "space": "nb201", **EXTRA.get(algorithm, {})}
    if algorithm in REFUSED:
        with pytest.raises(ConfigError, match=rf"cannot run on space 'nb201'.*'{REFUSED[algorithm]}'"):
            params_from_dict(_params_with(variant))
        return
    params_from_dict(_params_with(variant))
    torch.manual_seed(0)
    config = CONFIG_CLASSES[algorithm](**variant)
    harness = build_harness(config, layers=3, channels=4, batch=2, image_size=8)
    method = harness.method
    for _ in range(2):
        assert torch.isfinite(harness.step())
    assert method.mixing_probabilities()["cell"].shape == (6, 5)
    arch = method.derive()
    assert isinstance(arch, Nb201Arch)
    assert genotype_from_json(json.loads(json.dumps(arch.to_json()))) == arch
    fresh = create_method(config, method.space, method.training_settings)
    fresh.load_state_dict(method.state_dict())
    assert fresh.derive() == arch


@pytest.mark.parametrize("variant", [
    {"algorithm": "darts", "order": 2},  # DrNAS / DDSAS Table 4 list DARTS 2nd order on NB201
    {"algorithm": "sdarts", "perturbation": "adv", "attack_steps": 2},
    {"algorithm": "drnas", "partial_k": 2},  # DrNAS Table 1: K = 2
], ids=["darts_2nd", "sdarts_adv", "drnas_k2"])
def test_the_papers_nb201_variants_search_it(variant: dict) -> None:
    variant = {**variant, "space": "nb201"}
    params_from_dict(_params_with(variant))
    torch.manual_seed(0)
    harness = build_harness(CONFIG_CLASSES[variant["algorithm"]](**variant), layers=3, channels=4, batch=2,
                            image_size=8)
    for _ in range(2):
        assert torch.isfinite(harness.step())
    assert isinstance(harness.method.derive(), Nb201Arch)


def test_drnas_progressive_stages_prune_and_widen_the_nb201_supernet() -> None:
    # DrNAS Table 1 on NB201: partial channels K per stage, fewer ops per edge at each stage start.
    variant = {"algorithm": "drnas", "space": "nb201", "warmup_epochs": 0,
               "stages": [{"epochs": 1, "partial_k": 4, "keep_ops": 5}, {"epochs": 1, "partial_k": 2, "keep_ops": 3}]}
    params_from_dict(_params_with(variant))
    torch.manual_seed(0)
    harness = build_harness(CONFIG_CLASSES["drnas"](**variant), layers=3, channels=8, batch=2, image_size=8)
    conv3 = NB201_OPS.index("nor_conv_3x3")
    edge = harness.net.cells[0].edges[0]
    assert edge.ops[conv3][1].in_channels == 2  # 8 / K=4
    harness.step()
    harness.ctx.epoch = 1
    harness.method.on_epoch_start(harness.ctx)
    assert edge.ops[conv3][1].in_channels == 4 and edge.partial_k == 2  # widened to 8 / K=2
    assert harness.method.mask_cell.sum(-1).tolist() == [3] * 6
    assert torch.isfinite(harness.step())
    assert isinstance(harness.method.derive(), Nb201Arch)


def test_ddsas_expanding_space_is_refused_on_nb201() -> None:
    variant = {"algorithm": "ddsas", "space": "nb201", "num_sampled": 12, "schedule": "expand"}
    with pytest.raises(ConfigError, match=r"schedule: expand .* needs the space feature 'darts_cell'"):
        params_from_dict(_params_with(variant))


def test_a_cell_count_that_does_not_make_three_stages_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"nb201: layers = 8 must be a multiple of 3"):
        params_from_dict(_params_with({"algorithm": "darts", "space": "nb201", "overrides": {"layers": 8}}))


def test_genotype_files_dispatch_on_their_space_and_keep_the_string_beside(tmp_path: Path) -> None:
    space = get_space("nb201")
    arch = genotype_from_json({"arch": OPTIMUM, "search_space": "nb201"}, "x.json")
    assert isinstance(arch, Nb201Arch) and arch.to_string() == OPTIMUM
    space.save_genotype(tmp_path / "seed0.json", arch)
    assert (tmp_path / "seed0.txt").read_text().strip() == OPTIMUM
    assert "node 3 <- skip_connect(node 0)" in space.render(arch)


def test_discretise_puts_one_on_each_chosen_candidate_and_derive_reads_it_back() -> None:
    settings = SimpleNamespace(nodes=4, layers=3)
    bound = BoundSpace.of("nb201", settings)
    arch = Nb201Arch.from_string(OPTIMUM)
    weights = bound.space.discretise(arch, bound.cells)["cell"]
    assert weights.sum().item() == 6 and weights[3, bound.cells[0].edge_ops[3].index("skip_connect")] == 1
    assert bound.derive(bound.space.discretise(arch, bound.cells)) == arch
    with_none = Nb201Arch.from_string(OPTIMUM.replace("skip_connect~0", "none~0"))
    assert bound.derive(bound.space.discretise(with_none, bound.cells)) == with_none
    (spec,) = bound.cells
    without_none = (CellSpec(spec.name, tuple(tuple(op for op in ops if op != "none") for ops in spec.edge_ops)),)
    with pytest.raises(GenotypeError, match="node 3, input 0: 'none' is not a candidate of this search"):
        bound.space.discretise(with_none, without_none)


def test_the_space_counts_the_benchmark_network_and_refuses_what_it_lacks() -> None:
    space = get_space("nb201")
    settings = SimpleNamespace(layers=15, channels=16)
    all_conv = Nb201Arch(("nor_conv_3x3",) * 6)
    # 1.531546 MB: the largest 'params' among the benchmark's CIFAR-10 records (see test_nb201_space.py).
    sizes = space.count(all_conv, settings, num_classes=10, in_channels=3, input_size=32)
    assert sizes["params"] == pytest.approx(1.531546, abs=5e-7)
    with pytest.raises(ValueError, match="no auxiliary head"):
        space.build_network(all_conv, settings, num_classes=10, in_channels=3, auxiliary=True)
    with pytest.raises(ValueError, match="no 'imagenet' network"):
        space.build_network(all_conv, settings, num_classes=10, in_channels=3, auxiliary=False, network="imagenet")


def test_inspect_prints_the_benchmark_network_and_names_the_size_it_needs(tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    path = tmp_path / "seed0.json"
    get_space("nb201").save_genotype(path, Nb201Arch.from_string(OPTIMUM))
    assert main(["inspect", str(path), "--dataset", "cifar10", "--layers", "15", "--channels", "16"]) == 0
    out = capsys.readouterr().out
    # 1.288506 M by the hand count of tests/test_nb201_space.py (4 conv3x3 edges per cell)
    assert "params     1.29 M" in out and "node 3 <- skip_connect(node 0)" in out
    assert main(["inspect", str(path), "--dataset", "cifar10"]) == 2
    assert "nb201: layers = 20 must be a multiple of 3" in capsys.readouterr().err
