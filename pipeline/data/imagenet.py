"""ImageNet (and its offline stand-in) as an ImageFolder tree: `train/<class>/*` and `val/<class>/*`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from pipeline.data.files import tree_digest
from pipeline.data.registry import DatasetInfo, Split, Transform, register_dataset
from pipeline.data.transforms import folder_transform
from pipeline.errors import DataError

FOLDERS: dict[Split, str] = {"train": "train", "test": "val"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEMO = "imagenet_demo"


def class_names(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())


def check_tree(name: str, root: Path, how_to_get: str) -> list[str]:
    """The class names, after checking that train/ and val/ exist and hold the same class folders.

    Both are checked whichever split is asked for, because ImageFolder numbers classes by sorted folder
    name: a class missing from one side would silently shift every later label.
    """
    expected = f"{name}: expected an ImageFolder tree at {root} with train/<class>/<image> and " \
               f"val/<class>/<image>"
    classes: dict[str, list[str]] = {}
    for folder in FOLDERS.values():
        directory = root / folder
        if not directory.is_dir():
            raise DataError(f"{expected}, but {directory} is not a directory. {how_to_get}")
        classes[folder] = class_names(directory)
        if not classes[folder]:
            raise DataError(f"{expected}, but {directory} has no class folders. {how_to_get}")
    only_train = sorted(set(classes["train"]) - set(classes["val"]))
    only_val = sorted(set(classes["val"]) - set(classes["train"]))
    if only_train or only_val:
        raise DataError(f"{expected}; the class folders differ: only in train/: {only_train[:5]}, "
                        f"only in val/: {only_val[:5]} (first five of each shown). {how_to_get}")
    return classes["train"]


@dataclass(frozen=True)
class FolderSource:
    info: DatasetInfo
    how_to_get: str
    needs_split_file: bool = False

    def fetch(self, root: Path) -> None:
        """Nothing to fetch: ImageNet has no public download, and the demo tree is written by prepare."""

    def checksums(self, root: Path) -> dict[str, str]:
        return {f"{folder}/": tree_digest(root / folder, contents=False)
                for folder in FOLDERS.values() if (root / folder).is_dir()}

    def transform(self, *, augment: bool, cutout: int, image_size: int | None) -> Transform:
        return folder_transform(self.info, augment=augment, cutout=cutout,
                                image_size=image_size or self.info.image_size)

    def load(self, split: Split, root: Path, transform: Transform) -> Dataset:
        from torchvision.datasets import ImageFolder  # only to read images (see pipeline/data/transforms.py)

        check_tree(self.info.name, root, self.how_to_get)
        directory = root / FOLDERS[split]
        try:
            return ImageFolder(str(directory), transform=transform)
        except FileNotFoundError as exc:
            raise DataError(f"{self.info.name}: no images found under {directory} ({exc}). "
                            f"{self.how_to_get}") from exc


def folder_dataset(root: Path) -> str:
    """`imagenet_demo` when `root` is the tree prepare wrote (its manifest says so), else `imagenet`.

    Stages name what they trained on after this, so no table presents a demo result as an ImageNet one,
    and networks get the demo's 10 classes instead of 1000.
    """
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "imagenet"
    return DEMO if isinstance(manifest, dict) and manifest.get("dataset") == DEMO else "imagenet"


@register_dataset
def imagenet() -> FolderSource:
    return FolderSource(
        info=DatasetInfo("imagenet", 1000, 224, 3, IMAGENET_MEAN, IMAGENET_STD),
        how_to_get="Download ILSVRC2012 from image-net.org, extract it into that layout (one folder per "
                   "class in both train/ and val/), and set data.imagenet_root to it.",
    )


@register_dataset
def imagenet_demo() -> FolderSource:
    return FolderSource(
        info=DatasetInfo("imagenet_demo", 10, 32, 3, IMAGENET_MEAN, IMAGENET_STD),
        how_to_get="Write it with `python -m pipeline prepare --dataset imagenet_demo "
                   "--out results/data/imagenet_demo`.",
    )
