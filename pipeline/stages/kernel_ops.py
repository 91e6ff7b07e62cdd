"""Counting the operations a step runs: a device-independent proxy for a GPU's kernel launches.

On a fast GPU the supernet's step is bound by launching kernels, not by computing them (the issue that
asked for a fast supernet measured darts_1st at 0.666 s a step on an H100, ~30 000 operations at ~20 us
of host time each). Every aten operation that computes something launches at least one kernel there, so
their number per step, which any machine can count, says how a change will fare on a GPU before one is
at hand: fewer operations, fewer launches. Counted below autograd (a dispatch mode sees the backward
pass's operations too); views and bare allocations, which launch nothing, are left out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

# Operations that allocate without writing (no kernel) or only describe a tensor.
_NO_KERNEL = frozenset({"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "resize_",
                        "lift_fresh", "set_", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset"})


class KernelOps(TorchDispatchMode):
    """Counts, by name, the aten operations that compute something while active."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = func.overloadpacket.__name__
        if not (func.is_view or name in _NO_KERNEL):
            self.counts[name] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def count_kernel_ops(work: Callable[[], Any]) -> KernelOps:
    """The operations `work()` runs."""
    with KernelOps() as ops:
        work()
    return ops
