"""DARTS' second-order architecture gradient by a finite-difference Hessian-vector product.

    grad_alpha L_val(w', alpha) - lr * grad^2_{alpha,w} L_train(w, alpha) . grad_w' L_val(w', alpha)

1. Virtual step: w' = w - lr * (momentum * buf + grad_w L_train(w, alpha) + wd * w), i.e. exactly the
   SGD step the weight optimiser would take next.
2. At w', the gradients of L_val with respect to alpha and to w'.
3. Finite difference: with R = 0.01 / ||grad_w' L_val||, w+- = w +- R grad_w' L_val, the mixed
   second derivative times grad_w' L_val is (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / (2R).
4. Return grad_alpha L_val(w') - lr * that product.

The network is evaluated at w', w+ and w- with `torch.func.functional_call`, so the real weights are
never modified and no copy of the network is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.func import functional_call

if TYPE_CHECKING:
    from pipeline.methods.base import Batch, SearchMethod, StepContext


def unrolled_arch_gradients(method: SearchMethod, ctx: StepContext, train_batch: Batch,
                            valid_batch: Batch) -> list[torch.Tensor]:
    named = [(name, p) for name, p in ctx.net.named_parameters() if p.requires_grad]
    names = [name for name, _ in named]
    weights = [p for _, p in named]
    arch = method.arch_parameters()
    group = ctx.w_optimizer.param_groups[0]
    lr, momentum, weight_decay = ctx.lr, group.get("momentum", 0.0), group.get("weight_decay", 0.0)

    def loss_at(params: dict[str, torch.Tensor] | None, batch: Batch, *, arch_grad: bool = True) -> torch.Tensor:
        x, y = batch
        mixing = method.forward_weights() if arch_grad else method.forward_weights().detached()
        with ctx.autocast():
            logits = ctx.net(x, mixing) if params is None else functional_call(ctx.net, params, (x, mixing))
        return ctx.criterion(logits.float(), y)

    # 1. virtual step (no architecture gradient: detached mixing weights keep no op output for it)
    train_grads = torch.autograd.grad(loss_at(None, train_batch, arch_grad=False), weights)
    ctx.average(train_grads)  # data-parallel: w' is the step of the global batch
    with torch.no_grad():
        virtual = []
        for p, g in zip(weights, train_grads, strict=True):
            step = g + weight_decay * p
            buf = ctx.w_optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                step = step + momentum * buf
            virtual.append((p - lr * step).requires_grad_())
    # 2. gradients of the validation loss at w'
    val_loss = loss_at(dict(zip(names, virtual, strict=True)), valid_batch) + method.regularization()
    grads = torch.autograd.grad(val_loss, [*arch, *virtual], allow_unused=True)
    d_arch = [torch.zeros_like(a) if g is None else g for a, g in zip(arch, grads[: len(arch)], strict=True)]
    d_virtual = [torch.zeros_like(v) if g is None else g for v, g in zip(virtual, grads[len(arch):], strict=True)]
    # Data-parallel: the finite difference's direction and radius are the global batch's; the arch gradients
    # below stay per process (they are linear in it) and the architecture optimiser averages them.
    ctx.average(d_virtual)
    # 3. finite-difference Hessian-vector product
    radius = 0.01 / torch.cat([d.flatten() for d in d_virtual]).norm().clamp_min(1e-12)

    def arch_grad_at(sign: float) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            shifted = {n: p + sign * radius * d for n, p, d in zip(names, weights, d_virtual, strict=True)}
        grads_ = torch.autograd.grad(loss_at(shifted, train_batch), arch, allow_unused=True)
        return tuple(torch.zeros_like(a) if g is None else g for a, g in zip(arch, grads_, strict=True))

    plus, minus = arch_grad_at(1.0), arch_grad_at(-1.0)
    # 4. combine
    return [d - lr * (p - m) / (2 * radius) for d, p, m in zip(d_arch, plus, minus, strict=True)]
