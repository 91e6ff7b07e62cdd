"""Evaluation networks: shapes, summed pairs, drop path, auxiliary head, and the papers' sizes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pipeline.nets import Cell, NetworkCIFAR, NetworkImageNet, count_parameters_m, drop_path, mult_adds_m
from pipeline.space.cnn import GENOTYPE_DARTS_V2
from pipeline.space.genotype import Genotype
from pipeline.space.primitives import FactorizedReduce

# A DATA-style genotype: nodes with several pairs, two of them on the same edge.
MULTI_OP = dataclasses.replace(
    GENOTYPE_DARTS_V2,
    normal=(
        (("sep_conv_3x3", 0), ("dil_conv_3x3", 0), ("sep_conv_5x5", 1)),
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("dil_conv_5x5", 2)),
        (("sep_conv_3x3", 1), ("skip_connect", 0)),
        (("skip_connect", 0), ("dil_conv_3x3", 2), ("avg_pool_3x3", 4)),
    ),
)


def _single_node(*pairs: tuple[str, int]) -> Genotype:
    return Genotype((pairs,), (2,), (pairs,), (2,))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_cifar_network_forward_backward_with_auxiliary():
    net = NetworkCIFAR(GENOTYPE_DARTS_V2, channels=8, num_classes=10, layers=5, auxiliary=True)
    net.drop_path_prob = 0.2
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    assert all(p.grad is not None for p in net.cells.parameters())
    net.eval()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux is None


def test_tiny_grey_inputs_use_the_adaptive_auxiliary_pool():
    # 16x16 digits: the auxiliary head sees 4x4 features, smaller than its 5x5 pool window.
    net = NetworkCIFAR(GENOTYPE_DARTS_V2, channels=4, num_classes=10, layers=3, auxiliary=True, in_channels=1)
    logits, aux = net(torch.randn(2, 1, 16, 16))
    assert logits.shape == aux.shape == (2, 10)


def test_imagenet_network_forward_backward_on_small_inputs():
    net = NetworkImageNet(GENOTYPE_DARTS_V2, channels=8, num_classes=7, layers=5, auxiliary=True,
                          pool_bn=True)
    logits, aux = net(torch.randn(2, 3, 64, 64))
    assert logits.shape == aux.shape == (2, 7)
    (logits.sum() + aux.sum()).backward()
    assert net.stem.stem0[0].weight.grad is not None
    # The stem's last conv is strided, so the first cell halves its older input like after a reduction.
    assert isinstance(net.cells[0].preprocess0, FactorizedReduce)


def test_pool_bn_adds_non_affine_batch_norm_after_pools():
    kwargs = dict(channels=8, num_classes=10, layers=5, auxiliary=False)
    with_bn = NetworkCIFAR(GENOTYPE_DARTS_V2, pool_bn=True, **kwargs)
    without = NetworkCIFAR(GENOTYPE_DARTS_V2, **kwargs)
    # DARTS_V2's reduction cell has 5 max pools; layers 5 has 2 reduction cells: 10 more BNs, no parameters.
    def bns(net):
        return sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert bns(with_bn) - bns(without) == 10
    assert count_parameters_m(with_bn) == count_parameters_m(without)


def test_cell_sums_every_pair_including_two_on_one_edge():
    cell = Cell(_single_node(("skip_connect", 0), ("skip_connect", 0), ("skip_connect", 1)), 4, 4, 4,
                reduction=False, reduction_prev=False).eval()
    s0, s1 = torch.randn(2, 4, 6, 6), torch.randn(2, 4, 6, 6)
    expected = 2 * cell.preprocess0(s0) + cell.preprocess1(s1)
    torch.testing.assert_close(cell(s0, s1), expected)


def test_multi_op_genotype_builds_every_pair():
    small = dict(channels=8, num_classes=10, layers=5, auxiliary=False)
    multi, pairs2 = NetworkCIFAR(MULTI_OP, **small), NetworkCIFAR(GENOTYPE_DARTS_V2, **small)
    assert count_parameters_m(multi) > count_parameters_m(pairs2)
    assert sum(len(ops) for ops in multi.cells[0].node_ops) == 11
    logits, _ = multi(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_drop_path_spares_identity_and_is_off_in_eval():
    identity = Cell(_single_node(("skip_connect", 0)), 4, 4, 4, reduction=False, reduction_prev=False)
    x = torch.randn(8, 4, 5, 5)
    torch.testing.assert_close(identity(x, x, drop_prob=0.9), identity.preprocess0(x))

    pooled = Cell(_single_node(("avg_pool_3x3", 0)), 4, 4, 4, reduction=False, reduction_prev=False)
    dropped = pooled(x, x, drop_prob=0.5).flatten(1).abs().sum(dim=1)
    assert (dropped == 0).any() and (dropped > 0).any()
    pooled.eval()
    reference = torch.nn.functional.avg_pool2d(pooled.preprocess0(x), 3, 1, 1, count_include_pad=False)
    torch.testing.assert_close(pooled(x, x, drop_prob=0.5), reference)


def test_drop_path_keeps_the_expectation():
    out = drop_path(torch.ones(20000, 1, 1, 1), 0.3)
    assert out.unique().tolist() == pytest.approx([0.0, 1 / 0.7])
    assert out.mean().item() == pytest.approx(1.0, abs=0.03)


def test_auxiliary_head_is_excluded_from_both_counts():
    kwargs = dict(channels=8, num_classes=10, layers=5)
    with_aux = NetworkCIFAR(GENOTYPE_DARTS_V2, auxiliary=True, **kwargs)
    without = NetworkCIFAR(GENOTYPE_DARTS_V2, auxiliary=False, **kwargs)
    assert with_aux.auxiliary_head is not None and without.auxiliary_head is None
    assert sum(p.numel() for p in with_aux.parameters()) > sum(p.numel() for p in without.parameters())
    assert count_parameters_m(with_aux) == count_parameters_m(without)
    assert mult_adds_m(with_aux, 32) == mult_adds_m(without, 32)
    assert with_aux.training  # counting restores the mode


def test_darts_v2_matches_the_papers_sizes():
    cifar = NetworkCIFAR(GENOTYPE_DARTS_V2, channels=36, num_classes=10, layers=20, auxiliary=True)
    assert count_parameters_m(cifar) == pytest.approx(3.3, rel=0.03)
    imagenet = NetworkImageNet(GENOTYPE_DARTS_V2, channels=48, num_classes=1000, layers=14, auxiliary=True)
    assert count_parameters_m(imagenet) == pytest.approx(4.7, rel=0.03)
    # The paper reports 574M with an unpublished counter; counting Conv2d and Linear only (its stated
    # convention) gives 530M, as third-party recounts do (523-545M, quark0/darts issue #46). Pin ours and
    # check the mobile-setting bound the paper uses.
    madds = mult_adds_m(imagenet, 224)
    assert madds == pytest.approx(529.9, rel=0.005)
    assert madds < 600
