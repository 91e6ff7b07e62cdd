"""The recurrent space: genotypes, the cell against a by-hand computation, the supernet's mixing, derivation
and the parameter counts of DARTS Table 2 against a closed form."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.config import Params, params_from_dict
from pipeline.errors import ConfigError, GenotypeError
from pipeline.space.base import ArchWeights, BoundSpace, genotype_from_json, get_space, list_spaces
from pipeline.space.rnn import operations
from pipeline.space.rnn.build import build_network, build_search_model
from pipeline.space.rnn.cell import RecurrentCell
from pipeline.space.rnn.count import count
from pipeline.space.rnn.derive import derive_recurrent
from pipeline.space.rnn.genotype import RELEASED, RecurrentGenotype
from pipeline.space.rnn.model import Dropouts
from pipeline.space.rnn.operations import CELL, PRIMITIVES, edge_index, num_edges
from pipeline.space.rnn.search_cell import SearchRecurrentCell
from pipeline.space.rnn.settings import PTB, SEARCH

TWO_NODES = RecurrentGenotype(recurrent=(("tanh", 0), ("relu", 1)), concat=(1, 2))
VOCAB = 9
pytestmark = pytest.mark.usefixtures("one_thread")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------------ genotypes


def test_released_genotypes_are_as_published_in_quark0_darts() -> None:
    v2 = RELEASED["DARTS_V2"]
    assert v2.recurrent == (("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2),
                            ("sigmoid", 5), ("tanh", 3), ("relu", 5))
    assert v2.concat == tuple(range(1, 9))
    assert RELEASED["ENAS"].steps == 11 and RELEASED["ENAS"].concat == (2, 5, 6, 9, 10, 11)
    for genotype in RELEASED.values():
        text = json.dumps(genotype.to_json())
        assert RecurrentGenotype.from_json(json.loads(text)) == genotype
        assert json.loads(text)["search_space"] == "rnn"


@pytest.mark.parametrize(("change", "message"), [
    ({"recurrent": [["tanh", 0], ["none", 1]]}, r"recurrent\[1\] \(node 2\): unknown op 'none'"),
    ({"recurrent": [["tanh", 0], ["relu", 2]]}, r"node 2\): input 2 must be an earlier node, an integer in 0\.\.1"),
    ({"recurrent": [["tanh", 0], ["relu"]]}, r"node 2\): expected \[op, input\]"),
    ({"concat": [1, 3]}, r"concat entry 3 must be a node in 1\.\.2"),
    ({"concat": [1, 1]}, "lists a node twice"),
    ({"search_space": "darts"}, "search_space is 'darts'"),
])
def test_invalid_genotypes_name_the_first_problem(change: dict, message: str) -> None:
    obj = {**TWO_NODES.to_json(), **change}
    with pytest.raises(GenotypeError, match=message):
        RecurrentGenotype.from_json(obj, "g.json")


# ------------------------------------------------------------------------------------------------ cells


def _set_cell_weights(cell: torch.nn.Module, rng: np.random.Generator) -> list[np.ndarray]:
    mats = [rng.normal(0, 0.7, tuple(cell.w0.shape))] + [rng.normal(0, 0.7, tuple(w.shape)) for w in cell.ws]
    with torch.no_grad():
        for param, value in zip([cell.w0, *cell.ws], mats, strict=True):
            param.copy_(torch.from_numpy(value))
    return mats


def test_two_node_cell_matches_a_by_hand_computation_over_two_time_steps() -> None:
    rng = np.random.default_rng(0)
    cell = RecurrentCell(3, 2, TWO_NODES, dropout_x=0.5, dropout_h=0.5).double().eval()
    w0, w1, w2 = _set_cell_weights(cell, rng)
    xs, h = rng.normal(size=(2, 4, 3)), rng.normal(size=(4, 2))
    outputs, last = cell(torch.from_numpy(xs), torch.from_numpy(h))

    expected = []
    for x in xs:  # DARTS Fig. 4 / rnn/model.py, written out for this genotype
        pre = np.concatenate([x, h], axis=1) @ w0
        s0 = h + _sigmoid(pre[:, :2]) * (np.tanh(pre[:, 2:]) - h)
        pre1 = s0 @ w1
        s1 = s0 + _sigmoid(pre1[:, :2]) * (np.tanh(pre1[:, 2:]) - s0)
        pre2 = s1 @ w2
        s2 = s1 + _sigmoid(pre2[:, :2]) * (np.maximum(pre2[:, 2:], 0) - s1)
        h = (s1 + s2) / 2
        expected.append(h)
    assert np.allclose(outputs.detach().numpy(), np.stack(expected), atol=1e-12)
    assert np.allclose(last.detach().numpy(), expected[-1], atol=1e-12)


def test_search_cell_mixes_activations_and_edges_by_their_weights() -> None:
    rng = np.random.default_rng(1)
    cell = SearchRecurrentCell(2, 2, steps=2, dropout_x=0.0, dropout_h=0.0, batch_norm=False).double().eval()
    w0, w1, w2 = _set_cell_weights(cell, rng)
    weights = np.zeros((num_edges(2), len(PRIMITIVES)))
    col = {name: PRIMITIVES.index(name) for name in PRIMITIVES}
    weights[edge_index(1, 0), [col["none"], col["tanh"], col["sigmoid"]]] = [0.5, 0.2, 0.3]
    weights[edge_index(2, 0), col["identity"]] = 0.6
    weights[edge_index(2, 1), col["relu"]] = 0.4
    x, h = rng.normal(size=(1, 3, 2)), rng.normal(size=(3, 2))
    out, _ = cell(torch.from_numpy(x), torch.from_numpy(h), ArchWeights({CELL: torch.from_numpy(weights)}))

    def node(s: np.ndarray, w: np.ndarray, f) -> np.ndarray:
        pre = s @ w
        return s + _sigmoid(pre[:, :2]) * (f(pre[:, 2:]) - s)

    pre = np.concatenate([x[0], h], axis=1) @ w0
    s0 = h + _sigmoid(pre[:, :2]) * (np.tanh(pre[:, 2:]) - h)
    s1 = 0.2 * node(s0, w1, np.tanh) + 0.3 * node(s0, w1, _sigmoid)  # `none` contributes nothing
    s2 = 0.6 * node(s0, w2, lambda v: v) + 0.4 * node(s1, w2, lambda v: np.maximum(v, 0))
    assert np.allclose(out[0].detach().numpy(), (s1 + s2) / 2, atol=1e-12)


def test_search_cell_with_one_hot_weights_is_the_derived_cell() -> None:
    rng = np.random.default_rng(2)
    search = SearchRecurrentCell(2, 2, steps=2, dropout_x=0.0, dropout_h=0.0, batch_norm=False).double().eval()
    derived = RecurrentCell(2, 2, TWO_NODES, 0.0, 0.0).double().eval()
    derived.load_state_dict(search.state_dict(), strict=False)
    weights = torch.zeros(num_edges(2), len(PRIMITIVES), dtype=torch.float64)
    for node, (op, source) in enumerate(TWO_NODES.recurrent, start=1):
        weights[edge_index(node, source), PRIMITIVES.index(op)] = 1.0
    x, h = torch.from_numpy(rng.normal(size=(3, 2, 2))), torch.from_numpy(rng.normal(size=(2, 2)))
    assert torch.allclose(search(x, h, ArchWeights({CELL: weights}))[0], derived(x, h)[0], atol=1e-12)


def test_an_activation_of_weight_exactly_zero_is_not_computed(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: torch.Tensor) -> torch.Tensor:
        raise AssertionError("relu has weight 0 everywhere and must not run")

    monkeypatch.setitem(operations.ACTIVATIONS, "relu", refuse)
    cell = SearchRecurrentCell(2, 2, steps=2, dropout_x=0.0, dropout_h=0.0)
    weights = torch.full((num_edges(2), len(PRIMITIVES)), 0.25)
    weights[:, PRIMITIVES.index("relu")] = 0.0
    cell(torch.randn(2, 3, 2), torch.zeros(3, 2), ArchWeights({CELL: weights}))
    with pytest.raises(AssertionError, match="must not run"):
        cell(torch.randn(2, 3, 2), torch.zeros(3, 2), ArchWeights({CELL: weights}, compute_all=True))


def test_language_model_ties_decoder_to_embedding_and_outputs_distributions() -> None:
    model = build_search_model(vocab_size=7, size=4, steps=2, dropouts=Dropouts(hidden=0.0, input=0.0, output=0.0,
                                                                                embedding=0.0)).eval()
    arch = ArchWeights({CELL: torch.full((num_edges(2), len(PRIMITIVES)), 0.2)})
    tokens, hidden = torch.tensor([[1, 2, 3]]), torch.randn(3, 4)
    with torch.no_grad():
        model.decoder_bias.copy_(torch.randn(7))
        out = model(tokens, arch, hidden)
        raw, _ = model.cell(model.embedding[tokens], hidden, arch)
    by_hand = torch.log_softmax(raw @ model.embedding.T + model.decoder_bias, -1)  # decoder = embedding^T
    assert torch.allclose(out.log_probs, by_hand, atol=1e-6)
    out = model.train()(torch.randint(0, 7, (5, 3)), arch)
    assert out.log_probs.shape == (5, 3, 7) and out.hidden.shape == (3, 4)
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(5, 3), atol=1e-5)


# ------------------------------------------------------------------------------------------------ derivation


def test_derivation_picks_per_node_the_best_non_none_input_then_activation() -> None:
    probs = torch.full((num_edges(3), len(PRIMITIVES)), 0.1)
    col = PRIMITIVES.index
    probs[edge_index(1, 0), col("none")] = 0.9  # `none` never wins, even when largest
    probs[edge_index(1, 0), col("sigmoid")] = 0.3
    probs[edge_index(2, 0), col("relu")] = 0.4
    probs[edge_index(2, 1), col("tanh")] = 0.5
    probs[edge_index(3, 1), col("identity")] = 0.3  # a tie with edge 2 -> 3: the first edge wins
    probs[edge_index(3, 2), col("relu")] = 0.3
    genotype = derive_recurrent(probs)
    assert genotype.recurrent == (("sigmoid", 0), ("tanh", 1), ("identity", 1))
    assert genotype.concat == (1, 2, 3)


# ------------------------------------------------------------------------------------------------ counts


def _closed_form_params(vocab: int, size: int, nodes: int) -> int:
    """Embedding (tied with the decoder) + decoder bias + W0 [(E + H) x 2H] + one [H x 2H] per node."""
    return vocab * size + vocab + 2 * size * 2 * size + nodes * size * 2 * size


@pytest.mark.parametrize(("name", "vocab", "size", "paper_m"), [
    ("DARTS_V2", 10_000, 850, 23),  # DARTS Table 2, PTB
    ("DARTS_V2", 33_278, 700, 33),  # DARTS Table 3 and DATA Table 4, WikiText-2
    ("ENAS", 10_000, 850, None),  # its 11 nodes in the DARTS evaluation model (the tables' 24M is ENAS' own)
])
def test_parameter_counts_match_the_closed_form_and_the_papers(name: str, vocab: int, size: int,
                                                               paper_m: int | None) -> None:
    genotype = RELEASED[name]
    counted = count(genotype, vocab, size)
    assert counted["params"] == _closed_form_params(vocab, size, genotype.steps)
    assert counted["mult_adds"] == 2 * size * 2 * size + genotype.steps * size * 2 * size + size * vocab
    if paper_m is not None:
        assert math.isclose(counted["params"] / 1e6, paper_m, abs_tol=0.5)


def test_counting_agrees_with_a_real_small_network() -> None:
    net = build_network(TWO_NODES, vocab_size=11, size=4, dropouts=Dropouts())
    assert count(TWO_NODES, 11, 4)["params"] == sum(p.numel() for p in net.parameters()) == \
        _closed_form_params(11, 4, 2)


# ------------------------------------------------------------------------------------------------ registry


def test_rnn_is_a_registered_text_space_whose_genotype_files_dispatch_to_it() -> None:
    space = get_space("rnn")
    assert "rnn" in list_spaces() and space.data_kind == "text"
    (cell,) = space.cells(SEARCH)
    assert cell.name == CELL and cell.shape == (36, 5), "DARTS: 8 nodes, 1 + 2 + ... + 8 edges, 5 activations"
    assert genotype_from_json(RELEASED["DARTS_V1"].to_json(), "f.json") == RELEASED["DARTS_V1"]
    rendered = space.render(TWO_NODES)
    assert "node 2: relu(node 1)" in rendered and "[1, 2]" in rendered
    assert math.isclose(space.count(RELEASED["DARTS_V2"], PTB, num_classes=10_000, in_channels=0,
                                    input_size=0)["params"], 22.96)


def test_discretised_genotype_derives_back_to_itself() -> None:
    space = BoundSpace.of("rnn", SEARCH)
    one_hot = space.space.discretise(RELEASED["DARTS_V2"], space.cells)
    assert one_hot[CELL].sum() == 8
    assert space.derive(one_hot) == RELEASED["DARTS_V2"]


@pytest.mark.parametrize(("algorithm", "reason"), [
    ("pc_darts", "partial channels"), ("drnas", "progressive stages"), ("ddsas", "subspace size L"),
    ("data", "no derivation of a recurrent cell"),
])
def test_methods_needing_the_cnn_cell_are_refused_naming_method_space_and_reason(algorithm: str,
                                                                                   reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"search\.methods\.v: method '{algorithm}' cannot run on space 'rnn': "
                                          rf".*{reason}"):
        _params_with_variant({"algorithm": algorithm})


def _params_with_variant(variant: dict) -> Params:
    """Validated params whose grid searches variant `v` on the recurrent space (8 nodes)."""
    return params_from_dict({"search": {"methods": {"v": {**variant, "space": "rnn", "overrides": {"nodes": 8}}}},
                             "grid": {"methods": [], "rnn": {"datasets": ["text_demo"], "methods": ["v"],
                                                             "transfer_to": "ptb"}}})


def test_inspect_counts_a_recurrent_genotype_for_a_vocabulary_and_size(tmp_path, capsys) -> None:
    path = tmp_path / "darts_v2.json"
    path.write_text(json.dumps(RELEASED["DARTS_V2"].to_json()))
    assert main(["inspect", str(path), "--vocab", "33278", "--channels", "700"]) == 0
    shown = capsys.readouterr().out
    assert f"params     {_closed_form_params(33_278, 700, 8) / 1e6:.2f} M" in shown  # 33.13 M, DARTS' WT2 model
    assert "node 6: sigmoid(node 5)" in shown
    assert main(["inspect", str(path)]) == 2
    assert "--vocab: a positive vocabulary size is required" in capsys.readouterr().err
