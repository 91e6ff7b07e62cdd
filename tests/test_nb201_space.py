"""NAS-Bench-201: architecture strings, the networks' sizes and shapes, the supernet, derivation.

Oracles: the string grammar of NAS-Bench-201 Sec. 2.1, parameter and mult-add counts derived by hand
below (checked against the extremes the benchmark itself tabulates), and the derived network computing
the same function as the supernet with one-hot weights.
"""

import json
import re

import pytest
import torch

from pipeline.errors import GenotypeError
from pipeline.space.base import ArchWeights
from pipeline.space.genotype import load_genotype
from pipeline.space.nb201.arch import EDGES, Nb201Arch, derive_argmax, save_arch
from pipeline.space.nb201.network import Nb201Network, count
from pipeline.space.nb201.ops import NB201_OPS, ResidualReduction, build_op
from pipeline.space.nb201.supernet import Nb201Supernet

OPTIMUM = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def cell_weights(cell: torch.Tensor) -> ArchWeights:
    return ArchWeights({"cell": cell})


# -- architecture strings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    OPTIMUM,
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
])
def test_arch_string_round_trips(text, tmp_path):
    arch = Nb201Arch.from_string(text)
    assert arch.to_string() == text
    assert Nb201Arch.from_json(json.loads(json.dumps(arch.to_json()))) == arch
    save_arch(tmp_path / "seed0.json", arch)
    assert load_genotype(tmp_path / "seed0.json") == arch
    assert (tmp_path / "seed0.txt").read_text().strip() == text
    assert json.loads((tmp_path / "seed0.json").read_text()) == {"arch": text, "search_space": "nb201"}


def test_arch_string_edges_are_read_node_by_node():
    arch = Nb201Arch.from_string(OPTIMUM)
    assert arch.op(3, 0) == "skip_connect" and arch.op(2, 1) == "nor_conv_3x3"
    assert "node 3 <- skip_connect(node 0) + nor_conv_3x3(node 1) + nor_conv_3x3(node 2)" in arch.render()


@pytest.mark.parametrize(("text", "message"), [
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "expected 3 nodes separated by '+', got 2"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 2 '|nor_conv_3x3~0|': expected 2 inputs (0..1), got 1"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~1|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 2, entry 'nor_conv_3x3~1': expected input 0 here"),
    ("|conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 1, input 0: unknown operation 'conv_3x3'"),
    ("|nor_conv_3x3|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 1, entry 'nor_conv_3x3': expected 'op~input'"),
    ("nor_conv_3x3~0+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
     "node 1 'nor_conv_3x3~0': expected '|op~input|...|'"),
])
def test_malformed_arch_string_names_the_problem(text, message):
    with pytest.raises(GenotypeError, match=re.escape(message)):
        Nb201Arch.from_string(text)


@pytest.mark.parametrize(("obj", "message"), [
    ({"arch": OPTIMUM}, "missing key(s) ['search_space']"),
    ({"arch": OPTIMUM, "search_space": "darts"}, "search_space: expected 'nb201', got 'darts'"),
    ({"arch": OPTIMUM, "search_space": "nb201", "normal": []}, "unknown key(s) ['normal']"),
    ({"arch": 3, "search_space": "nb201"}, "arch: architecture string: expected a string, got int"),
    ([OPTIMUM], "expected a JSON object, got list"),
])
def test_malformed_genotype_json_names_file_and_key(obj, message):
    with pytest.raises(GenotypeError) as info:
        Nb201Arch.from_json(obj, "results/genotypes/x.json")
    assert str(info.value).startswith(f"results/genotypes/x.json: {message}")


# -- operations ------------------------------------------------------------------------------------------

def test_conv_ops_are_relu_conv_bn_and_pool_ignores_padding():
    conv = build_op("nor_conv_3x3", 4, affine=True)
    assert [type(m).__name__ for m in conv] == ["ReLU", "Conv2d", "BatchNorm2d"]
    assert conv[1].kernel_size == (3, 3) and conv[1].bias is None
    assert build_op("nor_conv_1x1", 4, affine=True)[1].kernel_size == (1, 1)
    pool = build_op("avg_pool_3x3", 1, affine=True)
    # A mean over the in-image pixels only: a constant image stays constant at the borders (with padding
    # counted, a corner would be 4/9).
    assert torch.equal(pool(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    x = torch.randn(2, 4, 5, 5)
    assert torch.equal(build_op("skip_connect", 4, affine=True)(x), x)
    assert torch.equal(build_op("none", 4, affine=True)(x), torch.zeros_like(x))


def test_residual_reduction_halves_resolution_and_doubles_channels():
    block = ResidualReduction(4, 8).eval()
    x = torch.randn(2, 4, 8, 8)
    assert block(x).shape == (2, 8, 4, 4)
    # With both conv branches' BN scaled to zero only the shortcut remains: 2x2 mean, then a 1x1 conv.
    torch.nn.init.zeros_(block.conv_b[2].weight)
    torch.nn.init.zeros_(block.conv_b[2].bias)
    pooled = x.unfold(2, 2, 2).unfold(3, 2, 2).mean((-1, -2))
    expected = torch.einsum("oi,bihw->bohw", block.shortcut[1].weight[:, :, 0, 0], pooled)
    assert torch.allclose(block(x), expected, atol=1e-6)


# -- sizes: counted by hand --------------------------------------------------------------------------------

def hand_params(arch: Nb201Arch, num_classes: int, c: int = 16, n: int = 5) -> int:
    """Weights of the benchmark network, counted from its definition (NAS-Bench-201 Sec. 2.1).

    Stem: 3x3 conv 3->C and an affine BN (2C). A k x k ReLU-Conv-BN edge at width W: k^2 W^2 + 2W; skip,
    pool and none: nothing. Residual block W->2W: 3x3 conv W->2W + BN, 3x3 conv 2W->2W + BN, 1x1 W->2W.
    Head: BN (2 x 4C) and a linear layer 4C -> classes with bias.
    """
    kernels = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}
    total = 9 * 3 * c + 2 * c
    for w in (c, 2 * c, 4 * c):
        per_cell = sum(kernels[op] ** 2 * w * w + 2 * w for op in arch.ops if op in kernels)
        total += n * per_cell
    for w in (c, 2 * c):
        total += (9 * w * 2 * w + 2 * 2 * w) + (9 * 2 * w * 2 * w + 2 * 2 * w) + w * 2 * w
    return total + 2 * 4 * c + 4 * c * num_classes + num_classes


def hand_mult_adds(arch: Nb201Arch, num_classes: int, size: int = 32, c: int = 16, n: int = 5) -> int:
    """Conv and linear multiply-adds of one image: every stage has (size/2^s)^2 (2^s C)^2 = (size C)^2 per
    unit of k^2, so each k x k cell edge costs 3 n k^2 (size C)^2; the rest is stem, reductions, head."""
    kernels = {"nor_conv_3x3": 3, "nor_conv_1x1": 1}
    cells = sum(3 * n * kernels[op] ** 2 * (size * c) ** 2 for op in arch.ops if op in kernels)
    stem = size * size * c * 27
    reductions = 0
    for s, w in ((1, c), (2, 2 * c)):
        pixels = (size // 2**s) ** 2
        reductions += pixels * 2 * w * (9 * w + 9 * 2 * w + w)
    return cells + stem + reductions + 4 * c * num_classes


@pytest.mark.parametrize("text", [
    OPTIMUM,
    "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
])
@pytest.mark.parametrize("num_classes", [10, 100, 120])
def test_counts_match_the_hand_count(text, num_classes):
    arch = Nb201Arch.from_string(text)
    sizes = count(arch, num_classes=num_classes, input_size=32 if num_classes < 120 else 16)
    assert sizes["params"] == pytest.approx(hand_params(arch, num_classes) / 1e6, abs=1e-9)
    size = 32 if num_classes < 120 else 16
    assert sizes["mult_adds"] == pytest.approx(hand_mult_adds(arch, num_classes, size) / 1e6, abs=1e-9)


@pytest.mark.parametrize(("op", "num_classes", "params_mb"), [
    # The smallest and largest 'params' of each dataset's benchmark records (NAS-Bench-201 v1.1 as
    # tabulated by HPOBench): every cell empty of weights, and every edge nor_conv_3x3.
    ("none", 10, 0.073306), ("nor_conv_3x3", 10, 1.531546),
    ("skip_connect", 100, 0.079156), ("nor_conv_3x3", 100, 1.537396),
    ("avg_pool_3x3", 120, 0.080456), ("nor_conv_3x3", 120, 1.538696),
])
def test_params_match_the_benchmark_extremes(op, num_classes, params_mb):
    arch = Nb201Arch((op,) * len(EDGES))
    assert hand_params(arch, num_classes) / 1e6 == pytest.approx(params_mb, abs=5e-7)
    net = Nb201Network(arch, num_classes=num_classes)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(params_mb, abs=5e-7)


def test_benchmark_flops_are_our_mult_adds_plus_the_classifier_bias():
    # The benchmark's cifar10-valid records range over 7.78305 .. 220.11969 MFLOPs.
    for op, flops in (("none", 7.78305), ("nor_conv_3x3", 220.11969)):
        ours = hand_mult_adds(Nb201Arch((op,) * len(EDGES)), 10)
        assert (ours + 10) / 1e6 == pytest.approx(flops, abs=5e-6)


def test_macro_network_shapes(one_thread):
    net = Nb201Network(Nb201Arch.from_string(OPTIMUM), num_classes=7, channels=4, cells_per_stage=1)
    shapes = []
    for block in net.cells:
        block.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
    logits, aux = net(torch.randn(2, 3, 8, 8))
    assert aux is None
    assert shapes == [(2, 4, 8, 8), (2, 8, 4, 4), (2, 8, 4, 4), (2, 16, 2, 2), (2, 16, 2, 2)]
    assert logits.shape == (2, 7)
    assert [type(b).__name__ for b in net.cells] == ["EvalCell", "ResidualReduction", "EvalCell",
                                                     "ResidualReduction", "EvalCell"]


# -- supernet and derivation --------------------------------------------------------------------------------

def _one_hot(arch: Nb201Arch) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor([NB201_OPS.index(op) for op in arch.ops]),
                                       len(NB201_OPS)).float()


def test_supernet_with_one_hot_weights_is_the_derived_network(one_thread):
    torch.manual_seed(0)
    arch = Nb201Arch.from_string(
        "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|")
    supernet = Nb201Supernet(num_classes=5, channels=4, cells_per_stage=2)
    net = Nb201Network(arch, num_classes=5, channels=4, cells_per_stage=2)
    own = {k: v for k, v in supernet.state_dict().items() if ".edges." not in k}
    net.load_state_dict(own, strict=False)
    for block, search_block in zip(net.cells, supernet.cells, strict=True):
        if isinstance(block, ResidualReduction):
            continue
        for e, (node, source) in enumerate(EDGES):
            if f"{node}<-{source}" in block.edges:
                chosen = search_block.edges[e].ops[NB201_OPS.index(arch.op(node, source))]
                # Affine BN at its initial scale 1 and shift 0 is the supernet's non-affine BN.
                block.edges[f"{node}<-{source}"].load_state_dict(chosen.state_dict(), strict=False)
    x = torch.randn(3, 3, 8, 8)
    assert torch.allclose(supernet(x, cell_weights(_one_hot(arch))), net(x)[0], atol=1e-5)


def test_supernet_does_not_compute_zero_weight_ops(one_thread):
    supernet = Nb201Supernet(num_classes=3, channels=4, cells_per_stage=1)
    weights = torch.zeros(len(EDGES), len(NB201_OPS))
    weights[:, NB201_OPS.index("nor_conv_1x1")] = 1.0
    supernet(torch.randn(2, 3, 8, 8), cell_weights(weights)).sum().backward()
    conv3 = NB201_OPS.index("nor_conv_3x3")
    conv1 = NB201_OPS.index("nor_conv_1x1")
    cell = supernet.cells[0]
    assert all(edge.ops[conv3][1].weight.grad is None for edge in cell.edges)
    assert all(edge.ops[conv1][1].weight.grad is not None for edge in cell.edges)


def test_supernet_partial_channels_and_fewer_candidates(one_thread):
    no_none = tuple(op for op in NB201_OPS if op != "none")
    supernet = Nb201Supernet(num_classes=3, channels=4, cells_per_stage=1, partial_k=2,
                             edge_ops=(no_none,) * len(EDGES))
    weights = torch.softmax(torch.randn(len(EDGES), len(no_none)), -1).requires_grad_()
    supernet(torch.randn(2, 3, 8, 8), cell_weights(weights)).sum().backward()
    assert supernet.cells[0].edges[0].ops[no_none.index("nor_conv_3x3")][1].in_channels == 2
    assert weights.grad is not None and bool((weights.grad != 0).all())


def test_derive_takes_the_argmax_of_every_edge_none_included():
    probs = torch.full((len(EDGES), len(NB201_OPS)), 0.1)
    expected = ("none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none")
    for e, op in enumerate(expected):
        probs[e, NB201_OPS.index(op)] = 0.6
    assert derive_argmax(probs, (NB201_OPS,) * len(EDGES)).ops == expected
    no_none = NB201_OPS[1:]
    assert derive_argmax(torch.eye(len(EDGES), 4)[:, [3, 2, 1, 0]], (no_none,) * len(EDGES)).ops[:4] == (
        "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1", "skip_connect")
    with pytest.raises(GenotypeError, match="shape"):
        derive_argmax(torch.zeros(6, 4), (NB201_OPS,) * len(EDGES))
