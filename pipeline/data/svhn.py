"""SVHN (cropped digits) from torchvision's layout: `train_32x32.mat` and `test_32x32.mat` under the root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.data.files import file_checksums, require_files
from pipeline.data.registry import DatasetInfo, Split, Transform, register_dataset
from pipeline.data.tensors import TensorImageDataset
from pipeline.data.transforms import tensor_transform
from pipeline.errors import DataError

_FILES: dict[Split, str] = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
_URL = "http://ufldl.stanford.edu/housenumbers/"


def read_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 N x 3 x 32 x 32 images and int64 labels; the file stores digit 0 as label 10.

    scipy's MATLAB reader parses data and never runs code (MATLAB objects and function handles come
    back as inert records), so only the two arrays' kinds need checking: anything but plain numbers is
    refused by name instead of being coerced.
    """
    import scipy.io  # only where SVHN is read: most stages never do

    try:
        content = scipy.io.loadmat(str(path))
    except (ValueError, OSError) as exc:
        raise DataError(f"{path} is not a readable SVHN .mat file ({exc}); delete it and fetch it again") \
            from exc
    if "X" not in content or "y" not in content:
        raise DataError(f"{path} has no 'X' and 'y' arrays; expected SVHN's cropped-digits format")
    for key in ("X", "y"):
        value = content[key]
        if not (isinstance(value, np.ndarray) and value.dtype.kind in "uif"):
            kind = value.dtype if isinstance(value, np.ndarray) else type(value).__name__
            raise DataError(f"{path}: '{key}' holds {kind}, not numbers; expected SVHN's cropped-digits format")
    images = np.ascontiguousarray(np.transpose(content["X"], (3, 2, 0, 1)), dtype=np.uint8)
    labels = content["y"].astype(np.int64).reshape(-1)
    labels[labels == 10] = 0
    return torch.from_numpy(images), torch.from_numpy(labels)


@dataclass(frozen=True)
class SvhnSource:
    info: DatasetInfo
    needs_split_file: bool = False

    def fetch(self, root: Path) -> None:
        from torchvision.datasets import SVHN  # only to download (see pipeline/data/transforms.py)

        root.mkdir(parents=True, exist_ok=True)
        try:
            for split in ("train", "test"):
                SVHN(str(root), split=split, download=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"svhn: download into {root} failed ({exc}); on a machine without internet, "
                            f"place {', '.join(_FILES.values())} from {_URL} in {root}") from exc

    def checksums(self, root: Path) -> dict[str, str]:
        return file_checksums((root / name for name in _FILES.values()), root)

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform:
        # No flip: a mirrored digit is not the same digit.
        return tensor_transform(self.info, augment=augment, cutout=cutout, image_size=image_size,
                                crop_padding=4, flip=False)

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        path = root / _FILES[split]
        require_files("svhn", [path], f"Set data.download: true on a machine with internet, or download "
                                      f"{_FILES[split]} from {_URL} into {root}.")
        return TensorImageDataset(*read_mat(path), transform)


@register_dataset
def svhn() -> SvhnSource:
    return SvhnSource(DatasetInfo("svhn", 10, 32, 3, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)))
