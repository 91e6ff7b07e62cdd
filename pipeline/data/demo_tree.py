"""The offline stand-in for ImageNet: digits written as an ImageFolder tree of RGB PNGs.

With it the demo exercises the real ImageFolder reading, PIL decoding, ImageNet augmentation and the
ImageNet network without a 140 GB download.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from pipeline.data.digits import raw_digits, upsample
from pipeline.data.imagenet import FOLDERS
from pipeline.data.splits import holdout_split


def write_demo_tree(directory: Path, *, image_size: int, val_fraction: float, seed: int) -> dict[str, int]:
    """Write `train/<digit>/<index>.png` and `val/<digit>/<index>.png`; return the count per folder.

    The val hold-out is drawn exactly like digits' test split, so with equal fractions and seeds the
    stand-in's val images are the digits never seen during search. PNG bytes depend only on the pixels,
    so a rerun writes identical files.
    """
    images, labels = raw_digits()
    pixels = upsample(images, image_size).mul(255).round().to(torch.uint8).expand(-1, 3, -1, -1)
    pixels = pixels.permute(0, 2, 3, 1).contiguous().numpy()
    train, val = holdout_split(labels.numpy(), val_fraction, seed)
    counts = {}
    for split, indices in (("train", train), ("test", val)):
        folder = directory / FOLDERS[split]
        for label in labels.unique().tolist():
            (folder / str(label)).mkdir(parents=True, exist_ok=True)
        for index in tqdm(indices.tolist(), desc=f"imagenet_demo {folder.name}", unit="img", leave=False):
            Image.fromarray(pixels[index]).save(folder / str(int(labels[index])) / f"{index:04d}.png")
        counts[folder.name] = len(indices)
    return counts
