"""Genotype derivation, JSON contract and validation messages."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from pipeline.errors import GenotypeError
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import (
    Genotype,
    edge_index,
    genotype_from_dict,
    genotype_to_dict,
    load_genotype,
    num_edges,
    param_free_ratio,
    render_genotype,
    save_genotype,
)
from pipeline.space.genotype import derive_top2 as derive_per_edge
from pipeline.space.primitives import PRIMITIVES, PRIMITIVES_NO_NONE


def derive_top2(normal, reduce, primitives, edge_scores=None):
    """The per-edge rule with `primitives` on every edge of both cells, in the space they make."""
    space = "darts" if "none" in primitives else "darts_no_none"
    edge_ops = {cell: (tuple(primitives),) * 14 for cell in ("normal", "reduce")}
    scores = None if edge_scores is None else dict(zip(("normal", "reduce"), edge_scores, strict=True))
    return derive_per_edge({"normal": normal, "reduce": reduce}, edge_ops, space, edge_scores=scores)


def _weights(primitives, entries):
    """Weights of 0.01 everywhere except `entries`: {(node, input, op): value}."""
    w = np.full((num_edges(4), len(primitives)), 0.01)
    for (node, source, op), value in entries.items():
        w[edge_index(node, source), primitives.index(op)] = value
    return w


def test_edge_order_matches_architecture_doc():
    assert num_edges(4) == 14
    assert [edge_index(2, 0), edge_index(2, 1), edge_index(3, 0), edge_index(4, 0), edge_index(5, 4)] == [
        0, 1, 2, 5, 13]
    with pytest.raises(ValueError):
        edge_index(3, 3)


def test_derive_top2_picks_strongest_edges_and_ignores_none():
    entries = {
        (2, 0, "sep_conv_3x3"): 0.5, (2, 1, "skip_connect"): 0.4,
        (3, 0, "none"): 0.99, (3, 1, "dil_conv_5x5"): 0.3, (3, 2, "max_pool_3x3"): 0.6,
        (4, 3, "sep_conv_5x5"): 0.7, (4, 0, "avg_pool_3x3"): 0.2,
        (5, 4, "dil_conv_3x3"): 0.8, (5, 1, "sep_conv_3x3"): 0.9,
    }
    w = _weights(PRIMITIVES, entries)
    g = derive_top2(torch.tensor(w, requires_grad=True), w, PRIMITIVES)
    expected = (
        (("sep_conv_3x3", 0), ("skip_connect", 1)),
        (("max_pool_3x3", 2), ("dil_conv_5x5", 1)),
        (("sep_conv_5x5", 3), ("avg_pool_3x3", 0)),
        (("sep_conv_3x3", 1), ("dil_conv_3x3", 4)),
    )
    assert g.normal == expected and g.reduce == expected
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    assert g.search_space == "darts"


def test_derive_top2_in_the_space_without_none():
    entries = {(2, 0, "max_pool_3x3"): 0.9, (2, 1, "sep_conv_3x3"): 0.5,
               (3, 2, "skip_connect"): 0.7, (3, 0, "dil_conv_3x3"): 0.6,
               (4, 1, "avg_pool_3x3"): 0.7, (4, 2, "sep_conv_5x5"): 0.6,
               (5, 0, "dil_conv_5x5"): 0.7, (5, 3, "skip_connect"): 0.6}
    g = derive_top2(_weights(PRIMITIVES_NO_NONE, entries), _weights(PRIMITIVES_NO_NONE, entries),
                    PRIMITIVES_NO_NONE)
    assert g.search_space == "darts_no_none"
    assert g.normal[0] == (("max_pool_3x3", 0), ("sep_conv_3x3", 1))
    assert g.normal[3] == (("dil_conv_5x5", 0), ("skip_connect", 3))


def test_edge_scores_reweight_the_ranking():
    entries = {(2, 0, "sep_conv_3x3"): 0.5, (2, 1, "skip_connect"): 0.4,
               (3, 0, "sep_conv_3x3"): 0.5, (3, 1, "sep_conv_3x3"): 0.4, (3, 2, "sep_conv_5x5"): 0.3}
    w = _weights(PRIMITIVES, entries)
    scores = np.ones(14)
    scores[edge_index(3, 0)] = 0.1
    g = derive_top2(w, w, PRIMITIVES, edge_scores=(scores, np.ones(14)))
    assert g.normal[1] == (("sep_conv_3x3", 1), ("sep_conv_5x5", 2))
    assert g.reduce[1] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))


def test_derive_top2_rejects_wrong_shape_and_nan():
    with pytest.raises(GenotypeError, match=r"normal weights: shape \(14, 7\), expected \(14, 8\)"):
        derive_top2(np.ones((14, 7)), np.ones((14, 8)), PRIMITIVES)
    bad = np.ones((14, 8))
    bad[3, 2] = np.nan
    with pytest.raises(GenotypeError, match="reduce weights: contains NaN"):
        derive_top2(np.ones((14, 8)), bad, PRIMITIVES)


def test_json_round_trip(tmp_path):
    g = dataclasses.replace(GENOTYPE_DARTS_V2, provenance={"method": "darts_2nd", "seed": 0})
    path = tmp_path / "g" / "seed0.json"
    save_genotype(path, g)
    text = path.read_text()
    assert '    [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]],\n' in text  # one node per line
    obj = json.loads(text)
    assert obj["normal"][0] == [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]
    assert sorted(obj) == ["normal", "normal_concat", "provenance", "reduce", "reduce_concat", "search_space"]
    assert load_genotype(path) == g
    assert genotype_from_dict(genotype_to_dict(g)) == g


def test_multi_pair_nodes_and_shared_inputs_are_valid():
    obj = genotype_to_dict(GENOTYPE_DARTS_V2)
    obj["normal"][0] = [["sep_conv_3x3", 0], ["dil_conv_5x5", 0], ["skip_connect", 1]]
    obj["normal"][1] = [["avg_pool_3x3", 2]]
    g = genotype_from_dict(obj)
    assert len(g.normal[0]) == 3 and len(g.normal[1]) == 1


def _broken(edit):
    obj = copy.deepcopy(genotype_to_dict(GENOTYPE_DARTS_V2))
    edit(obj)
    return obj


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda o: o["normal"][1].__setitem__(1, ["conv_7x7", 1]),
         r"normal cell, node 3, pair 1: unknown operation 'conv_7x7'"),
        (lambda o: o["reduce"][2].__setitem__(0, ["none", 0]),
         r"reduce cell, node 4, pair 0: 'none' is not allowed"),
        (lambda o: o["normal"][0].__setitem__(1, ["sep_conv_3x3", 2]),
         r"normal cell, node 2, pair 1 \(sep_conv_3x3\): input 2 is out of range; node 2 reads nodes 0..1"),
        (lambda o: o["normal"][3].__setitem__(0, ["skip_connect", -1]), r"normal cell, node 5, pair 0"),
        (lambda o: o["normal"][0].__setitem__(0, ["sep_conv_3x3"]),
         r"normal cell, node 2, pair 0: expected \[operation, input\]"),
        (lambda o: o["normal"].__setitem__(2, []), r"normal cell, node 4: expected a non-empty list"),
        (lambda o: o.__setitem__("normal_concat", [2, 3, 6]), r"normal_concat\[2\]: 6 is not an"),
        (lambda o: o.__setitem__("reduce_concat", [2, 2, 3]), r"reduce_concat: \[2, 2, 3\] must be strictly"),
        (lambda o: o.__setitem__("reduce_concat", "2345"), r"reduce_concat: expected a list"),
        (lambda o: o["reduce"].pop(), r"reduce: has 3 nodes but normal has 4"),
        (lambda o: o.pop("reduce_concat"), r"missing key\(s\) \['reduce_concat'\]"),
        (lambda o: o.__setitem__("notes", "x"), r"unknown key\(s\) \['notes'\]"),
        (lambda o: o.__setitem__("search_space", "nas201"), r"search_space: 'nas201' is unknown"),
    ],
)
def test_malformed_genotype_names_the_location(tmp_path, edit, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(edit)))
    with pytest.raises(GenotypeError, match=f"{re.escape(str(path))}: {message}"):
        load_genotype(path)


def test_the_space_without_none_accepts_the_same_operations():
    obj = _broken(lambda o: o.__setitem__("search_space", "darts_no_none"))
    assert genotype_from_dict(obj).search_space == "darts_no_none"


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(GenotypeError, match=r"missing\.json: genotype file not found"):
        load_genotype(tmp_path / "missing.json")
    path = tmp_path / "trunc.json"
    path.write_text('{"normal": [[["sep_conv_3x3", 0]')
    with pytest.raises(GenotypeError, match=r"trunc\.json: not valid JSON \(line 1, column"):
        load_genotype(path)
    path.write_text("[1, 2]")
    with pytest.raises(GenotypeError, match="expected a JSON object, got list"):
        load_genotype(path)


def test_render_lists_every_node_of_both_cells():
    text = render_genotype(GENOTYPE_DARTS_V2)
    lines = text.splitlines()
    assert lines[0] == "normal cell (output: concat of nodes 2, 3, 4, 5)"
    assert lines[1] == "  node 2 <- sep_conv_3x3(c_{k-2}) + sep_conv_3x3(c_{k-1})"
    assert lines[4] == "  node 5 <- skip_connect(c_{k-2}) + dil_conv_3x3(node 2)"
    assert lines[5].startswith("reduction cell")
    assert len(lines) == 10


def test_param_free_ratio_counts_normal_cell_pairs():
    assert param_free_ratio(GENOTYPE_DARTS_V2) == pytest.approx(2 / 8)
    pools = Genotype(((("max_pool_3x3", 0), ("sep_conv_3x3", 1)),), (2,), ((("skip_connect", 1),),), (2,))
    assert param_free_ratio(pools) == 0.5


def test_genotypes_are_hashable_and_immutable():
    assert hash(GENOTYPE_DARTS_V2) == hash(dataclasses.replace(GENOTYPE_DARTS_V2, provenance={}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENOTYPE_DARTS_V2.search_space = "darts_no_none"  # type: ignore[misc]
