"""DrNAS: Dirichlet samples and their gradients, the anchor regularisers, pruning, widening (weights and
momentum), and a progressive search that crosses a stage boundary and resumes exactly."""

import copy

import pytest
import torch
from search_e2e import prepare_digits, search_via_cli, tiny_params
from space_support import bound, cnn_cells
from torch import nn

from pipeline.config import SearchTraining, load_params
from pipeline.errors import ConfigError
from pipeline.methods import StepContext, create_method
from pipeline.methods.drnas import DrnasMethod, DrnasStage, concentration
from pipeline.search.loop import SearchJob, run_search
from pipeline.space.primitives import PRIMITIVES, PRIMITIVES_NO_NONE
from pipeline.space.supernet import MixedOp, Supernet
from pipeline.space.widen import EdgeMapping, draw_edge_mapping, widen_mixed_op, widen_optimizer, widen_tensor

SPACE = bound("darts_no_none", nodes=2)
STAGES = [{"epochs": 1, "partial_k": 4, "keep_ops": 7}, {"epochs": 2, "partial_k": 2, "keep_ops": 4}]


pytestmark = pytest.mark.usefixtures("one_thread")


def _method(**options):
    torch.manual_seed(0)
    config = DrnasMethod(algorithm="drnas", space="darts_no_none", **options)
    return create_method(config, SPACE, SearchTraining(nodes=2))


def _random_eta(method):
    with torch.no_grad():
        for eta in method.arch_parameters():
            eta.normal_()


def _on_simplex(weights):
    return bool((weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(len(weights))))


def test_samples_lie_on_the_simplex_differ_per_draw_and_pass_gradients_to_eta():
    method = _method()
    first, second = method.forward_weights(), method.forward_weights()
    assert _on_simplex(first["normal"]) and _on_simplex(first["reduce"])
    assert not torch.equal(first["normal"], second["normal"])
    (first["normal"] * torch.randn_like(first["normal"])).sum().backward()
    assert method.eta_normal.grad is not None and bool(method.eta_normal.grad.abs().gt(0).all())


def test_l2_anchor_gradient_is_lambda_eta():
    method = _method(regularizer="l2", reg_lambda=0.01)
    _random_eta(method)
    method.regularization().backward()
    for eta in method.arch_parameters():
        assert torch.allclose(eta.grad, 0.01 * eta.detach())


def test_l2_anchor_steps_like_the_released_codes_adam_weight_decay():
    """The released code's anchor is Adam(weight_decay=lambda) on eta: one step of ours with reg_lambda=lambda and
    no weight decay must land on the same eta as torch's Adam with weight_decay=lambda and no anchor term."""
    lam = 0.1  # large, so that a factor 2 in the anchor shows through Adam's normalisation
    ours, code = _method(regularizer="l2", reg_lambda=lam), _method(regularizer="l2", reg_lambda=0.0)
    _random_eta(ours)
    code.load_state_dict(ours.state_dict())
    signals = [[torch.randn_like(eta) for eta in ours.arch_parameters()] for _ in range(5)]
    for method, decay in ((ours, 0.0), (code, lam)):
        optimizer = torch.optim.Adam(method.arch_parameters(), lr=0.1, betas=(0.5, 0.999), weight_decay=decay)
        for signal in signals:  # several steps: Adam's first step alone only sees the gradient's sign
            optimizer.zero_grad()
            loss = sum((s * eta).sum() for s, eta in zip(signal, method.arch_parameters(), strict=True))
            (loss + method.regularization()).backward()
            optimizer.step()
    for a, b in zip(ours.arch_parameters(), code.arch_parameters(), strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-9)


def test_kl_anchor_is_finite_and_vanishes_with_zero_gradient_at_beta_one():
    method = _method(regularizer="kl", reg_lambda=1.0)
    _random_eta(method)
    value = method.regularization()
    assert torch.isfinite(value) and float(value.detach()) > 0
    with torch.no_grad():
        for eta in method.arch_parameters():
            eta.zero_()  # beta = ELU(0) + 1 = 1: the prior itself
    value = method.regularization()
    value.backward()
    assert float(value.detach().abs()) < 1e-5
    assert all(float(eta.grad.abs().max()) < 1e-5 for eta in method.arch_parameters())


@pytest.mark.parametrize("derive", ["dirichlet_mean", "softmax"])
def test_derivation_weights_follow_the_configured_rule(derive):
    method = _method(derive=derive)
    _random_eta(method)
    eta = method.eta_normal.detach()
    beta = concentration(eta)
    expected = beta / beta.sum(-1, keepdim=True) if derive == "dirichlet_mean" else eta.softmax(-1)
    assert torch.allclose(method.mixing_probabilities()["normal"], expected)
    # Evaluation uses the Dirichlet mean whatever the derivation rule: deterministic, no sampling.
    assert torch.equal(method.eval_weights()["normal"], method.eval_weights()["normal"])
    assert torch.allclose(method.eval_weights()["normal"], beta / beta.sum(-1, keepdim=True))


def test_architecture_updates_wait_for_the_warmup_of_every_stage():
    method = _method(warmup_epochs=1, stages=[DrnasStage(epochs=2), DrnasStage(epochs=3)])
    assert [method.updates_architecture(e) for e in range(5)] == [False, True, False, True, True]
    assert [_method(warmup_epochs=2).updates_architecture(e) for e in range(3)] == [False, False, True]


def test_pruning_keeps_the_top_concentrations_and_pruned_ops_are_not_computed():
    method = _method(stages=[DrnasStage(epochs=1, partial_k=1, keep_ops=7)])
    favourites = [PRIMITIVES_NO_NONE.index(op) for op in ("skip_connect", "sep_conv_3x3", "max_pool_3x3")]
    with torch.no_grad():
        for eta in method.arch_parameters():
            eta[:, favourites] += 1.0
    method.prune(3)
    for mask in (method.mask_normal, method.mask_reduce):
        assert mask.sum(-1).tolist() == [3] * SPACE.cells[0].num_edges
        assert bool(mask[:, favourites].all())
    weights = method.forward_weights()
    assert _on_simplex(weights["normal"]) and bool((weights["normal"][~method.mask_normal] == 0).all())
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES_NO_NONE, 2),
                   stem_multiplier=1, in_channels=1)
    nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8), weights), torch.tensor([0, 1, 2, 0])).backward()
    for cell in net.cells:
        for edge in cell.edges:
            for name, op in zip(PRIMITIVES_NO_NONE, edge.ops, strict=True):
                grads = [p.grad for p in op.parameters()]
                if name == "sep_conv_3x3":
                    assert all(g is not None for g in grads)
                elif name != "skip_connect":  # FactorizedReduce on reduction edges has weights
                    assert all(g is None for g in grads), name
    assert bool((method.eta_normal.grad[~method.mask_normal] == 0).all())


def _copies_of_channels(x, mapping, old):
    """`x` whose channels old.. are copies of channels mapping[old..]: what widening assumes of its input."""
    return torch.cat([x[:, :old], x[:, mapping[old:]]], dim=1)


def _scale_input_columns(conv, counts):
    with torch.no_grad():
        conv.weight.mul_(counts.view(1, -1, 1, 1).to(conv.weight.dtype))


def test_widening_copies_channels_without_rescaling():
    torch.manual_seed(0)
    op = MixedOp(8, 1, PRIMITIVES, partial_k=4)  # 2 channels enter the ops, 4 after widening
    old = copy.deepcopy(op)
    mapping = torch.tensor([0, 1, 1, 1])
    widen_mixed_op(op, 2, EdgeMapping(mapping, (torch.tensor([0, 0]), torch.tensor([0, 0]))))
    assert op.partial_k == 2
    x = torch.randn(4, 2, 8, 8)
    wide = _copies_of_channels(x, mapping, 2)
    for name, narrow_op, wide_op in zip(PRIMITIVES, old.ops, op.ops, strict=True):
        out, wide_out = narrow_op(x), wide_op(wide)
        assert wide_out.shape == (4, 4, 8, 8)
        # Every new channel is an exact copy of the channel it was mapped from, through every layer.
        assert torch.equal(wide_out[:, 2:], wide_out[:, mapping[2:]]), name
        if name in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"):
            assert torch.equal(wide_out[:, :2], out), name  # channel-wise ops keep the old channels exactly
            continue
        # No Net2Net division: a pointwise conv now counts each old input channel once per copy.
        counts = torch.bincount(mapping, minlength=2)
        for conv in narrow_op.modules():
            if isinstance(conv, nn.Conv2d) and conv.groups == 1:
                _scale_input_columns(conv, counts)
        assert torch.allclose(wide_out[:, :2], narrow_op(x), atol=1e-5), name


def test_widened_depthwise_convs_and_batchnorms_keep_old_channels_bitwise():
    torch.manual_seed(0)
    op = MixedOp(8, 1, ["sep_conv_3x3"], partial_k=4)
    depthwise = copy.deepcopy(op.ops[0][0][1])
    bn = copy.deepcopy(op.ops[0][0][3])
    mapping = torch.tensor([0, 1, 0, 0])
    widen_mixed_op(op, 2, EdgeMapping(mapping, (torch.tensor([0, 0]), torch.tensor([0, 0]))))
    wide_depthwise, wide_bn = op.ops[0][0][1], op.ops[0][0][3]
    assert wide_depthwise.groups == wide_depthwise.in_channels == wide_depthwise.out_channels == 4
    assert wide_bn.num_features == 4 and wide_bn.running_mean.shape == (4,)
    x = torch.randn(4, 2, 8, 8)
    wide = _copies_of_channels(x, mapping, 2)
    assert torch.equal(wide_depthwise(wide)[:, :2], depthwise(x))
    assert torch.equal(wide_bn(wide)[:, :2], bn(x))


def test_widening_a_reduction_edge_maps_factorized_reduce_halves():
    torch.manual_seed(0)
    op = MixedOp(8, 2, ["skip_connect", "sep_conv_3x3"], partial_k=4)
    halves = (torch.tensor([0, 0]), torch.tensor([0, 0]))
    widen_mixed_op(op, 2, EdgeMapping(torch.tensor([0, 1, 0, 1]), halves))
    reduce = op.ops[0]
    assert torch.equal(reduce.conv_1.weight[1], reduce.conv_1.weight[0])
    assert torch.equal(reduce.conv_2.weight[:, 2:], reduce.conv_2.weight[:, :2])
    out = op(torch.randn(4, 8, 8, 8), torch.tensor([0.5, 0.5]), [0, 1])
    assert out.shape == (4, 8, 4, 4)
    assert op.bypass is not None


def test_widening_moves_momentum_buffers_with_the_mapping_into_the_same_optimizer():
    torch.manual_seed(0)
    op = MixedOp(8, 1, ["sep_conv_3x3", "max_pool_3x3"], partial_k=4)
    optimizer = torch.optim.SGD(op.parameters(), lr=0.1, momentum=0.9)
    op(torch.randn(4, 8, 8, 8), torch.tensor([0.5, 0.5]), [0, 1]).square().mean().backward()
    optimizer.step()
    old_params = list(op.parameters())
    old_buffers = [optimizer.state[p]["momentum_buffer"].clone() for p in old_params]
    mapping = EdgeMapping(torch.tensor([0, 1, 1, 0]), (torch.tensor([0, 0]), torch.tensor([0, 0])))
    widened = widen_mixed_op(op, 2, mapping)
    widen_optimizer(optimizer, widened)
    assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in op.parameters()]
    assert all(p not in optimizer.state for p in old_params)
    for w in widened:
        buffer = old_buffers[next(i for i, p in enumerate(old_params) if p is w.old)]
        assert torch.equal(optimizer.state[w.new]["momentum_buffer"], widen_tensor(buffer, w.index_by_dim))
        assert torch.equal(w.new, widen_tensor(w.old.detach(), w.index_by_dim))
    op(torch.randn(4, 8, 8, 8), torch.tensor([0.5, 0.5]), [0, 1]).square().mean().backward()
    optimizer.step()  # the widened parameters train on


def test_stage_start_prunes_and_widens_the_supernet_and_its_optimizer():
    method = _method(warmup_epochs=0, stages=[DrnasStage(**s) for s in STAGES])
    net = Supernet(channels=8, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES_NO_NONE, 2),
                   stem_multiplier=1, in_channels=1, **method.supernet_options())
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for epoch, (k, kept) in enumerate([(4, 7), (2, 4)]):
        ctx = StepContext(net=net, criterion=nn.CrossEntropyLoss(), w_optimizer=optimizer, a_optimizer=None,
                          epoch=epoch, epochs=3, lr=0.1, device=torch.device("cpu"))
        method.on_epoch_start(ctx)
        assert ctx.w_optimizer is optimizer
        assert [id(p) for p in optimizer.param_groups[0]["params"]] == [id(p) for p in net.parameters()]
        for edge in (edge for cell in net.cells for edge in cell.edges):
            assert edge.partial_k == k
            widths = {m.num_features for m in edge.ops.modules() if isinstance(m, nn.BatchNorm2d)}
            assert widths == {edge.channels // k}
        assert method.mask_normal.sum(-1).tolist() == [kept] * SPACE.cells[0].num_edges
        nn.functional.cross_entropy(net(torch.randn(4, 1, 8, 8), method.forward_weights()),
                                    torch.tensor([0, 1, 2, 0])).backward()
        optimizer.step()


def test_stages_that_would_narrow_the_mixed_ops_are_rejected_at_load(tmp_path):
    stages = [{"epochs": 1, "partial_k": 2, "keep_ops": 8}, {"epochs": 1, "partial_k": 4, "keep_ops": 4}]
    with pytest.raises(ConfigError, match=r"stages\[1\]\.partial_k: stages only widen"):
        load_params(tiny_params(tmp_path, {"drnas": {"algorithm": "drnas", "stages": stages}}))


def _job(tmp_path, prepared, out, on_epoch_end=None):
    methods = {"drnas_progressive": {"algorithm": "drnas", "space": "darts_no_none", "warmup_epochs": 0,
                                     "regularizer": "kl", "stages": STAGES}}
    params = load_params(tiny_params(tmp_path, methods, epochs=3))
    params.search.analysis.hessian_every = 0
    return SearchJob(params=params, method="drnas_progressive", dataset="digits", seed=0,
                     prepared_dir=prepared, out_dir=out, progress=False, on_epoch_end=on_epoch_end)


class _Stop(Exception):
    pass


def _stop_after(epoch):
    def callback(row, arch_row):
        if row["epoch"] == epoch:
            raise _Stop

    return callback


def test_progressive_search_crosses_a_stage_boundary_and_resumes_exactly(tmp_path):
    prepared = prepare_digits(tmp_path)
    straight, _ = run_search(_job(tmp_path, prepared, tmp_path / "straight"))
    masks = torch.tensor(straight["method_state"]["mask_normal"])
    assert masks.sum(-1).tolist() == [4] * SPACE.cells[0].num_edges
    # Stopped before the boundary, the resumed run widens with the checkpointed RNG; stopped after it,
    # the restored supernet must be rebuilt at stage 1's width before its tensors load.
    for stop in (0, 1):
        out = tmp_path / f"stopped_after_{stop}"
        with pytest.raises(_Stop):
            run_search(_job(tmp_path, prepared, out, on_epoch_end=_stop_after(stop)))
        resumed, state = run_search(_job(tmp_path, prepared, out))
        assert [row["stage"] for row in state.history] == [0.0, 1.0, 1.0]
        assert straight["genotype"] == resumed["genotype"]
        assert straight["method_state"] == resumed["method_state"]
        assert straight["final_valid_acc"] == resumed["final_valid_acc"]


def test_search_command_runs_progressive_drnas(tmp_path):
    methods = {"drnas": {"algorithm": "drnas", "warmup_epochs": 0, "space": "darts",
                         "stages": [{"epochs": 1, "partial_k": 4, "keep_ops": 8},
                                    {"epochs": 1, "partial_k": 2, "keep_ops": 4}]}}
    summary, history = search_via_cli(tmp_path, prepare_digits(tmp_path), methods, "drnas")
    assert summary["epochs"] == 2 and summary["steps"] == 4
    assert [row["stage"] for row in history] == ["0.0", "1.0"]
    assert float(history[1]["entropy_normal_max"]) <= torch.log(torch.tensor(4.0)).item() + 1e-5


def test_single_channel_normal_edges_widen():
    # C = K on a normal edge leaves one channel per op: no FactorizedReduce there, so no halves to map.
    torch.manual_seed(0)
    op = MixedOp(4, 1, PRIMITIVES_NO_NONE, partial_k=4)
    mapping = draw_edge_mapping(1, 2)
    assert mapping.halves is None
    widen_mixed_op(op, 2, mapping)
    out = op(torch.randn(2, 4, 6, 6), torch.full((7,), 1 / 7), list(range(7)))
    assert out.shape == (2, 4, 6, 6)
