"""The fast supernet computes the numbers of the straightforward one, for every registered method.

The oracle is the reference `Supernet` (one module call per op and edge, NCHW, nothing shared), built from
the same seed so both hold identical weights. The cases come from the method registry through the bench's
variants, so a newly registered method is covered as soon as it has a bench variant (which
test_bench.py requires). Tolerances are relative to each tensor's largest entry: 1e-5 in fp32, 1e-10 in
fp64 (fp32: see the test that says why some gradients get a bound from the reference's own error).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from space_support import KernelLayouts, bound, cnn_cells

from pipeline.config import SearchTraining
from pipeline.methods import create_method, list_methods
from pipeline.methods.darts import DartsMethod
from pipeline.space.base import ArchWeights
from pipeline.space.fast_conv import conv_chain
from pipeline.space.fast_supernet import (
    SUPERNETS,
    FastSupernet,
    factorized_reduce,
    read_pixels,
    reads_one_pixel_in_stride,
    supernet_class,
)
from pipeline.space.primitives import PRIMITIVES, FactorizedReduce
from pipeline.space.supernet import Supernet
from pipeline.stages.bench import Harness, bench_variants, build_harness

pytestmark = pytest.mark.usefixtures("one_thread")

REGISTERED = [name for name, config in bench_variants().items() if config.algorithm in list_methods()]
SIZE = {"layers": 3, "channels": 8, "batch": 4, "image_size": 8}


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def assert_same(fast: torch.Tensor | None, reference: torch.Tensor | None, rel: float, what: str,
                floor: float = 1e-30) -> None:
    """Max error within `rel` of the reference's largest entry (at least `floor`)."""
    assert (fast is None) == (reference is None), f"{what}: gradient present on one path only"
    if fast is None or reference is None:
        return
    fast, reference = fast.detach(), reference.detach()
    unset = reference.isnan()  # e.g. random search's scores of candidates not evaluated yet
    assert torch.equal(fast.isnan(), unset), f"{what}: NaN in different places"
    fast, reference = fast[~unset], reference[~unset]
    if not reference.numel():
        return
    scale = max(reference.abs().max().item(), floor)
    error = (fast - reference).abs().max().item()
    assert error <= rel * scale, f"{what}: max error {error:.3g} vs largest entry {scale:.3g}"


# The device the harness-built comparisons run on: the CPU here and in CI; `.ci/gpu_check.sh` runs them on a
# GPU (the fast path's off-CPU routes, which only a GPU exercises) with PIPELINE_TEST_DEVICE=cuda.
DEVICE = torch.device(os.environ.get("PIPELINE_TEST_DEVICE", "cpu"))


def harness(variant: str, supernet: str, recompute: bool = False) -> Harness:
    torch.manual_seed(0)
    return build_harness(bench_variants()[variant], nodes=4, supernet=supernet, recompute=recompute,
                         device=DEVICE, **SIZE)


def logits_and_gradients(h: Harness, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor | None]]:
    """One forward/backward on the method's (possibly sampled) mixing weights, in the net's mode."""
    torch.manual_seed(seed)
    arch = h.method.forward_weights()
    logits = h.net(h.valid[0], arch)
    loss = h.ctx.criterion(logits, h.valid[1]) + logits.square().mean()  # a loss using every logit
    inputs = dict(h.net.named_parameters()) | {f"method.{n}": p for n, p in h.method.named_parameters()}
    grads = torch.autograd.grad(loss, list(inputs.values()), allow_unused=True)
    return logits, dict(zip(inputs, grads, strict=True))


def test_a_key_selects_each_supernet_and_fast_is_the_default():
    assert SearchTraining().supernet == "fast"
    assert set(SUPERNETS) == set(SearchTraining.model_fields["supernet"].annotation.__args__)
    assert supernet_class("fast") is FastSupernet and supernet_class("reference") is Supernet
    with pytest.raises(ValueError, match=r"search\.supernet.*'nope'"):
        supernet_class("nope")


@pytest.mark.parametrize("variant", REGISTERED)
def test_logits_and_every_gradient_agree_in_fp64(variant: str):
    with default_dtype(torch.float64):
        fast_logits, fast_grads = logits_and_gradients(harness(variant, "fast"), seed=1)
        reference = harness(variant, "reference")
        ref_logits, ref_grads = logits_and_gradients(reference, seed=1)
    assert_same(fast_logits, ref_logits, 1e-10, "logits")
    assert list(fast_grads) == list(ref_grads)
    assert any(name.startswith("method.") for name in ref_grads) or not reference.method.arch_parameters()
    for name in ref_grads:
        assert_same(fast_grads[name], ref_grads[name], 1e-10, f"d loss / d {name}")


@pytest.mark.parametrize("variant", REGISTERED)
def test_fp32_is_as_close_to_the_exact_numbers_as_the_reference(variant: str):
    """fp32 logits agree within 1e-5. A few fp32 gradients are ill-conditioned on random weights (a BN
    backward that cancels almost exactly): any change of summation order, even the reference's own in
    channels-last, moves them by up to 1e-2. So each gradient must be within 1e-5 of the exact value
    (the same fp32 network evaluated in fp64), or no further from it than 10x the reference's own error."""
    fast_logits, fast_grads = logits_and_gradients(harness(variant, "fast"), seed=1)
    ref_logits, ref_grads = logits_and_gradients(harness(variant, "reference"), seed=1)
    exact = harness(variant, "reference")
    exact.net.double()
    exact.method.double()
    exact.valid = (exact.valid[0].double(), exact.valid[1])
    _, exact_grads = logits_and_gradients(exact, seed=1)
    assert_same(fast_logits, ref_logits, 1e-5, "logits")
    for name, truth in exact_grads.items():
        if truth is None:
            assert fast_grads[name] is None and ref_grads[name] is None
            continue
        fast_error = (fast_grads[name].double() - truth).abs().max().item()
        ref_error = (ref_grads[name].double() - truth).abs().max().item()
        bound = max(1e-5 * truth.abs().max().item(), 10 * ref_error)
        assert fast_error <= bound, f"d loss / d {name}: fast error {fast_error:.3g}, reference {ref_error:.3g}"


@pytest.mark.parametrize("variant", REGISTERED)
def test_whole_search_steps_agree(variant: str):
    """Architecture step (second order, SDARTS-ADV's eval-mode attack, sampling) and weight step, twice:
    every weight, BN running statistic and architecture parameter ends equal (fp64), on the fast path and
    on the fast path recomputing its cells (`search.recompute`; BN statistics must move once per forward,
    second-order DARTS' virtual weights must be the ones recomputed)."""
    with default_dtype(torch.float64):
        runs = {"fast": harness(variant, "fast"), "fast+recompute": harness(variant, "fast", recompute=True),
                "reference": harness(variant, "reference")}
        for h in runs.values():
            torch.manual_seed(2)
            for _ in range(2):
                h.step()
    reference = runs.pop("reference")
    for kind, fast in runs.items():
        for module in ("net", "method"):
            fast_state, ref_state = getattr(fast, module).state_dict(), getattr(reference, module).state_dict()
            assert list(fast_state) == list(ref_state)
            for name, value in ref_state.items():
                what = f"{kind}: {module}.{name} after two steps"
                if torch.is_tensor(value) and value.is_floating_point():
                    # floor 1: a BN running mean of a zero-mean input is a rounding-level zero on both paths
                    assert_same(fast_state[name], value, 1e-10, what, floor=1.0)
                elif torch.is_tensor(value):
                    assert torch.equal(fast_state[name], value), what
                else:
                    assert fast_state[name] == value, what


@pytest.mark.parametrize("variant", REGISTERED)
def test_eval_mode_logits_agree(variant: str):
    """Eval mode uses each edge's own BN running statistics, which a few training steps make differ."""
    with default_dtype(torch.float64):
        outputs = []
        for kind in ("fast", "reference"):
            h = harness(variant, kind)
            torch.manual_seed(3)
            h.step()
            h.net.eval()
            with torch.no_grad():
                outputs.append(h.net(h.valid[0], h.method.eval_weights()))
    assert_same(outputs[0], outputs[1], 1e-10, "eval logits")


def test_eval_mode_gradients_agree_in_fp64():
    """Evaluation mode as SDARTS-ADV's attack and the Hessian analysis run it: every BN normalises by its own
    running statistics (a training step first makes them differ from 0 and 1 and between edges)."""
    with default_dtype(torch.float64):
        results = []
        for kind in ("fast", "reference"):
            h = harness("darts_1st", kind)
            h.step()
            h.net.eval()
            results.append(logits_and_gradients(h, seed=2))
    (fast_logits, fast_grads), (ref_logits, ref_grads) = results
    assert_same(fast_logits, ref_logits, 1e-10, "eval logits")
    for name in ref_grads:
        assert_same(fast_grads[name], ref_grads[name], 1e-10, f"eval d loss / d {name}")


def test_twenty_step_search_derives_the_same_genotype():
    """A 20-step fp64 DARTS search from one seed: same architecture parameters and genotype on both paths."""
    with default_dtype(torch.float64):
        results = []
        for kind in ("fast", "reference"):
            h = harness("darts_1st", kind)
            for _ in range(20):
                h.step()
            results.append((h.method.derive(), [p.detach().clone() for p in h.method.arch_parameters()]))
    (fast_genotype, fast_alphas), (ref_genotype, ref_alphas) = results
    assert fast_genotype == ref_genotype
    for fast_alpha, ref_alpha in zip(fast_alphas, ref_alphas, strict=True):
        assert_same(fast_alpha, ref_alpha, 1e-10, "alphas after 20 steps")


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_both_stems_and_partial_channels_agree(stem: str):
    """The ImageNet stem and PC-DARTS' partial channels with edge weights, on hand-made mixing weights
    that leave some ops out (exact zeros) and some edges with no op at all."""
    space = bound("darts", nodes=3)
    method = create_method(DartsMethod(algorithm="darts"), space, SearchTraining())
    with default_dtype(torch.float64):
        nets = []
        for cls in (FastSupernet, Supernet):
            torch.manual_seed(0)
            nets.append(cls(channels=8, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES, 3), stem=stem,
                            partial_k=2))
        x = torch.randn(2, 3, 32, 32)
        weights = method.forward_weights()
        normal = weights["normal"].detach().clone()
        normal[0, 4:] = 0.0
        normal[1, 1:] = 0.0  # edge 1: only `none`, so nothing is computed
        normal.requires_grad_()
        edge_scale = torch.rand(space.cell("normal").num_edges, requires_grad=True)
        weights = ArchWeights({"normal": normal, "reduce": weights["reduce"]}, {"normal": edge_scale})
        results = []
        for net in nets:
            logits = net(x, weights)
            inputs = [normal, edge_scale, *net.parameters()]
            results.append((logits, torch.autograd.grad(logits.square().sum(), inputs, allow_unused=True)))
    (fast_logits, fast_grads), (ref_logits, ref_grads) = results
    assert_same(fast_logits, ref_logits, 1e-10, "logits")
    for fast_grad, ref_grad in zip(fast_grads, ref_grads, strict=True):
        assert_same(fast_grad, ref_grad, 1e-10, "gradient")


@pytest.mark.parametrize("partial_k", [1, 2])
def test_every_convolution_of_the_fast_path_runs_channels_last(partial_k: int):
    """Forward and backward, PC-DARTS' partial channels too: a slice of a channels-last state is not
    channels-last, and ops run on it fell back to NCHW kernels (as slow as the reference's step)."""
    net = FastSupernet(channels=8, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES, 3), partial_k=partial_k)
    x = torch.randn(2, 3, 16, 16)
    method = create_method(DartsMethod(algorithm="darts"), bound("darts", nodes=3), SearchTraining())
    aten = torch.ops.aten
    with KernelLayouts({aten.convolution: (0,), aten.convolution_backward: (0, 1)}) as layouts:
        net(x, method.forward_weights()).sum().backward()
    # strided: the subsample a reduction edge's dilated conv reads (`read_pixels`), a view by design
    assert layouts.seen and set(layouts.seen) - {"strided"} == {"channels-last"}


def test_every_batch_norm_of_the_fast_path_gets_dense_channels_last_tensors():
    """At 16 channels and more, forward and backward: a BN kernel given a strided gradient (the concat's
    backward hands each node a channel slice of the cell's gradient) runs ~10x slower on a CPU."""
    net = FastSupernet(channels=16, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES, 3))
    method = create_method(DartsMethod(algorithm="darts"), bound("darts", nodes=3), SearchTraining())
    aten = torch.ops.aten
    with KernelLayouts({aten.native_batch_norm: (0,), aten.native_batch_norm_backward: (0, 1)}) as layouts:
        net(torch.randn(2, 3, 8, 8), method.forward_weights()).sum().backward()
    assert layouts.seen and set(layouts.seen) == {"channels-last"}


def test_every_gradient_sum_and_relu_backward_of_the_fast_path_runs_channels_last():
    """Forward and backward: a strided subsample's gradient built by autograd's slice backward is NCHW, and
    adding it to a state's channels-last gradients, or a ReLU's backward on the sum, runs 3-10x slower."""
    net = FastSupernet(channels=8, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES, 3))
    method = create_method(DartsMethod(algorithm="darts"), bound("darts", nodes=3), SearchTraining())
    aten = torch.ops.aten
    with KernelLayouts({aten.add: (0, 1), aten.threshold_backward: (0, 1)}) as layouts:
        net(torch.randn(2, 3, 16, 16), method.forward_weights()).sum().backward()
    assert layouts.seen and set(layouts.seen) == {"channels-last"}


def test_under_bf16_autocast_the_fast_path_errs_like_the_reference():
    """`search.amp` (bf16 autocast; on a CPU here, as on CUDA): the backward passes that recompute forward
    convs must cast as the forward passes did (they failed on fp32 weights against bf16 inputs). The
    oracle is the reference in fp32: the fast path's bf16 logits and gradients are no further from it
    than 3x the reference's own bf16 error (measured up to 1.7x: the two round differently)."""
    method = create_method(DartsMethod(algorithm="darts"), bound("darts", nodes=3), SearchTraining())
    x = torch.randn(8, 3, 16, 16)

    def run(cls: type[Supernet], amp: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = cls(channels=16, num_classes=5, layers=3, cells=cnn_cells(PRIMITIVES, 3))
        weights = method.forward_weights()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            logits = net(x, weights)
        assert logits.dtype == (torch.bfloat16 if amp else torch.float32)
        inputs = [weights["normal"], weights["reduce"], *net.parameters()]
        return [logits.float(), *torch.autograd.grad(logits.float().square().sum(), inputs)]

    exact, reference, fast = run(Supernet, False), run(Supernet, True), run(FastSupernet, True)
    for want, ref, got in zip(exact, reference, fast, strict=True):
        assert got.dtype == torch.float32
        assert (got - want).norm() <= 3 * (ref - want).norm() + 1e-6 * want.norm()


def test_the_fast_path_keeps_the_reference_layout():
    """Same modules and state-dict keys: checkpoints, DrNAS widening and functional_call work on both."""
    kwargs = {"channels": 4, "num_classes": 3, "layers": 3, "cells": cnn_cells(PRIMITIVES)}
    fast, reference = FastSupernet(**kwargs), Supernet(**kwargs)
    assert [(n, p.shape) for n, p in fast.state_dict().items()] == [
        (n, p.shape) for n, p in reference.state_dict().items()
    ]
    assert [type(m) for m in fast.modules()][1:] == [type(m) for m in reference.modules()][1:]


@pytest.mark.parametrize(("kernel", "stride", "padding", "groups", "size"), [
    (3, 2, 2, 5, 8), (5, 2, 4, 5, 7), (3, 2, 0, 5, 9), (3, 3, 3, 1, 10), (5, 2, 4, 1, 6),
])
def test_a_conv_reading_one_pixel_in_stride_is_the_plain_conv_of_that_subsample(kernel, stride, padding, groups,
                                                                                 size):
    """The dilated (dilation = stride) convs of reduction edges, against torch's strided dilated conv."""
    with default_dtype(torch.float64):
        conv = torch.nn.Conv2d(5, 5, kernel, stride=stride, padding=padding, dilation=stride, groups=groups,
                               bias=False)
        x = torch.randn(2, 5, size, size + 1, requires_grad=True)
        assert reads_one_pixel_in_stride(conv)
        direct = conv(x)
        pixels, shape = read_pixels(conv, x)
        fast = conv_chain(pixels, [shape], [conv.weight])
        assert fast.shape == direct.shape
        torch.testing.assert_close(fast, direct, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(direct)
        inputs = (x, conv.weight)
        fast_grads, direct_grads = (torch.autograd.grad(out, inputs, grad) for out in (fast, direct))
        for fast_grad, direct_grad in zip(fast_grads, direct_grads, strict=True):
            torch.testing.assert_close(fast_grad, direct_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("conv", [
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, dilation=2, bias=False),  # padding not a multiple of the stride
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False),  # not dilated
    torch.nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False),  # not strided
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, padding_mode="reflect", bias=False),
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2),  # with a bias
    torch.nn.Conv2d(4, 4, 3, stride=2, padding=6, dilation=2, bias=False),  # padded beyond its reach
], ids=["odd-padding", "undilated", "unstrided", "reflect", "bias", "beyond-reach"])
def test_other_convs_read_pixels_off_the_stride_grid(conv):
    assert not reads_one_pixel_in_stride(conv)


@pytest.mark.parametrize("training", [False, True], ids=["eval-mode", "train-mode"])
def test_second_derivatives_in_the_architecture_agree_in_fp64(training: bool):
    """d^2 L / d alpha^2 times a vector: in evaluation mode as the Hessian analysis computes it, and in
    training mode, where batch statistics make the fast path's BN of an architecture term differentiate
    its own backward pass."""
    products = []
    with default_dtype(torch.float64):
        for supernet in ("fast", "reference"):
            h = harness("darts_1st", supernet)
            h.net.train(training)
            params = h.method.arch_parameters()
            loss = h.ctx.criterion(h.net(h.valid[0], h.method.forward_weights()), h.valid[1])
            grads = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, create_graph=True)])
            vector = torch.linspace(-1, 1, grads.numel())
            products.append(torch.cat([g.flatten() for g in torch.autograd.grad(grads, params, vector)]))
    assert products[0].abs().max() > 0
    assert_same(products[0], products[1], 1e-10, "Hessian-vector product")


@pytest.mark.parametrize(("height", "width"), [(8, 8), (7, 9), (5, 6)])
def test_factorized_reduce_reads_its_shifted_subsample_as_the_module_does(height: int, width: int):
    """Against the module's own padded-shift computation, odd sizes included (the shift runs off the edge)."""
    with default_dtype(torch.float64):
        op = FactorizedReduce(3, 4, affine=False)
        twin = copy.deepcopy(op)
        x = torch.randn(2, 3, height, width).relu().requires_grad_()
        fast, direct = factorized_reduce(op, x), twin.reduce_rectified(x)
        assert fast.shape == direct.shape == (2, 4, (height + 1) // 2, (width + 1) // 2)
        torch.testing.assert_close(fast, direct, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(op.bn.running_var, twin.bn.running_var, rtol=1e-12, atol=1e-12)
        grad = torch.randn_like(direct)
        fast_grads = torch.autograd.grad(fast, [x, op.conv_1.weight, op.conv_2.weight], grad)
        direct_grads = torch.autograd.grad(direct, [x, twin.conv_1.weight, twin.conv_2.weight], grad)
        for fast_grad, direct_grad in zip(fast_grads, direct_grads, strict=True):
            torch.testing.assert_close(fast_grad, direct_grad, rtol=1e-12, atol=1e-12)
