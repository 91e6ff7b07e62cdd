"""The fast supernet's own autograd functions against torch's autograd and numerical derivatives.

`conv_chain` (stride-1 convs with input gradients as forward convs, inner outputs recomputed) is checked
against the same convs run one `F.conv2d` after the other; `scaled_batch_norm` (weight * BN(z) as one BN
scaled by the weight) against `weight * nn.BatchNorm2d(z)`; `normalized_chain`
(scale * BN(chain(relu(BN(z)))), keeping z) against the modules, `torch.relu` and the convs, BNs in
training and in evaluation mode; a narrow
channels-last BN run in NCHW (`batch_norm_in_fast_layout`) against the module on the tensor as it is.
Second derivatives are checked by torch's `gradgradcheck` (finite differences), and what each keeps for
the backward pass by autograd's saved-tensor hooks.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable

import pytest
import torch
from space_support import KernelLayouts, kept_tensors
from torch import nn
from torch.nn import functional as F

from pipeline.methods.base import frozen
from pipeline.space.bn_layout import batch_norm_in_fast_layout, relayout
from pipeline.space.bn_tally import BatchNormTally
from pipeline.space.fast_conv import ConvShape, chainable, conv_chain, input_gradient_kernel, normalized_chain
from pipeline.space.scaled_batch_norm import (
    channel_scales,
    plain_batch_norm,
    plain_training_batch_norm,
    scaled_batch_norm,
)
from pipeline.stages.kernel_ops import KernelOps, count_kernel_ops

pytestmark = pytest.mark.usefixtures("one_thread")

# (input channels, [(out channels, kernel, padding, dilation, groups), ...])
CHAINS = {
    "sep-conv-half": (4, [(4, 3, 1, 1, 4), (4, 1, 0, 1, 1)]),
    "dilated-5x5": (4, [(4, 5, 4, 2, 4), (6, 1, 0, 1, 1)]),
    "grouped-unpadded": (4, [(6, 3, 0, 1, 2)]),
    "non-square": (3, [(3, (3, 1), (1, 0), (1, 1), 3), (2, (1, 5), (0, 3), (1, 2), 1)]),
    "three-convs": (2, [(2, 3, 2, 2, 2), (4, 1, 0, 1, 1), (4, 3, 1, 1, 1)]),
}


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else value


def chain_of(name: str) -> tuple[torch.Tensor, list[ConvShape], list[torch.Tensor]]:
    """A random fp64 input and the convs of CHAINS[name] (weights requiring gradients)."""
    channels, convs = CHAINS[name]
    x = torch.randn(2, channels, 7, 6, dtype=torch.float64, requires_grad=True)
    shapes, weights = [], []
    for out, kernel, padding, dilation, groups in convs:
        kh, kw = _pair(kernel)
        weights.append(torch.randn(out, channels // groups, kh, kw, dtype=torch.float64, requires_grad=True))
        shapes.append(ConvShape(_pair(padding), _pair(dilation), groups))
        channels = out
    return x, shapes, weights


def one_conv_after_the_other(x: torch.Tensor, shapes: list[ConvShape], weights: list[torch.Tensor]) -> torch.Tensor:
    for shape, weight in zip(shapes, weights, strict=True):
        x = F.conv2d(x, weight, None, 1, shape.padding, shape.dilation, shape.groups)
    return x


@pytest.mark.parametrize("name", CHAINS)
def test_a_conv_chain_computes_the_convs_and_every_gradient(name: str):
    x, shapes, weights = chain_of(name)
    out = conv_chain(x, shapes, weights)
    expected = one_conv_after_the_other(x, shapes, weights)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    inputs = [x, *weights]
    # a gradient for everything or for some only; create_graph as a second derivative asks
    for asked, create_graph in itertools.product((inputs, [x], weights, weights[-1:]), (False, True)):
        got = torch.autograd.grad(out, asked, grad, retain_graph=True, create_graph=create_graph)
        want = torch.autograd.grad(expected, asked, grad, retain_graph=True)
        for got_grad, want_grad in zip(got, want, strict=True):
            torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["dilated-5x5", "three-convs"])
def test_a_conv_chain_has_the_second_derivatives_of_its_convs(name: str):
    """Finite differences of the backward pass (the Hessian analysis differentiates it)."""
    x, shapes, weights = chain_of(name)
    x = x[:, :, :4, :3].detach().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda x_, *w: conv_chain(x_, shapes, list(w)), (x, *weights))


def test_the_input_gradient_kernel_of_a_grouped_conv_is_its_transposed_flipped_kernel():
    """Hand-worked: group g's kernel W[g*o + a, b] moves to [g*i + b, a], flipped in both spatial axes."""
    weight = torch.arange(4 * 3 * 2 * 2, dtype=torch.float64).reshape(4, 3, 2, 2)  # 2 groups: 2 out, 3 in each
    kernel = input_gradient_kernel(weight, groups=2)
    assert kernel.shape == (6, 2, 2, 2)
    for group in range(2):
        for a in range(2):
            for b in range(3):
                assert torch.equal(kernel[3 * group + b, a], weight[2 * group + a, b].flip(0, 1))


def test_a_chain_keeps_only_its_input_and_nothing_when_no_weight_needs_a_gradient():
    x, shapes, weights = chain_of("three-convs")
    with kept_tensors() as kept:
        conv_chain(x, shapes, weights)
    assert [t.shape for t in kept] == [x.shape] + [w.shape for w in weights]  # no inner output
    with frozen(weights), kept_tensors() as kept:  # an architecture step: no weight gradient asked for
        out = conv_chain(x, shapes, weights)
    assert [t.shape for t in kept] == [w.shape for w in weights]
    assert all(w.requires_grad for w in weights), "frozen() restores requires_grad"
    grad = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, [x], grad)
    (want,) = torch.autograd.grad(one_conv_after_the_other(x, shapes, weights), [x], grad)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# A BN normalises by the batch's statistics in training mode, by its running statistics in evaluation mode.
MODES = {"train-mode": True, "eval-mode": False}


def random_batch_norm(channels: int, momentum: float, training: bool) -> nn.BatchNorm2d:
    """A BN without affine parameters (as the search cells' are) with random running statistics."""
    bn = nn.BatchNorm2d(channels, affine=False, momentum=momentum).double().train(training)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    return bn


def test_a_pointwise_conv_takes_its_two_gradients_in_one_operation():
    """oneDNN's backward pass for both (a GPU: one launch), not a flipped kernel's forward conv and a weight
    gradient; the gradients are still the conv's."""
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    out = conv_chain(x, [ConvShape((0, 0), (1, 1), 1)], [weight])
    grad = torch.randn_like(out)
    ops = count_kernel_ops(lambda: torch.autograd.grad(out, [x, weight], grad, retain_graph=True))
    assert ops.counts == {"convolution_backward": 1}
    got, want = torch.autograd.grad(out, [x, weight], grad), torch.autograd.grad(F.conv2d(x, weight), [x, weight], grad)
    for got_grad, want_grad in zip(got, want, strict=True):
        torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", CHAINS)
def test_the_native_route_gives_every_convs_gradients_from_one_call(name: str):
    """The route every conv takes off the CPU (and a pointwise one on it): one `convolution_backward` per
    conv, for the input's and weight's gradients, or the input's alone without the input at hand (a
    stand-in of its size), checked against autograd through F.conv2d for each conv of the chain."""
    x, shapes, weights = chain_of(name)
    for shape, weight in zip(shapes, weights, strict=True):
        out = F.conv2d(x, weight, None, 1, shape.padding, shape.dilation, shape.groups)
        grad = torch.randn_like(out)
        want_x, want_weight = torch.autograd.grad(out, [x, weight], grad)
        with KernelOps() as ops:
            got_x, got_weight = shape.native_gradients(grad, x.detach(), weight.detach(), True, True)
        assert ops.counts == {"convolution_backward": 1}
        input_only, none = shape.native_gradients(grad, None, weight.detach(), True, False)
        assert none is None
        for got, want in ((got_x, want_x), (got_weight, want_weight), (input_only, want_x)):
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        x = out.detach().requires_grad_()


def normalized_pair(name: str, training: bool = True) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d, torch.Tensor]:
    """The BN before the chain CHAINS[name], a copy, and a random input of mean 0.3 and scale 2 per channel."""
    channels = CHAINS[name][0]
    bn = random_batch_norm(channels, 0.3, training)
    z = (torch.randn(3, channels, 7, 6, dtype=torch.float64) * 2 + 0.3).requires_grad_()
    return bn, copy.deepcopy(bn), z


def after_pair(name: str, training: bool = True) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d, torch.Tensor]:
    """The BN after the chain CHAINS[name], a copy, and a random per-channel scale requiring a gradient."""
    channels = CHAINS[name][1][-1][0]
    bn = random_batch_norm(channels, 0.2, training)
    return bn, copy.deepcopy(bn), torch.rand(channels, dtype=torch.float64).add_(0.5).requires_grad_()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "with_before"), [("sep-conv-half", True), ("three-convs", True),
                                                   ("dilated-5x5", False), ("non-square", False)])
def test_a_normalized_chain_is_the_modules_relu_and_convs_with_every_gradient(name: str, with_before: bool,
                                                                              mode: str):
    """scale * after(chain(relu(before(z)))) against the modules, torch.relu and F.conv2d one after the
    other: output, every BN's running statistics, and every subset of gradients, with and without a
    differentiable backward pass, in training and in evaluation mode (SDARTS-ADV's attack)."""
    before, before_module, z = normalized_pair(name, MODES[mode])
    after, after_module, scale = after_pair(name, MODES[mode])
    _, shapes, weights = chain_of(name)
    tally = BatchNormTally()
    out = normalized_chain(z, shapes, weights, after, scale, before if with_before else None, tally)
    tally.apply()
    x = torch.relu(before_module(z)) if with_before else z
    expected = scale.view(1, -1, 1, 1) * after_module(one_conv_after_the_other(x, shapes, weights))
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    for bn, module in ((before, before_module), (after, after_module)):
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(getattr(bn, buffer), getattr(module, buffer), rtol=1e-12, atol=0)
    grad = torch.randn_like(out)
    inputs = [z, scale, *weights]
    for asked, create_graph in itertools.product((inputs, [z], [scale], weights, weights[:1]), (False, True)):
        got = torch.autograd.grad(out, asked, grad, retain_graph=True, create_graph=create_graph)
        want = torch.autograd.grad(expected, asked, grad, retain_graph=True)
        for got_grad, want_grad in zip(got, want, strict=True):
            torch.testing.assert_close(got_grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_before", [True, False])
def test_a_normalized_chain_keeps_its_input_and_nothing_else_of_its_size(with_before: bool, mode: str):
    """Neither the chain's input (after `before`), the inner outputs, nor the last BN's input or output."""
    before, _, z = normalized_pair("sep-conv-half", MODES[mode])
    after, _, scale = after_pair("sep-conv-half", MODES[mode])
    _, shapes, weights = chain_of("sep-conv-half")
    with kept_tensors() as kept:
        normalized_chain(z, shapes, weights, after, scale, before if with_before else None, BatchNormTally())
    batched = [t for t in kept if t.dim() == 4 and t.shape[0] == z.shape[0]]
    assert len(batched) == 1 and batched[0].data_ptr() == z.data_ptr()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("with_before", [True, False])
def test_a_normalized_chain_has_the_second_derivatives_of_the_composition(with_before: bool, mode: str):
    """Finite differences of the differentiable backward pass (in training mode the batch statistics depend
    on z too; evaluation mode: the Hessian analysis)."""
    _, shapes, weights = chain_of("sep-conv-half")
    z = normalized_pair("sep-conv-half")[2][:, :, :4, :3].detach().requires_grad_()
    scale = after_pair("sep-conv-half")[2]

    def chained(z_: torch.Tensor, scale_: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)  # the same running statistics on every call
        before = random_batch_norm(z_.shape[1], 0.1, MODES[mode]) if with_before else None
        after = random_batch_norm(w[-1].shape[0], 0.1, MODES[mode])
        return normalized_chain(z_, shapes, list(w), after, scale_, before, BatchNormTally())

    assert torch.autograd.gradgradcheck(chained, (z, scale, *weights))


def test_frozen_restores_the_parameters_when_the_block_fails():
    net = nn.Linear(2, 2)
    net.bias.requires_grad_(False)
    with pytest.raises(RuntimeError, match="boom"), frozen(net.parameters()):
        assert not any(p.requires_grad for p in net.parameters())
        raise RuntimeError("boom")
    assert net.weight.requires_grad and not net.bias.requires_grad


@pytest.mark.parametrize(("conv", "expected"), [
    (nn.Conv2d(4, 4, 5, padding=4, dilation=2, groups=4, bias=False), True),
    (nn.Conv2d(4, 4, 1, bias=False), True),
    (nn.Conv2d(4, 4, 3, padding=1), False),  # a bias
    (nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False), False),  # strided
    (nn.Conv2d(4, 4, 3, padding=3, bias=False), False),  # padded beyond the kernel's reach
    (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect", bias=False), False),
    (nn.Conv2d(4, 4, 3, padding="same", bias=False), False),
])
def test_which_convs_can_join_a_chain(conv: nn.Module, expected: bool):
    assert chainable(conv) is expected


def _scaled_pair(channels: int = 3, training: bool = True) -> tuple[nn.BatchNorm2d, nn.BatchNorm2d]:
    bn = random_batch_norm(channels, 0.3, training)
    return bn, copy.deepcopy(bn)


def scale_of(weight: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """A one-element mixing weight as `bn`'s per-channel scale."""
    return channel_scales(weight.reshape(1), [0], [bn])[0]


def test_channel_scales_repeat_each_weight_and_sum_their_gradients_back():
    """Five scales of two widths and two dtypes from a 3x4 weight table: each is its weight repeated, in its
    BN's dtype, contiguous; the table's gradient is, at each position, the sum of its scale's gradient (the
    chain rule written out), zero elsewhere."""
    weights = torch.rand(3, 4, requires_grad=True)
    positions = [7, 0, 11, 5, 2]
    bns = [nn.BatchNorm2d(width, affine=False).to(dtype) for width, dtype in
           [(3, torch.float32), (5, torch.float32), (3, torch.float64), (3, torch.float32), (5, torch.float32)]]
    scales = channel_scales(weights, positions, bns)
    grads = [torch.randn(bn.num_features, dtype=scale.dtype) for bn, scale in zip(bns, scales, strict=True)]
    expected_grad = torch.zeros(12)
    for p, bn, scale, grad in zip(positions, bns, scales, grads, strict=True):
        assert scale.dtype == bn.running_mean.dtype and scale.is_contiguous()
        torch.testing.assert_close(scale, weights.detach().flatten()[p].to(scale.dtype).repeat(bn.num_features))
        expected_grad[p] = grad.sum().item()
    (got,) = torch.autograd.grad(scales, weights, grads)
    torch.testing.assert_close(got.flatten(), expected_grad)


def test_channel_scales_take_as_many_operations_for_one_op_as_for_many():
    """Forward and backward: a few operations per width, none per scale (kernel launches on a GPU)."""
    def run(count: int) -> int:
        weights = torch.rand(14, 8, requires_grad=True)
        bns = [nn.BatchNorm2d(16, affine=False) for _ in range(count)]
        grads = [torch.randn(16) for _ in range(count)]
        return count_kernel_ops(
            lambda: torch.autograd.grad(channel_scales(weights, list(range(count)), bns), weights, grads)).total
    assert run(56) == run(1)


def test_a_tally_moves_and_counts_as_each_modules_forward_would():
    """Three BNs of two momenta, two batches each: the statistics handed to the tally are the batch's mean
    and unbiased variance, computed here by torch.var_mean; after each `apply` every buffer equals that of a
    module that saw the same batches."""
    bns = [random_batch_norm(3, momentum, training=True) for momentum in (0.1, 0.1, 0.3)]
    modules = copy.deepcopy(bns)
    tally = BatchNormTally()
    for _ in range(2):
        for bn, module in zip(bns, modules, strict=True):
            x = torch.randn(4, 3, 5, 5, dtype=torch.float64)
            var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=True)
            tally.move(bn, mean, var)
            tally.count(bn)
            module(x)
        tally.apply()
        for bn, module in zip(bns, modules, strict=True):
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                torch.testing.assert_close(getattr(bn, buffer), getattr(module, buffer), rtol=1e-12, atol=0)


LAYOUTS = {"nchw": torch.contiguous_format, "channels-last": torch.channels_last}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_scaled_batch_norm_is_the_weighted_module_with_its_statistics_and_gradients(layout: str, mode: str):
    bn, module = _scaled_pair(training=MODES[mode])
    z = torch.randn(4, 3, 5, 5, dtype=torch.float64).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()
    # a float32 mixing weight on a float64 network: the product is float64, as the module's would be
    weight = torch.tensor(0.7, dtype=torch.float32, requires_grad=True)
    tally = BatchNormTally()
    out, expected = scaled_batch_norm(z, scale_of(weight, bn), bn, tally), weight * module(z)
    tally.apply()
    assert out.dtype == expected.dtype == torch.float64
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn, buffer), getattr(module, buffer), rtol=1e-12, atol=0)
    grad = torch.randn_like(out)
    # create_graph takes the differentiable backward pass: its first derivatives must be right too
    for asked, create_graph in itertools.product(([z, weight], [z], [weight]), (False, True)):
        got = torch.autograd.grad(out, asked, grad, retain_graph=True, create_graph=create_graph)
        want = torch.autograd.grad(expected, asked, grad, retain_graph=True)
        for got_grad, want_grad in zip(got, want, strict=True):
            torch.testing.assert_close(got_grad, want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scaled_batch_norm_keeps_its_input_not_its_output(layout: str):
    """One tensor of the input's size: the input itself, or the NCHW copy a narrow channels-last BN runs on."""
    bn, _ = _scaled_pair()
    z = torch.randn(4, 3, 5, 5, dtype=torch.float64).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()
    weight = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    with kept_tensors() as kept:
        scaled_batch_norm(z, scale_of(weight, bn), bn, BatchNormTally())
    full_size = [t for t in kept if t.numel() == z.numel()]
    assert len(full_size) == 1 and full_size[0].is_contiguous()
    if layout == "nchw":
        assert full_size[0].data_ptr() == z.data_ptr()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_scaled_batch_norm_has_the_second_derivatives_of_the_module(layout: str, mode: str):
    """Finite differences of the differentiable backward pass (in training mode the batch statistics depend
    on z too)."""
    def scaled(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(1)  # the same running statistics on every call
        bn = _scaled_pair(channels=2, training=MODES[mode])[0]
        return scaled_batch_norm(z, scale_of(weight, bn), bn, BatchNormTally())

    z = torch.randn(3, 2, 3, 2, dtype=torch.float64).contiguous(memory_format=LAYOUTS[layout]).requires_grad_()
    weight = torch.tensor(1.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(scaled, (z, weight))


@pytest.mark.parametrize(("make", "plain", "plain_training"), [
    (lambda: nn.BatchNorm2d(3, affine=False), True, True),
    (lambda: nn.BatchNorm2d(3, affine=False).eval(), True, False),  # running statistics normalise
    (lambda: nn.BatchNorm2d(3), False, False),  # affine
    (lambda: nn.BatchNorm2d(3, affine=False, momentum=None), False, False),  # cumulative average
    (lambda: nn.BatchNorm2d(3, affine=False, track_running_stats=False), False, False),
    (lambda: type("Sub", (nn.BatchNorm2d,), {})(3, affine=False), False, False),  # e.g. the global BN
])
def test_which_batch_norms_are_plain(make: Callable[[], nn.Module], plain: bool, plain_training: bool):
    assert plain_batch_norm(make()) is plain
    assert plain_training_batch_norm(make()) is plain_training


@pytest.mark.parametrize(("channels", "kernel_layout"), [(4, "nchw"), (16, "channels-last")])
def test_a_narrow_channels_last_batch_norm_runs_in_nchw_with_the_modules_numbers(channels: int,
                                                                                 kernel_layout: str):
    """Fewer than 16 channels: forward and backward kernels get NCHW tensors, the caller gets channels-last
    output and input gradient, and every number is the module's on the tensor as it is."""
    bn = nn.BatchNorm2d(channels, affine=False).double()
    module = copy.deepcopy(bn)
    x = torch.randn(3, channels, 4, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    grad = torch.randn(3, channels, 4, 5, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    aten = torch.ops.aten
    with KernelLayouts({aten.native_batch_norm: (0,), aten.native_batch_norm_backward: (0, 1)}) as layouts:
        out = batch_norm_in_fast_layout(bn, x)
        (got,) = torch.autograd.grad(out, x, grad)
    assert set(layouts.seen) == {kernel_layout}
    expected = module(x)
    (want,) = torch.autograd.grad(expected, x, grad)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for buffer in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn, buffer), getattr(module, buffer), rtol=1e-12, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert got.is_contiguous(memory_format=torch.channels_last)


def test_a_relayout_moves_the_gradient_back_and_differentiates_twice():
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    out = relayout(x, torch.contiguous_format, torch.channels_last)
    assert out.is_contiguous() and torch.equal(out, x)
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    assert grad.is_contiguous(memory_format=torch.channels_last)
    assert torch.autograd.gradgradcheck(lambda t: relayout(t, torch.contiguous_format, torch.channels_last) ** 3,
                                        (x,))
