"""scikit-learn's bundled 8x8 handwritten digits: the offline demo dataset.

It ships inside scikit-learn, so the whole pipeline runs without a download. It has no official test
split; prepare writes a seeded, stratified hold-out to splits.npz, and both splits are read through it.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from pipeline.data.files import file_checksums
from pipeline.data.registry import DatasetInfo, Split, Transform, register_dataset
from pipeline.data.tensors import TensorImageDataset
from pipeline.data.transforms import tensor_transform
from pipeline.errors import DataError

# The DARTS CIFAR network has two reduction cells, each halving the maps: 16x16 inputs end at 4x4, where
# 3x3 and 5x5 (dilated) operations still see image content; native 8x8 would end at 2x2, mostly padding.
IMAGE_SIZE = 16
_MAX_VALUE = 16.0  # pixel values are counts of set bits in 4x4 blocks: 0..16


def source_csv() -> Path:
    """The CSV scikit-learn's `load_digits` reads (sklearn/datasets/data/digits.csv.gz), located without
    importing scikit-learn: `sklearn.datasets` costs 1-2 s of CPU in every stage process that reads
    digits, more than the data themselves."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the digits dataset ships with scikit-learn, which is not installed")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


@functools.cache
def raw_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 images as float N x 1 x 8 x 8 in [0, 1], and int64 labels.

    Parsed as `load_digits` parses it: one image per row, 64 pixel values then the label
    (tests/test_data.py checks equality with `load_digits`)."""
    with gzip.open(source_csv(), "rt") as f:
        rows = np.loadtxt(f, delimiter=",")
    images = torch.from_numpy(rows[:, :-1].reshape(-1, 1, 8, 8)).float().div(_MAX_VALUE)
    return images, torch.from_numpy(rows[:, -1].astype(np.int64))


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of N x C x H x W images, clamped back into [0, 1]."""
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


@functools.cache
def _info() -> DatasetInfo:
    """Mean and std over all 1797 upsampled images.

    Taken over the whole set rather than the training hold-out so that they do not depend on
    `prepare.test_fraction`: a fixed affine rescaling of pixels carries no label information.
    """
    images = upsample(raw_digits()[0], IMAGE_SIZE).double()
    mean, std = images.mean().item(), images.std(correction=0).item()
    return DatasetInfo("digits", 10, IMAGE_SIZE, 1, (mean,), (std,))


def source_checksums() -> dict[str, str]:
    """sha256 of the CSV scikit-learn reads the digits from, keyed by its path inside the package."""
    csv = source_csv()
    return file_checksums([csv], csv.parents[3])


@dataclass(frozen=True)
class DigitsSource:
    needs_split_file: bool = True

    @property
    def info(self) -> DatasetInfo:
        return _info()

    def fetch(self, root: Path) -> None:
        """Nothing to fetch: the data ship with scikit-learn."""

    def checksums(self, root: Path) -> dict[str, str]:
        return source_checksums()

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform:
        # A 1-pixel shift is already 1/16 of the image; digits are not mirror-symmetric, so no flip.
        return tensor_transform(self.info, augment=augment, cutout=cutout, image_size=image_size,
                                crop_padding=1, flip=False)

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        """All 1797 samples: the split itself is selected by the splits.npz that prepare writes."""
        images, labels = raw_digits()
        return TensorImageDataset(upsample(images, IMAGE_SIZE), labels, transform)


@register_dataset
def digits() -> DigitsSource:
    return DigitsSource()
