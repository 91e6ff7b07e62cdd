"""CIFAR-10 and CIFAR-100 from torchvision's on-disk layout.

The pickles are read here rather than through `torchvision.datasets.CIFAR10`, because that class checks
each file's md5 against the official archive: small test trees (and any repacked copy) would be rejected.
torchvision is still used to download, where the internet is reachable.
"""

from __future__ import annotations

import pickle
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
from pipeline.safe_pickle import AllowList, restricted_load


def _latin1_encode(text: str, encoding: str) -> bytes:
    """What Python 3 pickles (protocol < 3) call to rebuild bytes, limited to the codec they name."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} (bytes pickle as 'latin1')")
    return text.encode("latin1")


# Every global a batch pickle (CIFAR's, and the downsampled ImageNet's of the same format) refers to:
# numpy array reconstruction (numpy 1.x and 2.x module names; `_frombuffer` is protocol 5's form) and
# `_codecs.encode`, which rebuilds bytes in Python 3's protocol 2. Everything else in the format (dicts,
# lists, ints, str, bytes) needs no global at all.
BATCH_GLOBALS: AllowList = {
    **{(module, "_reconstruct"): None for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "_frombuffer"): None for module in ("numpy.core.numeric", "numpy._core.numeric")},
    ("numpy", "ndarray"): None,
    ("numpy", "dtype"): None,
    ("_codecs", "encode"): _latin1_encode,
}


def read_batch_pickle(path: Path, kind: str) -> dict[str, object]:
    """One batch file of `kind` (for messages); keys are str whether it came from Python 2 or 3."""
    with path.open("rb") as handle:
        try:
            batch = restricted_load(handle, BATCH_GLOBALS, f"a {kind} batch holds only arrays, lists, numbers "
                                    f"and bytes", encoding="latin1")
        except (pickle.UnpicklingError, EOFError, ValueError) as exc:
            raise DataError(f"{path} is not a {kind} batch pickle ({exc}); delete it and fetch it again") \
                from exc
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a {kind} batch pickle (expected a dict, found {type(batch).__name__})")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}


def read_batches(paths: list[Path], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate batch files into uint8 N x 3 x 32 x 32 images and int64 labels."""
    images, labels = [], []
    for path in paths:
        batch = read_batch_pickle(path, "CIFAR")
        if "data" not in batch or label_key not in batch:
            raise DataError(f"{path} has no 'data' and '{label_key}' entries; is it the right CIFAR variant?")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


@dataclass(frozen=True)
class CifarSource:
    info: DatasetInfo
    folder: str
    files: dict[Split, tuple[str, ...]]
    label_key: str
    url: str
    # The torchvision.datasets class that downloads it, by name: torchvision is imported only to download
    # (see pipeline/data/transforms.py for why).
    downloader: str
    needs_split_file: bool = False

    def fetch(self, root: Path) -> None:
        from torchvision import datasets

        root.mkdir(parents=True, exist_ok=True)
        try:
            getattr(datasets, self.downloader)(str(root), train=True, download=True)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"{self.info.name}: download into {root} failed ({exc}); on a machine without "
                            f"internet, place the extracted {self.url} at {root / self.folder}") from exc

    def checksums(self, root: Path) -> dict[str, str]:
        names = [*self.files["train"], *self.files["test"]]
        return file_checksums((root / self.folder / name for name in names), root)

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform:
        return tensor_transform(self.info, augment=augment, cutout=cutout, image_size=image_size,
                                crop_padding=4, flip=True)

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        paths = [root / self.folder / name for name in self.files[split]]
        require_files(self.info.name, paths,
                      f"Set data.download: true on a machine with internet, or download {self.url} and "
                      f"extract it into {root} (it unpacks to {self.folder}/).")
        return TensorImageDataset(*read_batches(paths, self.label_key), transform)


@register_dataset
def cifar10() -> CifarSource:
    return CifarSource(
        info=DatasetInfo("cifar10", 10, 32, 3, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
        folder="cifar-10-batches-py",
        files={"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        label_key="labels",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        downloader="CIFAR10",
    )


@register_dataset
def cifar100() -> CifarSource:
    return CifarSource(
        info=DatasetInfo("cifar100", 100, 32, 3, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
        folder="cifar-100-python",
        files={"train": ("train",), "test": ("test",)},
        label_key="fine_labels",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        downloader="CIFAR100",
    )
