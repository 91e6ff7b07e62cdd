"""Per-cell recomputation: keep each cell's inputs only, and run the cell again during backward.

A supernet's activations are the memory of a search: every candidate op of every edge keeps its
intermediate tensors for the backward pass (10 GB at batch 64, 8 cells, C=16). With `search.recompute`
each cell's forward runs without keeping them, and its backward first recomputes them: memory falls to
about one cell's activations plus every cell's inputs, for one more forward pass per step.

The recomputation must compute exactly what the first forward did:

* Random draws (drop path, the `noise` op) repeat, because `torch.utils.checkpoint` restores the RNG
  state before recomputing.
* BatchNorm's running statistics are updated by the first forward only: every buffer of the cell is
  snapshot before recomputing and restored after it.
* Second-order DARTS evaluates the supernet at virtual weights with `torch.func.functional_call`, whose
  substitution ends before the backward pass runs. The cell's parameters as they were at forward time
  (the virtual ones under `functional_call`) are captured and substituted again for the recomputation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

CellRunner = Callable[..., torch.Tensor]


@contextmanager
def buffers_restored(module: nn.Module) -> Iterator[None]:
    """Undo every change the enclosed code makes to `module`'s buffers (BN running statistics)."""
    saved = [(buffer, buffer.clone()) for buffer in module.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


class _CellCall(nn.Module):
    """`run(cell, ...)` as a module's forward, so `functional_call` can substitute the cell's parameters."""

    def __init__(self, cell: nn.Module, run: CellRunner) -> None:
        super().__init__()
        self.cell = cell
        self.run = run

    def forward(self, *args: object) -> torch.Tensor:
        return self.run(self.cell, *args)


def recomputed(run: CellRunner, cell: nn.Module, *args: object) -> torch.Tensor:
    """`run(cell, *args)`, keeping only its inputs for backward and recomputing the rest there."""
    call = _CellCall(cell, run)
    parameters = {f"cell.{name}": p for name, p in cell.named_parameters()}  # virtual under functional_call

    def contexts() -> tuple[AbstractContextManager[None], AbstractContextManager[None]]:
        return nullcontext(), buffers_restored(cell)

    return checkpoint(partial(functional_call, call, parameters), args, use_reentrant=False, context_fn=contexts)
