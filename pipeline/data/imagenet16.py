"""ImageNet16-120: the 16 x 16 downsampled ImageNet (Chrabaszcz et al., 2017) as NAS-Bench-201 uses it.

The released batch files (`train_data_batch_1` .. `_10`, `val_data`) are pickled dicts in CIFAR's
format: 'data' holds one row of 3 x 16 x 16 uint8 values per image (all red, then green, then blue) and
'labels' the 1-based class of each (1..1000). NAS-Bench-201 keeps the images of the first 120 classes
(labels 1..120, 151,700 training and 6,000 validation images) and trains on `val_data` as its test
split (`ImageNet16(..., use_num_of_class_only=120)` in its code). Files are read through the batch
allow-list of pipeline/data/cifar.py: they are pickles, and must not be able to run code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.cifar import read_batch_pickle
from pipeline.data.files import file_checksums, require_files
from pipeline.data.registry import DatasetInfo, Split, Transform, register_dataset
from pipeline.data.tensors import TensorImageDataset
from pipeline.data.transforms import tensor_transform
from pipeline.errors import DataError

FOLDER = "ImageNet16"
FILES: dict[Split, tuple[str, ...]] = {
    "train": tuple(f"train_data_batch_{i}" for i in range(1, 11)),
    "test": ("val_data",),
}
SIDE = 16
_HOW_TO_GET = (f"Request the downsampled ImageNet 16x16 (Imagenet16_train.zip, Imagenet16_val.zip) from "
               f"image-net.org and unpack the batch files into data.root/{FOLDER}/; there is no download.")


def read_imagenet16(paths: list[Path], num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x 3 x 16 x 16 images and 0-based labels of the images whose class is among the first
    `num_classes` (1-based labels 1..num_classes in the files)."""
    images, labels = [], []
    for path in paths:
        batch = read_batch_pickle(path, "ImageNet16")
        if "data" not in batch or "labels" not in batch:
            raise DataError(f"{path} has no 'data' and 'labels' entries; expected a downsampled-ImageNet batch")
        data = np.asarray(batch["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
            raise DataError(f"{path}: 'data' has shape {data.shape}, expected N x {3 * SIDE * SIDE} "
                            f"(16 x 16 RGB rows); is it another resolution of the downsampled ImageNet?")
        one_based = np.asarray(batch["labels"], dtype=np.int64)
        if len(one_based) != len(data) or (len(one_based) and one_based.min() < 1):
            raise DataError(f"{path}: expected one 1-based label per image, got {len(one_based)} labels "
                            f"(min {one_based.min() if len(one_based) else '-'}) for {len(data)} images")
        keep = one_based <= num_classes
        images.append(data[keep].reshape(-1, 3, SIDE, SIDE))
        labels.append(one_based[keep] - 1)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


@dataclass(frozen=True)
class ImageNet16Source:
    info: DatasetInfo
    needs_split_file: bool = False

    def fetch(self, root: Path) -> None:
        raise DataError(f"{self.info.name}: cannot be downloaded automatically. {_HOW_TO_GET}")

    def checksums(self, root: Path) -> dict[str, str]:
        return file_checksums((root / FOLDER / name for names in FILES.values() for name in names), root)

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform:
        # NAS-Bench-201's augmentation for ImageNet16: random flip and random 16 x 16 crop with padding 2.
        return tensor_transform(self.info, augment=augment, cutout=cutout, image_size=image_size,
                                crop_padding=2, flip=True)

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        paths = [root / FOLDER / name for name in FILES[split]]
        require_files(self.info.name, paths, _HOW_TO_GET)
        return TensorImageDataset(*read_imagenet16(paths, self.info.num_classes), transform)


@register_dataset
def imagenet16_120() -> ImageNet16Source:
    # Mean and std: NAS-Bench-201's (122.68, 116.66, 104.01) / 255 and (63.22, 61.26, 65.09) / 255.
    return ImageNet16Source(DatasetInfo("imagenet16_120", 120, SIDE, 3,
                                        (122.68 / 255, 116.66 / 255, 104.01 / 255),
                                        (63.22 / 255, 61.26 / 255, 65.09 / 255)))
