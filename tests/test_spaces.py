"""Search spaces as plugins: every (space, method) pair of the registry, per-edge candidates, the `spaces`
command, params validation of spaces, and a user's space registered through `plugins:` alone."""

from __future__ import annotations

import json
import shutil
import typing
from pathlib import Path

import pytest
import torch
import toy_space_plugin
import yaml
from search_e2e import TINY_SEARCH, prepare_digits, search_and_derive_in_fresh_processes
from shipped_params import narrowed, write_yaml

from pipeline.cli import main
from pipeline.config import SearchTraining, check_space, params_from_dict
from pipeline.errors import ConfigError, GenotypeError
from pipeline.methods import list_methods, method_class
from pipeline.space.base import ArchWeights, BoundSpace, genotype_from_json, get_space, list_spaces
from pipeline.space.genotype import CELLS, load_genotype
from pipeline.space.primitives import PRIMITIVES
from pipeline.stages.bench import build_harness
from pipeline.tables.cells import CELL_TYPES

REPO = Path(__file__).resolve().parents[1]
# algorithm name -> its options class, as registered with the method
CONFIG_CLASSES = {algorithm: method_class(algorithm).options for algorithm in list_methods()}
# Options that fit the tiny 2-node cells (5 edges) these tests search.
TINY_OPTIONS: dict[str, dict[str, typing.Any]] = {"ddsas": {"num_sampled": 6}, "pc_darts": {"partial_k": 2},
                                                  "random": {"candidates": 2}}
TRAINING = SearchTraining(layers=3, channels=4, batch_size=2, nodes=2)

pytestmark = pytest.mark.usefixtures("one_thread")


def _config(space: str, algorithm: str):
    return CONFIG_CLASSES[algorithm](algorithm=algorithm, space=space, **TINY_OPTIONS.get(algorithm, {}))


@pytest.mark.parametrize("space", list_spaces())
@pytest.mark.parametrize("algorithm", list_methods())
def test_every_space_and_method_pair_searches_and_derives_a_valid_genotype(space, algorithm):
    """Registry-driven: a space or method registered later is covered without editing this test."""
    config = _config(space, algorithm)
    try:
        check_space("v", config, TRAINING)
    except ValueError as exc:  # a refusal must name both, and come from the space or the method's needs
        assert (f"method '{algorithm}' cannot run on space '{space}'" in str(exc)
                or f"space '{space}' with these search settings" in str(exc))  # S1 exists for 4 nodes only
        return
    torch.manual_seed(0)
    harness = build_harness(config, layers=3, channels=4, batch=2, image_size=8, nodes=2)
    for _ in range(2):
        assert torch.isfinite(harness.step())
    bound = harness.method.space
    weights = harness.method.mixing_probabilities()
    assert {name: tuple(weights[name].shape) for name in weights} == {c.name: c.shape for c in bound.cells}
    genotype = harness.method.derive()
    assert genotype.search_space == space
    as_json = json.loads(json.dumps(get_space(space).genotype_to_json(genotype)))
    assert genotype_from_json(as_json, "round trip") == genotype


def test_the_supernet_builds_each_edge_from_its_own_candidates():
    """S1's shape: the toy space offers a different pair on every edge (its definition is the oracle)."""
    space = BoundSpace.of("toy_pairs", TRAINING)
    net = space.space.build_supernet(TRAINING, num_classes=3, in_channels=1, cells=space.cells)
    for cell in net.cells:
        assert [edge.primitives for edge in cell.edges] == [toy_space_plugin.edge_pair(e) for e in range(5)]
    with pytest.raises(ValueError, match=r"candidate count"):
        type(space.cells[0])("normal", (("a", "b"), ("c",)))


def test_top2_picks_each_edges_own_candidate_and_validation_checks_the_edge():
    space = BoundSpace.of("toy_pairs", TRAINING)
    # Column 1 wins on every edge; node 2 prefers input 1, node 3 inputs 2 and 0 (hand-set scores).
    scores = torch.tensor([[0.1, 0.5], [0.2, 0.9], [0.0, 0.7], [0.3, 0.4], [0.1, 0.8]])
    genotype = space.derive(ArchWeights({"normal": scores, "reduce": scores}))
    pair = toy_space_plugin.edge_pair
    # Edges 0, 1 feed node 2 from inputs 0, 1; edges 2, 3, 4 feed node 3 from inputs 0, 1, 2.
    expected = (((pair(1)[1], 1), (pair(0)[1], 0)), ((pair(4)[1], 2), (pair(2)[1], 0)))
    assert genotype.normal == genotype.reduce == expected
    bad = get_space("toy_pairs").genotype_to_json(genotype)
    bad["reduce"][0][0] = ["sep_conv_5x5", 0]  # edge 0 offers max_pool_3x3 and avg_pool_3x3 only
    with pytest.raises(GenotypeError, match=r"reduce cell, node 2, pair 0: unknown operation 'sep_conv_5x5' for "
                                            r"search space 'toy_pairs' on the edge from node 0; expected one of "
                                            r"max_pool_3x3, avg_pool_3x3"):
        genotype_from_json(bad, "g.json")


def test_spaces_show_json_lists_every_edges_candidates(capsys):
    assert main(["spaces", "show", "darts", "--json", "--params", str(REPO / "params.yaml")]) == 0
    shown = json.loads(capsys.readouterr().out)
    nodes = yaml.safe_load((REPO / "params.yaml").read_text())["search"]["nodes"]
    edges = sum(range(2, nodes + 2))  # node k + 2 reads k + 2 earlier nodes
    assert [c["name"] for c in shown["cells"]] == ["normal", "reduce"]
    assert all(c["edges"] == [list(PRIMITIVES)] * edges for c in shown["cells"])
    assert main(["spaces", "--params", str(REPO / "params.yaml")]) == 0
    assert {line.split()[0] for line in capsys.readouterr().out.splitlines()} == set(list_spaces())


def test_params_name_the_variant_and_space_when_a_space_does_not_fit():
    raw = narrowed({"v": {"algorithm": "darts", "space": "nope"}})
    with pytest.raises(ConfigError, match=r"search.methods.v.space: unknown search space 'nope'; registered: "):
        params_from_dict(raw)
    raw = narrowed({"v": {"algorithm": "random", "space": "toy_pairs", "candidates": 50}})
    raw["search"]["epochs"] = 50
    with pytest.raises(ConfigError, match=r"search.methods.v: method 'random' cannot run on space 'toy_pairs': the "
                                          r"toy space refuses random search"):
        params_from_dict(raw)
    raw = narrowed({"v": {"algorithm": "darts", "primitives": "darts_no_none"}})
    with pytest.raises(ConfigError, match=r"primitives: this key was renamed to space .*space: darts_no_none"):
        params_from_dict(raw)


def test_the_genotype_cell_keys_agree_with_the_torch_free_tables():
    assert CELL_TYPES == CELLS


def test_a_space_registered_by_a_plugin_module_runs_search_and_derive_with_no_other_edit(tmp_path: Path):
    """The module is named only under `plugins:`; fresh interpreters (as Snakemake and DVC start) import it."""
    prepared = prepare_digits(tmp_path)
    shutil.copy(Path(toy_space_plugin.__file__), tmp_path / "my_lab_space.py")
    raw = narrowed({"darts_toy": {"algorithm": "darts", "space": "toy_pairs"}})
    raw["plugins"] = ["my_lab_space"]
    raw["search"].update(TINY_SEARCH, epochs=1)
    params = write_yaml(tmp_path / "params.yaml", raw)
    genotype_file = search_and_derive_in_fresh_processes(tmp_path, params, prepared, "darts_toy")
    text = json.loads(genotype_file.read_text())
    assert text["search_space"] == "toy_pairs"
    genotype = load_genotype(genotype_file)  # this process has the module under its test name; same space
    for node, pairs in enumerate(genotype.normal, start=2):
        for op, source in pairs:
            edge = sum(range(2, node)) + source
            assert op in toy_space_plugin.edge_pair(edge)
