"""Augmentation and normalisation pipelines, as the DARTS papers use them.

torchvision is imported where a pipeline is built, not with this module: importing the data package
(which every params validation does, Snakemake's parsing of the workflow included) would otherwise
import all of torchvision, about as long as importing torch itself, in stages that never transform an image.
"""

from __future__ import annotations

import torch

from pipeline.data.registry import DatasetInfo, Transform
from pipeline.errors import DataError


class Cutout:
    """Zero one `length` x `length` square whose centre is uniform over the image, clipped at the borders.

    Applied after normalisation, as in DARTS, so the hole is zero in normalised space (the dataset mean),
    not black.
    """

    def __init__(self, length: int) -> None:
        if length <= 0:
            raise ValueError(f"cutout length must be positive, got {length}")
        self.length = length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        cy = int(torch.randint(height, ()).item())
        cx = int(torch.randint(width, ()).item())
        top, left = cy - self.length // 2, cx - self.length // 2
        mask = torch.ones((height, width), dtype=image.dtype)
        mask[max(top, 0) : top + self.length, max(left, 0) : left + self.length] = 0
        return image * mask

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def _finish(info: DatasetInfo, cutout: int) -> list[Transform]:
    from torchvision.transforms import v2

    steps: list[Transform] = [
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(list(info.mean), list(info.std)),
        v2.ToPureTensor(),
    ]
    if cutout > 0:
        steps.append(Cutout(cutout))
    return steps


def tensor_transform(info: DatasetInfo, *, augment: bool, cutout: int, image_size: int | None,
                     crop_padding: int, flip: bool) -> Transform:
    """For datasets held in memory as CHW tensors (digits, CIFAR, SVHN).

    Augmentation is a padded random crop back to the native size and, where mirror images are still
    the same class, a horizontal flip; cutout belongs to augmentation, so it needs `augment`. These
    datasets are used at their native size only: resizing them would change what the papers measured.
    """
    if image_size not in (None, info.image_size):
        raise DataError(f"{info.name} images are {info.image_size}x{info.image_size}; image_size="
                        f"{image_size} can only be chosen for ImageFolder datasets (imagenet, imagenet_demo)")
    from torchvision.transforms import v2

    steps: list[Transform] = []
    if augment:
        steps.append(v2.RandomCrop(info.image_size, padding=crop_padding))
        if flip:
            steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps + _finish(info, cutout if augment else 0))


def folder_transform(info: DatasetInfo, *, augment: bool, cutout: int, image_size: int) -> Transform:
    """For ImageFolder images (PIL): DARTS' ImageNet pipeline at any `image_size`.

    Evaluation resizes by 256/224 before the centre crop so that a smaller `image_size` sees the same
    field of view as the standard 224 crop.
    """
    from torchvision.transforms import v2

    if augment:
        steps: list[Transform] = [
            v2.RandomResizedCrop(image_size),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2),
        ]
    else:
        steps = [v2.Resize(int(image_size * 256 / 224)), v2.CenterCrop(image_size)]
    return v2.Compose([*steps, v2.PILToTensor(), *_finish(info, cutout if augment else 0)])
