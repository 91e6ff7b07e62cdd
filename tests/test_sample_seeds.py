"""Per-sample augmentation seeds: what a sample gets depends on (seed, epoch, index) only."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from pipeline.data.sample_seeds import SampleSeededDataset, sample_seed
from pipeline.data.sampling import EpochSampler


class RandomDraws(Dataset):
    """Each item is three draws from torch's global generator, as a random crop or flip makes them."""

    def __len__(self) -> int:
        return 10

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3)


def _seeded(seed: int, epoch: int) -> SampleSeededDataset:
    dataset = SampleSeededDataset(RandomDraws())
    dataset.sampler = EpochSampler(range(10), seed=seed)
    dataset.sampler.set_epoch(epoch)
    return dataset


def test_a_sample_gets_the_draws_of_its_own_seed_and_the_global_generator_does_not_move():
    dataset = _seeded(seed=7, epoch=3)
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    items = [dataset[index] for index in (4, 1, 4)]
    assert torch.equal(torch.rand(1), expected_next)  # loading left the global stream where it was
    for index, item in zip((4, 1, 4), items, strict=True):
        torch.manual_seed(sample_seed(7, 3, index))  # the straightforward way: seed everything, then draw
        assert torch.equal(item, torch.rand(3))
    assert torch.equal(items[0], items[2]) and not torch.equal(items[0], items[1])


def test_another_epoch_or_seed_draws_anew():
    first = _seeded(seed=7, epoch=3)[2]
    assert not torch.equal(first, _seeded(seed=7, epoch=4)[2])
    assert not torch.equal(first, _seeded(seed=8, epoch=3)[2])
