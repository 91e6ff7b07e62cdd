"""PC-DARTS: edge weights are a softmax per node, 1/K of the channels go through the ops, the derivation
ranks edges by op weight times edge weight, and the search command runs it."""

import math

import pytest
import torch
from search_e2e import prepare_digits, search_via_cli
from space_support import arch, bound, cnn_cells

from pipeline.config import SearchTraining
from pipeline.methods import create_method
from pipeline.methods.pc_darts import PcDartsMethod, node_softmax
from pipeline.space.genotype import derive_top2
from pipeline.space.primitives import PRIMITIVES
from pipeline.space.supernet import Supernet

SPACE = bound("darts", nodes=3)


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(**options):
    torch.manual_seed(0)
    return create_method(PcDartsMethod(algorithm="pc_darts", **options), SPACE, SearchTraining(nodes=3))


def test_edge_weights_are_a_softmax_over_each_nodes_inputs():
    method = _method()
    with torch.no_grad():
        method.beta_normal.normal_()
    edges = method.forward_weights().edge_scale("normal")
    assert edges.shape == (SPACE.cells[0].num_edges,)
    for start, size in ((0, 2), (2, 3), (5, 4)):  # nodes 2, 3, 4 see 2, 3, 4 inputs
        assert torch.allclose(edges[start:start + size], method.beta_normal[start:start + size].softmax(0))
    uniform = torch.tensor([1 / 2] * 2 + [1 / 3] * 3 + [1 / 4] * 4)
    assert torch.allclose(node_softmax(torch.zeros(9), (2, 3, 4)), uniform)


def test_edge_weights_get_gradients_and_can_be_switched_off():
    method = _method()
    weights = method.forward_weights()
    (weights.edge_scale("normal") * torch.arange(9.0)).sum().backward()
    assert method.beta_normal.grad is not None and bool(method.beta_normal.grad.abs().gt(0).any())
    plain = _method(edge_normalization=False)
    assert plain.forward_weights().edge_scale("normal") is None
    assert len(plain.arch_parameters()) == 2


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_channels_keep_the_edge_shape(stride):
    method = _method(partial_k=4)
    assert method.supernet_options() == {"partial_k": 4}
    net = Supernet(channels=8, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES, 3), stem_multiplier=1,
                   in_channels=1, **method.supernet_options())
    edge = next(e for cell in net.cells for e in cell.edges if e.stride == stride)
    widths = {m.in_channels for m in edge.ops.modules() if isinstance(m, torch.nn.Conv2d)}
    assert widths == {edge.channels // 4}
    x = torch.randn(2, edge.channels, 8, 8)
    out = edge(x, torch.full((len(PRIMITIVES),), 1 / 8), list(range(1, len(PRIMITIVES))))
    assert out.shape == (2, edge.channels, 8 // stride, 8 // stride)
    assert net(torch.randn(2, 1, 8, 8), method.forward_weights()).shape == (2, 3)


def test_derivation_ranks_edges_by_op_weight_times_edge_weight():
    method = _method()
    sep = PRIMITIVES.index("sep_conv_3x3")
    with torch.no_grad():
        method.alpha_normal.zero_()
        method.alpha_normal[:, sep] = torch.tensor([2.0, 2.0, 3.0, 3.5, 1.0, 2.0, 2.0, 2.0, 2.0])
        # Node 3's input 2 has the weakest op but by far the strongest edge weight.
        method.beta_normal[2:5] = torch.tensor([0.0, 0.0, 5.0])
    genotype = method.derive()
    assert sorted(source for _, source in genotype.normal[1]) == [1, 2]
    probs = method.mixing_probabilities()
    without_edges = derive_top2(probs.cells, {spec.name: spec.edge_ops for spec in method.space.cells}, "darts")
    assert sorted(source for _, source in without_edges.normal[1]) == [0, 1]


def test_architecture_waits_for_the_warmup_epochs():
    assert _method().config.warmup_epochs == 15
    method = _method(warmup_epochs=2)
    assert [method.updates_architecture(e) for e in range(4)] == [False, False, True, True]


def test_search_command_runs_pc_darts(tmp_path):
    methods = {"pc_darts": {"algorithm": "pc_darts", "partial_k": 4, "warmup_epochs": 1}}
    summary, history = search_via_cli(tmp_path, prepare_digits(tmp_path), methods, "pc_darts")
    assert summary["epochs"] == 2 and summary["steps"] == 4
    assert [int(row["epoch"]) for row in history] == [0, 1]
    assert len(summary["genotype"]["normal"]) == 2


def test_child_validation_scales_each_kept_edge_by_its_learnt_edge_weight():
    method = _method()
    with torch.no_grad():
        method.beta_normal.copy_(torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]))
    eye = torch.eye(*SPACE.cells[0].shape)
    one_hot = arch(eye, eye)
    child = method.child_weights(one_hot)
    assert torch.equal(child["normal"], one_hot["normal"])
    e = math.e
    # By hand: node 2 softmax(0, 0); node 3 softmax(1, 0, 0); node 4 softmax(0, 0, 0, 2).
    expected = [1 / 2, 1 / 2, e / (e + 2), 1 / (e + 2), 1 / (e + 2)] + [1 / (3 + e**2)] * 3 + [e**2 / (3 + e**2)]
    assert child.edge_scale("normal").tolist() == pytest.approx(expected)
    assert _method(edge_normalization=False).child_weights(one_hot).edge_scale("normal") is None
