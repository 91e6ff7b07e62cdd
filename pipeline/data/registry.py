"""The dataset registry: one name, one `DatasetSource`.

Each dataset module registers a zero-argument factory with `@register_dataset`; the factory's name is the
dataset's name. Factories run on lookup, not at import, so a dataset whose constants are computed from
data (digits' mean and std) costs nothing until it is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from torch.utils.data import Dataset

from pipeline.errors import DataError

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
Transform = Callable[..., object]


@dataclass(frozen=True)
class DatasetInfo:
    """What a network needs to know about a dataset before seeing any of it."""

    name: str
    num_classes: int
    image_size: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


class DatasetSource(Protocol):
    """Where a dataset's files are, how to read one split, and how to augment it."""

    @property
    def info(self) -> DatasetInfo: ...

    @property
    def needs_split_file(self) -> bool:
        """True when the dataset has no official test split, so train/test come from prepare's splits.npz."""
        ...

    def fetch(self, root: Path) -> None:
        """Download the files into `root` (only called when `data.download` is true)."""
        ...

    def checksums(self, root: Path) -> dict[str, str]:
        """sha256 of each source file found, keyed by a machine-independent name, for prepare's manifest."""
        ...

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform: ...

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        """The whole split, each item `(image tensor, int label)`; missing files raise DataError."""
        ...


_FACTORIES: dict[str, Callable[[], DatasetSource]] = {}


def register_dataset(factory: Callable[[], DatasetSource]) -> Callable[[], DatasetSource]:
    """Register `factory` under its function name."""
    name = factory.__name__
    if name in _FACTORIES:
        raise ValueError(f"dataset '{name}' is registered twice")
    _FACTORIES[name] = factory
    return factory


def list_datasets() -> list[str]:
    return sorted(_FACTORIES)


def get_source(name: str) -> DatasetSource:
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise DataError(f"unknown dataset '{name}'; known datasets: {', '.join(list_datasets())}") from None
    return factory()


def get_dataset_info(name: str) -> DatasetInfo:
    return get_source(name).info
