"""The dominant eigenvalue of the Hessian of the validation loss w.r.t. the architecture parameters.

SDARTS and DrNAS use it to explain stability: it grows during DARTS searches that collapse to skip
connections, and stays small under their regularisation. Computed by power iteration on Hessian-vector
products (double backward), on a fixed set of validation batches so values are comparable over epochs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from pipeline.methods.base import SearchMethod


def _flat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def power_iteration(hvp, dim: int, iterations: int, device: torch.device, seed: int = 0) -> float:
    """Eigenvalue of largest magnitude of the symmetric operator `hvp` (a function of a flat vector)."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(dim, generator=generator, dtype=torch.float64).to(device)
    v /= v.norm()
    eigenvalue = 0.0
    for _ in range(iterations):
        hv = hvp(v)
        eigenvalue = float(torch.dot(v, hv))
        norm = hv.norm()
        if norm == 0:
            return 0.0
        v = hv / norm
    return eigenvalue


def dominant_hessian_eigenvalue(net: nn.Module, method: SearchMethod, loader: torch.utils.data.DataLoader,
                                criterion: nn.Module, device: torch.device, *, batches: int,
                                iterations: int) -> float:
    """Power iteration on d^2 L_val / d alpha^2 over the first `batches` batches of `loader` (epoch 0)."""
    sampler = loader.sampler
    saved = (sampler.epoch, sampler.start)
    sampler.set_epoch(0)
    data = []
    for i, (x, y) in enumerate(loader):
        if i >= batches:
            break
        data.append((x.to(device), y.to(device)))
    sampler.epoch, sampler.start = saved
    return batches_hessian_eigenvalue(net, method, data, criterion, device, iterations=iterations)


def batches_hessian_eigenvalue(net: nn.Module, method: SearchMethod, data: list[tuple[Any, torch.Tensor]],
                               criterion: nn.Module, device: torch.device, *, iterations: int) -> float:
    """Power iteration on d^2 L_val / d alpha^2 over fixed batches `data` of whatever input the supernet
    takes (image tensors; the recurrent space's token windows), in evaluation mode."""
    params = method.arch_parameters()
    was_training = net.training
    net.eval()
    state = torch.get_rng_state()  # stochastic methods sample weights: keep the training RNG stream intact
    try:
        loss = sum(criterion(net(x, method.eval_weights()), y) for x, y in data) / len(data)
        grads = _flat(list(torch.autograd.grad(loss, params, create_graph=True)))

        def hvp(v: torch.Tensor) -> torch.Tensor:
            hv = torch.autograd.grad(grads, params, grad_outputs=v.to(grads.dtype), retain_graph=True,
                                     allow_unused=True)
            return _flat([torch.zeros_like(p) if h is None else h for p, h in zip(params, hv, strict=True)]).double()

        return power_iteration(hvp, grads.numel(), iterations, device)
    finally:
        torch.set_rng_state(state)
        net.train(was_training)
