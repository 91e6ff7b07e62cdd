"""One process or many: the few collectives the training loop needs, written once for both.

`torchrun` sets WORLD_SIZE, RANK and LOCAL_RANK. With WORLD_SIZE > 1 each process trains on its shard
of the data and the loop reduces sums across processes, so every reported number is global. Each helper
is a no-op for a single process, so the loop has one code path and a plain `python -m pipeline` run needs
no process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

from pipeline.device import choose_device
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: its rank, the number of processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes files, checkpoints and tracking records, so outputs are written once."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over all processes (float64: sample counts stay exact)."""
        if not self.distributed:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """`obj` of every process, in rank order (per-rank RNG states for the checkpoint)."""
        if not self.distributed:
            return [obj]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor, in place, by its mean over all processes (one collective for the lot).

        Each process's loss is the mean over its shard, so the mean of their gradients is the gradient of
        the global batch's mean loss: what one process computes on the whole batch.
        """
        if not self.distributed or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """`average` of the gradients of `params` that have one (every process leaves the same ones None)."""
        self.average([p.grad for p in params if p.grad is not None])

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Copy rank 0's buffers (BatchNorm running statistics) to every process.

        DDP syncs buffers at the start of each training forward only, so after the last step each process
        holds statistics of its own batch; evaluating with rank 0's makes every shard judge the model that
        rank 0 checkpoints.
        """
        if self.distributed:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def per_process_batch(global_batch: int, world_size: int, key: str) -> int:
    """The batch each of `world_size` processes takes so one step sees `global_batch` images in all.

    The params give the global batch because the papers' numbers depend on it (and on the learning rate
    tuned for it), not on how many GPUs shared it; a batch the processes cannot split evenly is refused
    rather than rounded, which would silently train at another global batch.
    """
    if global_batch % world_size:
        raise ConfigError(f"{key} = {global_batch} is the global batch, split evenly over the {world_size} processes "
                          f"of this job, but {world_size} does not divide it; choose a batch size divisible by "
                          "the job's GPU count (resources.<stage>.gpu) or another GPU count")
    return global_batch // world_size


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each process's per-sample randomness (augmentation, dropout)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


@contextlib.contextmanager
def distributed_context(device_name: str) -> Iterator[DistContext]:
    """The process group of a `torchrun` launch (NCCL on CUDA, gloo on CPU), or a single process.

    Under torchrun every process uses the GPU of its LOCAL_RANK, whatever `runtime.device` names, because
    the launcher starts one process per GPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(device_name)
    if world_size == 1:
        yield DistContext(rank=0, world_size=1, device=device)
        return
    rank = int(os.environ["RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    log.info("rank %d of %d on %s (%s)", rank, world_size, device, dist.get_backend())
    try:
        yield DistContext(rank=rank, world_size=world_size, device=device)
    finally:
        dist.destroy_process_group()
