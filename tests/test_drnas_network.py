"""DrNAS' evaluation network: BN after pooling without learnable parameters, counted in closed form."""

from __future__ import annotations

from torch import nn

from pipeline.nets import NetworkCIFAR
from pipeline.space.genotype import Genotype

# DrNAS_cifar10 of xiangning-chen/DrNAS DARTS-space/genotypes.py, two (op, input) pairs per node.
DRNAS_CIFAR10 = Genotype(
    normal=(
        (("sep_conv_3x3", 0), ("sep_conv_5x5", 1)),
        (("sep_conv_3x3", 1), ("sep_conv_3x3", 2)),
        (("skip_connect", 0), ("sep_conv_3x3", 1)),
        (("sep_conv_3x3", 2), ("dil_conv_5x5", 3)),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        (("max_pool_3x3", 0), ("sep_conv_5x5", 1)),
        (("dil_conv_5x5", 2), ("sep_conv_5x5", 1)),
        (("sep_conv_5x5", 1), ("dil_conv_5x5", 3)),
        (("skip_connect", 4), ("sep_conv_5x5", 1)),
    ),
    reduce_concat=(2, 3, 4, 5),
    search_space="darts_no_none",
)

C, LAYERS, CLASSES = 36, 20, 10


def op_parameters(op: str, c: int, stride: int) -> int:
    """Weights of one op on c channels: a depthwise k x k plus a pointwise c x c conv and an affine BN (2c)
    per dilated-conv block, two blocks for a separable conv; a strided skip is a factorized reduce (two
    c x c/2 convs, BN); pools have none."""
    if op.startswith(("sep_conv", "dil_conv")):
        k = int(op[-1])
        block = c * k * k + c * c + 2 * c
        return 2 * block if op.startswith("sep") else block
    if op == "skip_connect":
        return 0 if stride == 1 else c * c + 2 * c
    assert op in ("max_pool_3x3", "avg_pool_3x3")
    return 0


def closed_form_parameters(genotype: Genotype) -> int:
    """NetworkCIFAR's parameter count, cell by cell: stem conv 3 -> 3C and BN; per cell two 1x1
    preprocessings (a factorized reduce has the same count) and the ops; the auxiliary head (1x1 to 128,
    BN, 2x2 to 768, BN, Linear) after cell 2L/3; the classifier."""
    stem = 3 * C
    total = 3 * 9 * stem + 2 * stem
    c_pp, c_p, c_cell = stem, stem, C
    for i in range(LAYERS):
        reduction = i in (LAYERS // 3, 2 * LAYERS // 3)
        c_cell = 2 * c_cell if reduction else c_cell
        total += c_pp * c_cell + 2 * c_cell + c_p * c_cell + 2 * c_cell
        nodes = genotype.reduce if reduction else genotype.normal
        total += sum(op_parameters(op, c_cell, 2 if reduction and src < 2 else 1) for node in nodes for op, src in node)
        c_pp, c_p = c_p, 4 * c_cell
        if i == 2 * LAYERS // 3:
            c_aux = c_p
    total += c_aux * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * CLASSES + CLASSES
    return total + c_p * CLASSES + CLASSES


def drnas_network(pool_bn: bool) -> NetworkCIFAR:
    return NetworkCIFAR(DRNAS_CIFAR10, channels=C, num_classes=CLASSES, layers=LAYERS, auxiliary=True,
                        pool_bn=pool_bn)


def test_drnas_network_parameter_count_is_the_closed_form_one() -> None:
    with_bn = drnas_network(pool_bn=True)
    expected = closed_form_parameters(DRNAS_CIFAR10)
    assert sum(p.numel() for p in with_bn.parameters()) == expected
    # The BN after pooling adds running statistics, never parameters.
    assert sum(p.numel() for p in drnas_network(pool_bn=False).parameters()) == expected
    # DrNAS Table 2 reports 4.1 M, counted without the auxiliary head as the DARTS-family code does.
    without_head = sum(p.numel() for name, p in with_bn.named_parameters() if not name.startswith("auxiliary"))
    assert round(without_head / 1e6, 1) == 4.1


def test_bn_after_pooling_is_not_affine_in_the_drnas_network() -> None:
    network = drnas_network(pool_bn=True)
    pool_bns = [
        module[1] for module in network.modules()
        if isinstance(module, nn.Sequential) and len(module) == 2
        and isinstance(module[0], nn.MaxPool2d | nn.AvgPool2d) and isinstance(module[1], nn.BatchNorm2d)
    ]
    # One max pool per reduction cell (cells 6 and 13 at 2C = 72 and 4C = 144 channels): an affine BN there
    # would add 2 x (72 + 144) = 432 parameters, the difference the issue measured against DrNAS' code.
    assert sorted(bn.num_features for bn in pool_bns) == [72, 144]
    assert all(not bn.affine and bn.weight is None and bn.bias is None for bn in pool_bns)
