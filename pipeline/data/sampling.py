"""Deterministic, resumable, shardable sampling.

The order of an epoch depends only on (seed, epoch), never on how many iterators were created before,
so a run killed mid-epoch and resumed from its checkpoint replays exactly the batches it had not seen,
and every DDP rank computes the same permutation without communicating.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    """Yields this rank's share of `indices` for the current epoch, from the current start position.

    Each rank takes every `world_size`-th element of the epoch's order (disjoint, equal-size shares).
    When the count does not divide, the order is padded by wrapping around (or, with `drop_last`,
    truncated), so all ranks run the same number of steps and no collective waits forever.
    """

    def __init__(self, indices: Sequence[int] | np.ndarray, *, seed: int, shuffle: bool = True, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1 or len(self.indices) == 0:
            raise ValueError("EpochSampler needs a non-empty 1-D sequence of indices")
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.epoch = 0
        self.start = 0

    @property
    def per_rank(self) -> int:
        """Samples each rank sees in a full epoch."""
        if self.drop_last:
            return len(self.indices) // self.world_size
        return math.ceil(len(self.indices) / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order and rewind to its first sample."""
        self.epoch = epoch
        self.start = 0

    def set_start(self, batch_index: int, batch_size: int) -> None:
        """Skip the first `batch_index` batches of this epoch (call after `set_epoch` when resuming)."""
        if batch_index < 0 or batch_size < 1:
            raise ValueError(f"invalid resume position: batch {batch_index} of size {batch_size}")
        self.start = min(batch_index * batch_size, self.per_rank)

    def epoch_order(self) -> np.ndarray:
        """This rank's full order for the current epoch, ignoring the start position."""
        order = self.indices
        if self.shuffle:
            order = order[np.random.default_rng([self.seed, self.epoch]).permutation(len(order))]
        total = self.per_rank * self.world_size
        if total > len(order):
            order = np.resize(order, total)
        return order[self.rank : total : self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_order()[self.start :].tolist())

    def __len__(self) -> int:
        return self.per_rank - self.start


class _EpochSeededLoader(DataLoader):
    """A DataLoader whose worker seeds, like its order, depend only on (seed, epoch, start).

    DataLoader draws each iterator's base worker seed from `generator`; reseeding it here makes the
    random augmentations in worker processes replay on resume instead of depending on how many
    iterators the run had created before.
    """

    def __iter__(self) -> Any:
        sampler = self.sampler
        if isinstance(sampler, EpochSampler) and self.generator is not None:
            seed_sequence = np.random.SeedSequence([sampler.seed, sampler.epoch, sampler.start, 2])
            self.generator.manual_seed(int(seed_sequence.generate_state(1, dtype=np.uint64)[0] >> 1))
        return super().__iter__()


def make_loader(dataset: Dataset, indices: Sequence[int] | np.ndarray, *, batch_size: int, seed: int,
                shuffle: bool, num_workers: int, drop_last: bool = False, rank: int = 0,
                world_size: int = 1) -> DataLoader:
    """A DataLoader over `indices` of `dataset`, driven by an `EpochSampler` (`loader.sampler`).

    `drop_last` drops a final partial batch; sharding always pads, so ranks agree on the step count.
    """
    sampler = EpochSampler(indices, seed=seed, shuffle=shuffle, rank=rank, world_size=world_size)
    return _EpochSeededLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=torch.Generator(),
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def cycle_batches(loader: DataLoader) -> Iterator[Any]:
    """Batches of `loader` forever: one iterator per pass, the sampler's epoch advancing at each wrap.

    DARTS draws one validation batch per training step; creating a fresh iterator for each would
    restart worker processes every step and always return the epoch's first batch.
    """
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("cycle_batches: the loader yields no batches (too few samples for drop_last?)")
        sampler = loader.sampler
        if isinstance(sampler, EpochSampler):
            sampler.set_epoch(sampler.epoch + 1)
