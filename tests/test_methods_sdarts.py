"""SDARTS: perturbations stay on the simplex near the clean weights, ADV is an attack, the architecture
step is plain DARTS, and both variants run through the search command."""

import copy

import pytest
import torch
from search_e2e import prepare_digits, search_via_cli
from space_support import arch, bound, cnn_cells
from torch import nn

from pipeline.config import SearchTraining
from pipeline.methods import StepContext, create_method
from pipeline.methods.darts import DartsMethod
from pipeline.methods.sdarts import SdartsMethod, clip_to_simplex, epsilon_at, project_linf
from pipeline.space.primitives import PRIMITIVES
from pipeline.space.supernet import Supernet

SPACE = bound("darts", nodes=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(perturbation="rs", epoch=1, epochs=2):
    torch.manual_seed(0)
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES, 2), stem_multiplier=1,
                   in_channels=1)
    method = create_method(SdartsMethod(algorithm="sdarts", perturbation=perturbation), SPACE,
                           SearchTraining(nodes=2))
    with torch.no_grad():  # a non-uniform architecture, so every op matters differently
        for alpha in method.arch_parameters():
            alpha.normal_()
    ctx = StepContext(net=net, criterion=nn.CrossEntropyLoss(),
                      w_optimizer=torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                      a_optimizer=torch.optim.SGD(method.arch_parameters(), lr=1.0), epoch=epoch,
                      epochs=epochs, lr=0.1, device=torch.device("cpu"))
    batch = (torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0]))
    return net, method, ctx, batch


def _eval_loss(ctx, batch, weights):
    ctx.net.eval()
    with torch.no_grad():
        loss = float(ctx.criterion(ctx.net(batch[0], weights), batch[1]))
    ctx.net.train()
    return loss


def _on_simplex(weights):
    return bool((weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(len(weights))))


def _within_eps_up_to_scale(weights, center, eps):
    """Whether each row is s * v for some s > 0 and some v within eps of `center` (clip, then renormalise)."""
    for w, c in zip(weights, center, strict=True):
        positive = w > 0
        low = ((c[positive] - eps) / w[positive]).max()
        high = ((c[positive] + eps) / w[positive]).min()
        if not (low <= high * (1 + 1e-6) and bool((c[~positive] <= eps + 1e-7).all())):
            return False
    return True


def test_epsilon_ramps_linearly_from_start_to_end():
    assert epsilon_at(0, 50, 0.03, 0.3) == pytest.approx(0.03)
    assert epsilon_at(49, 50, 0.03, 0.3) == pytest.approx(0.3)
    assert epsilon_at(49 // 2, 50, 0.03, 0.3) == pytest.approx(0.03 + 0.27 * 24 / 49)
    assert epsilon_at(0, 1, 0.03, 0.3) == pytest.approx(0.03)


def test_clip_to_simplex_clips_renormalises_and_rescues_empty_rows():
    torch.manual_seed(0)
    reference = torch.randn(5, 8).softmax(-1)
    perturbed = reference + torch.empty(5, 8).uniform_(-0.6, 0.6)
    perturbed[0] = -0.1  # nothing survives the clip: one-hot on the reference's argmax
    perturbed[1] = reference[1]  # already on the simplex: unchanged
    out = clip_to_simplex(perturbed, reference)
    assert _on_simplex(out) and bool((out <= 1).all())
    assert torch.equal(out[0], nn.functional.one_hot(reference[0].argmax(), 8).float())
    assert torch.allclose(out[1], reference[1])
    rest = perturbed[2:].clamp(0, 1)
    assert torch.allclose(out[2:], rest / rest.sum(-1, keepdim=True))


def test_project_linf_keeps_points_within_radius_and_leaves_inner_points():
    torch.manual_seed(0)
    center, weights = torch.rand(6, 8), torch.rand(6, 8)
    projected = project_linf(weights, center, 0.1)
    assert float((projected - center).abs().max()) <= 0.1 + 1e-7
    inside = (weights - center).abs() <= 0.1
    assert torch.equal(projected[inside], weights[inside])


def test_random_smoothing_weights_are_perturbed_on_the_simplex_and_detached():
    _, method, ctx, batch = _setup("rs")
    clean = method.forward_weights()
    weights = method.weight_step_weights(ctx, batch)
    for w, c in ((weights["normal"], clean["normal"]), (weights["reduce"], clean["reduce"])):
        assert _on_simplex(w)
        assert not w.requires_grad
        assert not torch.allclose(w, c)
        assert _within_eps_up_to_scale(w, c, method.epsilon(ctx))


def test_adversarial_weights_raise_training_loss_above_random_and_clean():
    net, method, ctx, batch = _setup("adv")
    bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    running_mean = bn.running_mean.clone()
    clean = method.forward_weights()
    clean = arch(clean["normal"].detach(), clean["reduce"].detach())
    torch.manual_seed(1)
    adversarial = method.weight_step_weights(ctx, batch)
    # BN ran on running statistics during the attack and is back in training mode.
    assert net.training and torch.equal(bn.running_mean, running_mean)
    method.config.perturbation = "rs"
    torch.manual_seed(1)
    random = method.weight_step_weights(ctx, batch)
    assert _on_simplex(adversarial["normal"]) and _on_simplex(adversarial["reduce"])
    assert float((adversarial["normal"] - clean["normal"]).abs().max()) > 0
    attacked_loss = _eval_loss(ctx, batch, adversarial)
    assert attacked_loss > _eval_loss(ctx, batch, random)
    assert attacked_loss > _eval_loss(ctx, batch, clean)


def test_adversarial_weights_fall_back_to_clean_when_the_loss_cannot_rise():
    net, method, ctx, batch = _setup("adv")
    with torch.no_grad():  # constant logits: no perturbation can change the loss
        net.classifier.weight.zero_()
        net.classifier.bias.zero_()
    weights = method.weight_step_weights(ctx, batch)
    assert torch.equal(weights["normal"], method.forward_weights()["normal"].detach())
    assert torch.equal(weights["reduce"], method.forward_weights()["reduce"].detach())


def test_architecture_step_is_plain_first_order_darts():
    _, method, ctx, batch = _setup("adv")
    darts = create_method(DartsMethod(algorithm="darts", order=1), SPACE, SearchTraining(nodes=2))
    darts.load_state_dict(method.state_dict(), strict=False)
    darts_ctx = copy.copy(ctx)
    darts_ctx.a_optimizer = torch.optim.SGD(darts.arch_parameters(), lr=1.0)
    method.architecture_step(ctx, batch, batch)
    darts.architecture_step(darts_ctx, batch, batch)
    assert torch.equal(method.alpha_normal, darts.alpha_normal)
    assert torch.equal(method.alpha_reduce, darts.alpha_reduce)


def test_weight_step_sends_no_gradient_to_alpha():
    net, method, ctx, batch = _setup("adv")
    weights = method.weight_step_weights(ctx, batch)
    ctx.criterion(net(batch[0], weights), batch[1]).backward()
    assert method.alpha_normal.grad is None and method.alpha_reduce.grad is None
    assert any(p.grad is not None for p in net.parameters())


def test_search_command_runs_both_sdarts_variants(tmp_path):
    methods = {f"sdarts_{p}": {"algorithm": "sdarts", "perturbation": p, "attack_steps": 2}
               for p in ("rs", "adv")}
    prepared = prepare_digits(tmp_path)
    for name in methods:
        summary, history = search_via_cli(tmp_path, prepared, methods, name)
        assert summary["epochs"] == 2 and summary["steps"] == 4
        assert [int(row["epoch"]) for row in history] == [0, 1]
        assert all(float(row["train_loss"]) > 0 and row["hessian_eig"] for row in history)
