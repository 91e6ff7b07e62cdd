"""Datasets, splits and deterministic loaders.

Importing this package registers every dataset (digits, cifar10, cifar100, svhn, imagenet16_120, imagenet,
imagenet_demo); `build_dataset` is the only way other modules construct one.
"""

from pipeline.data import cifar, digits, imagenet, imagenet16, svhn  # noqa: F401  (imported to register them)
from pipeline.data.factory import build_dataset
from pipeline.data.imagenet import folder_dataset
from pipeline.data.registry import DatasetInfo, get_dataset_info, list_datasets, register_dataset
from pipeline.data.sampling import EpochSampler, cycle_batches, make_loader
from pipeline.data.splits import load_splits, search_split
from pipeline.data.transforms import Cutout

__all__ = [
    "Cutout",
    "DatasetInfo",
    "EpochSampler",
    "build_dataset",
    "cycle_batches",
    "folder_dataset",
    "get_dataset_info",
    "list_datasets",
    "load_splits",
    "make_loader",
    "register_dataset",
    "search_split",
]
