"""The finite-difference second-order gradient against the exact implicit gradient (double backward)."""

import torch
from space_support import bound, cnn_cells
from torch import nn
from torch.func import functional_call

from pipeline.config import SearchTraining
from pipeline.methods import StepContext, create_method
from pipeline.methods.darts import DartsMethod
from pipeline.methods.unrolled import unrolled_arch_gradients
from pipeline.space.primitives import PRIMITIVES
from pipeline.space.supernet import Supernet


def _tiny_setup():
    torch.manual_seed(0)
    space = bound("darts", nodes=2)
    net = Supernet(channels=4, num_classes=3, layers=3, cells=cnn_cells(PRIMITIVES, 2), stem_multiplier=1,
                   in_channels=1).double()
    method = create_method(DartsMethod(algorithm="darts", order=2), space, SearchTraining(nodes=2)).double()
    # Random alphas so the softmax is not uniform and every op matters.
    with torch.no_grad():
        for alpha in method.arch_parameters():
            alpha.normal_()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    ctx = StepContext(net=net, criterion=nn.CrossEntropyLoss(), w_optimizer=optimizer, a_optimizer=None,
                      epoch=0, epochs=1, lr=0.05, device=torch.device("cpu"))
    x_t, x_v = torch.randn(4, 1, 6, 6, dtype=torch.float64), torch.randn(4, 1, 6, 6, dtype=torch.float64)
    y_t, y_v = torch.tensor([0, 1, 2, 0]), torch.tensor([2, 1, 0, 1])
    # One real step so the momentum buffer is non-zero and enters the virtual step.
    ctx.criterion(net(x_t, method.forward_weights()), y_t).backward()
    optimizer.step()
    optimizer.zero_grad()
    net.eval()  # BN on running stats: the exact and finite-difference losses see the same function
    return net, method, ctx, (x_t, y_t), (x_v, y_v)


def _exact_implicit_gradient(net, method, ctx, train, valid):
    named = list(net.named_parameters())
    names, weights = [n for n, _ in named], [p for _, p in named]
    group = ctx.w_optimizer.param_groups[0]
    loss_train = ctx.criterion(net(train[0], method.forward_weights()), train[1])
    grads = torch.autograd.grad(loss_train, weights, create_graph=True)
    virtual = {}
    for name, p, g in zip(names, weights, grads, strict=True):
        buf = ctx.w_optimizer.state[p]["momentum_buffer"]
        virtual[name] = p - ctx.lr * (group["momentum"] * buf + g + group["weight_decay"] * p)
    loss_val = ctx.criterion(functional_call(net, virtual, (valid[0], method.forward_weights())), valid[1])
    return torch.autograd.grad(loss_val, method.arch_parameters())


def _direct_term(net, method, ctx, train, valid):
    """grad_alpha L_val(w', alpha) with w' held fixed: the second-order gradient minus its implicit part."""
    named = list(net.named_parameters())
    group = ctx.w_optimizer.param_groups[0]
    loss_train = ctx.criterion(net(train[0], method.forward_weights()), train[1])
    grads = torch.autograd.grad(loss_train, [p for _, p in named])
    virtual = {}
    for (name, p), g in zip(named, grads, strict=True):
        buf = ctx.w_optimizer.state[p]["momentum_buffer"]
        virtual[name] = (p - ctx.lr * (group["momentum"] * buf + g + group["weight_decay"] * p)).detach()
    loss_val = ctx.criterion(functional_call(net, virtual, (valid[0], method.forward_weights())), valid[1])
    return torch.autograd.grad(loss_val, method.arch_parameters())


def test_second_order_gradient_matches_exact_implicit_gradient():
    net, method, ctx, train, valid = _tiny_setup()
    approx = unrolled_arch_gradients(method, ctx, train, valid)
    exact = _exact_implicit_gradient(net, method, ctx, train, valid)
    direct = _direct_term(net, method, ctx, train, valid)
    for a, e, d in zip(approx, exact, direct, strict=True):
        assert a.shape == e.shape
        error = (a - e).norm()
        # Finite differences carry an O(R^2) error: small against the gradient and against the implicit
        # (Hessian) term it approximates, which a sign or factor-of-two bug would get wrong entirely.
        assert error <= 5e-3 * e.norm(), (error, e.norm())
        assert error <= 0.1 * (e - d).norm(), (error, (e - d).norm())


def test_second_order_differs_from_first_order():
    net, method, ctx, train, valid = _tiny_setup()
    second = unrolled_arch_gradients(method, ctx, train, valid)
    loss = ctx.criterion(net(valid[0], method.forward_weights()), valid[1])
    first = torch.autograd.grad(loss, method.arch_parameters())
    assert any((s - f).abs().max() > 1e-6 for s, f in zip(second, first, strict=True))


def test_second_order_leaves_network_weights_untouched():
    net, method, ctx, train, valid = _tiny_setup()
    before = [p.detach().clone() for p in net.parameters()]
    unrolled_arch_gradients(method, ctx, train, valid)
    assert all(torch.equal(b, p) for b, p in zip(before, net.parameters(), strict=True))
