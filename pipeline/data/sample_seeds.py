"""Augmentation drawn from a seed of each sample's own, so the process that loads a sample does not matter.

A data-parallel search splits every global batch over N processes. Were augmentations drawn from each
process's generator, the crop a sample gets would depend on N and on its position in the shard, and the
draws would advance torch's global generator by the shard's size, which every process of the search must
advance alike (it is the stream the architecture draws come from, pipeline/search/loop.py). Here each
sample's transform runs under a generator seeded by (loader seed, epoch, sample index) and the global
generator is restored afterwards: 1 and N processes, and any `data.num_workers`, augment alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.sampling import EpochSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SampleSeededDataset(Dataset):
    """`dataset[index]` drawn under `sample_seed(sampler.seed, sampler.epoch, index)`.

    `sampler` is the loader's EpochSampler (attached after the loader is made); worker processes receive a
    copy when an iterator starts, which is after the loop has set the epoch.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.sampler: EpochSampler | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        if self.sampler is None:
            raise RuntimeError("SampleSeededDataset: attach the loader's sampler before loading")
        # The CPU generator alone: torch.manual_seed also seeds every accelerator's generators, which costs
        # ~150 us a call, ten times the transform of a small image; the transforms draw from the CPU one.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(sample_seed(self.sampler.seed, self.sampler.epoch, index))
            return self.dataset[index]
