"""One search step, the only copy: the search loop, `bench` and the tests all run this function.

An architecture step (when the method updates its architecture this epoch), then a weight step under
the method's weight-step mixing weights. A non-finite architecture parameter rolls the architecture step
back; a non-finite training loss skips the weight step. `finite(what, tensor)` decides what counts as
finite and may raise instead (the loop's NaN policy); the default accepts everything. In a data-parallel
search `ctx.average` makes the weights' gradients (and the loss that decides a skip) the global batch's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pipeline.methods.base import Batch, SearchMethod, StepContext

FiniteCheck = Callable[[str, torch.Tensor], bool]


def mixed_precision(device: torch.device) -> Callable[[], torch.autocast]:
    """The autocast `runtime.amp` runs a search under: bf16, which needs no loss scaling."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def _no_check(what: str, tensor: torch.Tensor) -> bool:
    return True


def search_step(method: SearchMethod, ctx: StepContext, train: Batch, valid: Batch, *, update_architecture: bool,
                grad_clip: float, finite: FiniteCheck = _no_check) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Run one step; returns the weight step's (logits, loss), detached, or None when it was skipped."""
    if update_architecture:
        arch_snapshot = [p.detach().clone() for p in method.arch_parameters()]
        method.architecture_step(ctx, train, valid)
        for param in method.arch_parameters():
            if not finite("architecture parameter", param):
                with torch.no_grad():
                    for p, old in zip(method.arch_parameters(), arch_snapshot, strict=True):
                        p.copy_(old)
                break
    # Detached: the weight step's architecture gradient would be discarded by the next architecture step,
    # and without it no op output is kept for it (less memory, less backward work; weights' gradients equal).
    weights = method.weight_step_supernet_weights(ctx, train).detached()
    ctx.w_optimizer.zero_grad(set_to_none=True)
    with ctx.autocast():
        logits = ctx.net(train[0], weights).float()
    loss = ctx.criterion(logits, train[1])
    # The global batch's loss decides, so every process of a data-parallel search skips the same steps.
    global_loss = loss.detach().clone()
    ctx.average([global_loss])
    if not finite("training loss", global_loss):
        return None
    loss.backward()
    method.complete_skipped_gradients(ctx.net)
    # Before the clip: the norm clipped is the global batch's, as in a 1-process step.
    ctx.average([p.grad for p in ctx.net.parameters() if p.grad is not None])
    nn.utils.clip_grad_norm_(ctx.net.parameters(), grad_clip)
    ctx.w_optimizer.step()
    method.after_weight_step(ctx)
    return logits.detach(), loss.detach()
