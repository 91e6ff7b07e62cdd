"""`build_dataset`: the one entry point from a dataset name to a torch Dataset."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from pipeline.data.registry import SPLITS, Split, get_source
from pipeline.data.splits import load_splits
from pipeline.errors import DataError


def build_dataset(name: str, split: Split, *, root: Path | str, augment: bool, cutout: int = 0,
                  download: bool = False, image_size: int | None = None,
                  indices_file: Path | str | None = None) -> Dataset:
    """One split of a registered dataset, each item `(normalised CHW float tensor, int label)`.

    `split` is "train" or "test" (ImageNet's val/, digits' prepared hold-out). `augment` turns on the
    dataset's random augmentation and, with `cutout` > 0, Cutout. `image_size` is for ImageFolder
    datasets only. `indices_file` is a splits.npz from prepare: when it has an array named after the
    split, the split is restricted to those indices (required for digits, which has no official split).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got '{split}'")
    source = get_source(name)
    root = Path(root)
    if download:
        source.fetch(root)
    transform = source.transform(augment=augment, cutout=cutout, image_size=image_size)
    indices = None
    if indices_file is not None:
        indices = load_splits(Path(indices_file)).get(split)
    if indices is None and source.needs_split_file:
        where = f"{indices_file} has no '{split}' array" if indices_file else "no indices_file was given"
        raise DataError(f"{name} has no official {split} split and {where}; write it with `python -m "
                        f"pipeline prepare --dataset {name} --out results/data/{name}` and pass its "
                        "splits.npz as indices_file")
    dataset = source.load(split, root, transform)
    if indices is None:
        return dataset
    if len(indices) and (indices.min() < 0 or indices.max() >= len(dataset)):
        raise DataError(f"{indices_file}: '{split}' indices reach {indices.max()}, but the {name} {split} "
                        f"split has {len(dataset)} samples; was it prepared from different files?")
    return Subset(dataset, indices.tolist())
