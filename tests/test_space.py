"""Operations and the supernet: shapes, strides, skipping zero-weight ops, gradients."""

import pytest
import torch
from space_support import arch, cnn_cells

from pipeline.space.base import ArchWeights
from pipeline.space.primitives import PRIMITIVES, PRIMITIVES_NO_NONE, build_op
from pipeline.space.supernet import MixedOp, Supernet


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_op_keeps_channels_and_applies_stride(name, stride):
    op = build_op(name, 8, stride, affine=False, pool_bn=True)
    out = op(torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 8, 8 // stride, 8 // stride)


def test_pool_bn_only_when_asked():
    assert len(build_op("max_pool_3x3", 4, 1, affine=False, pool_bn=True)) == 2
    assert isinstance(build_op("max_pool_3x3", 4, 1, affine=True, pool_bn=False), torch.nn.MaxPool2d)


def test_avg_pool_excludes_padding():
    op = build_op("avg_pool_3x3", 1, 1, affine=True, pool_bn=False)
    assert torch.allclose(op(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))


class _Counting(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_mixed_op_skips_zero_weights_and_none():
    op = MixedOp(4, 1, PRIMITIVES)
    op.ops = torch.nn.ModuleList(_Counting(o) for o in op.ops)
    weights = torch.zeros(len(PRIMITIVES), requires_grad=True)
    w = weights.detach().clone()
    w[0], w[4] = 0.5, 0.5  # none and sep_conv_3x3
    w.requires_grad_()
    active = [4]
    out = op(torch.randn(2, 4, 6, 6), w, active)
    out.sum().backward()
    assert [o.calls for o in op.ops] == [0, 0, 0, 0, 1, 0, 0, 0]
    assert w.grad[4] != 0 and w.grad[0] == 0
    assert all(p.grad is None for i, o in enumerate(op.ops) if i != 4 for p in o.parameters())


def test_mixed_op_with_only_none_outputs_zeros_of_the_right_shape():
    op = MixedOp(4, 2, PRIMITIVES)
    out = op(torch.randn(2, 4, 6, 6), torch.ones(8), [])
    assert out.shape == (2, 4, 3, 3) and not out.any()


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_channels_keep_shape(stride):
    op = MixedOp(8, stride, PRIMITIVES_NO_NONE, partial_k=4)
    assert op.ops[3][0][1].in_channels == 2  # sep_conv_3x3's depthwise conv sees C/K channels
    out = op(torch.randn(2, 8, 8, 8), torch.full((7,), 1 / 7), list(range(7)))
    assert out.shape == (2, 8, 8 // stride, 8 // stride)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_partial_channels_interleave_the_bypassed_channels(layout):
    """PC-DARTS' shuffle, worked by hand: with only skip_connect on (weight 1) and K=2, channels 0-3 go
    through the op, 4-7 bypass it, and the output interleaves the two halves; in either memory layout."""
    op = MixedOp(8, 1, PRIMITIVES_NO_NONE, partial_k=2)
    x = torch.arange(8.0).view(1, 8, 1, 1).expand(1, 8, 2, 2).contiguous(memory_format=layout)
    weights = torch.zeros(7)
    weights[PRIMITIVES_NO_NONE.index("skip_connect")] = 1.0
    out = op(x, weights, [PRIMITIVES_NO_NONE.index("skip_connect")])
    assert out[0, :, 1, 1].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def _uniform(n_ops: int, requires_grad: bool = False) -> "ArchWeights":
    normal = torch.full((14, n_ops), 1 / n_ops, requires_grad=requires_grad)
    reduce = torch.full((14, n_ops), 1 / n_ops, requires_grad=requires_grad)
    return arch(normal, reduce)


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_supernet_forward_backward_reaches_both_cell_types(stem):
    net = Supernet(channels=4, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES), stem=stem, stem_multiplier=2)
    weights = _uniform(8, requires_grad=True)
    size = 16 if stem == "cifar" else 32
    logits = net(torch.randn(2, 3, size, size), weights)
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert weights["normal"].grad.abs().sum() > 0 and weights["reduce"].grad.abs().sum() > 0
    assert [c.reduction for c in net.cells] == [False, True, True]
    assert all(p.grad is not None for p in net.weights() if p.requires_grad)


def test_supernet_has_no_architecture_parameters():
    net = Supernet(channels=4, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES))
    assert all(p.dim() != 2 or p.shape != (14, 8) for p in net.weights())


def test_edge_weights_scale_edges():
    torch.manual_seed(0)
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES)).eval()
    x = torch.randn(1, 3, 8, 8)
    plain = _uniform(8)
    zeroed = arch(plain["normal"], plain["reduce"], torch.zeros(14), torch.zeros(14))
    # With every edge scaled to 0 the cells output zeros: only the classifier bias remains.
    assert torch.allclose(net(x, zeroed), net.classifier.bias.expand(1, 3))
    assert not torch.allclose(net(x, plain), net(x, zeroed))
