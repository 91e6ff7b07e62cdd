"""A dataset held in memory as one CHW image tensor and one label tensor."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from pipeline.data.registry import Transform


class TensorImageDataset(Dataset):
    """Items are `(transform(images[i]), int(labels[i]))`.

    The small datasets (digits, CIFAR, SVHN) fit in memory as uint8 (or float for digits), which makes
    reading a batch cheap and keeps the transform the only per-item work.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Transform) -> None:
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"expected N x C x H x W images and N labels, got {tuple(images.shape)} "
                             f"and {tuple(labels.shape)}")
        self.images = images
        self.targets = labels.long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.targets[index])
