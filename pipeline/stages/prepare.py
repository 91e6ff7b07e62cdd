"""`prepare`: fix a dataset's splits and record what they were made from.

`python -m pipeline prepare --params params.yaml --dataset D --out results/data/D` writes
`splits.npz` (DARTS' search halves of the training split; for digits also its seeded train/test
hold-out) and `manifest.json` (sizes, checksums of the splits and of every source file found,
provenance). `--dataset imagenet_demo` writes the offline ImageNet stand-in instead: an ImageFolder
tree of digits PNGs and its manifest. The text corpora (`ptb`, `wikitext2`, `text_demo`) are copied or
written with their manifest (pipeline/data/text/prepare.py). `--dataset imagenet` writes the samples a
direct ImageNet search uses: per class, `prepare.imagenet_search.weights_fraction` of the training images of the tree at
`data.imagenet_root` for the weights and a disjoint `arch_fraction` for the architecture. `--subgrid nb201`
prepares for the NAS-Bench-201 sub-grid: its cifar10 search halves are then the benchmark's own split
(`prepare.nb201_cifar10_split`, pipeline/data/nb201_split.py) where that key names a file.

Reruns with the same params and files write byte-identical outputs: the manifest keeps the creation
time of the content it describes, and splits.npz carries its provenance without one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_write_json
from pipeline.config import load_params
from pipeline.data.demo_tree import write_demo_tree
from pipeline.data.digits import source_checksums
from pipeline.data.factory import build_dataset
from pipeline.data.files import sha256_file, tree_digest
from pipeline.data.imagenet import folder_dataset
from pipeline.data.nb201_split import BENCHMARK_SPLIT_DATASET, read_benchmark_split
from pipeline.data.registry import get_source
from pipeline.data.splits import holdout_split, per_class_sample, save_splits, search_split
from pipeline.data.text.prepare import TEXT_DATASETS, prepare_text_corpus
from pipeline.errors import DataError
from pipeline.layout import NB201
from pipeline.provenance import provenance

DEMO = "imagenet_demo"
IMAGENET = "imagenet"


@dataclass(frozen=True)
class SplitSettings:
    """Everything that decides the content of prepare's outputs (and so goes into their params hash)."""

    test_fraction: float
    split_seed: int
    search_portion: float
    demo_image_size: int
    demo_val_fraction: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file (default: %(default)s)")
    parser.add_argument("--dataset", required=True,
                        help="a registered dataset; imagenet_demo writes the offline ImageNet stand-in")
    parser.add_argument("--out", type=Path, required=True,
                        help="output directory, e.g. results/data/<dataset>")
    parser.add_argument("--subgrid", choices=[NB201], default=None,
                        help="the sub-grid prepared for (default: the main grid); nb201 reads "
                             "prepare.nb201_cifar10_split for cifar10")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    settings = SplitSettings(
        test_fraction=params.prepare.test_fraction,
        split_seed=params.prepare.split_seed,
        # The search halves are fixed here, once per dataset, so every method and seed searches on the
        # same samples; the portion is the search stage's knob.
        search_portion=params.prepare.search_portion,
        demo_image_size=params.prepare.imagenet_demo.image_size,
        demo_val_fraction=params.prepare.imagenet_demo.val_fraction,
    )
    if args.dataset == DEMO:
        manifest = prepare_imagenet_demo(args.out, settings)
    elif args.dataset in TEXT_DATASETS:
        manifest = prepare_text_corpus(args.dataset, args.out, source_root=Path(params.data.root),
                                       demo_vocab_size=params.prepare.text_demo.vocab_size)
        _write_manifest(args.out / "manifest.json", manifest)
    elif args.dataset == IMAGENET:
        sample = params.prepare.imagenet_search
        manifest = prepare_imagenet_search(args.out, params.data.root_of(IMAGENET), sample.weights_fraction,
                                           sample.arch_fraction, settings.split_seed)
    else:
        manifest = prepare_dataset(args.dataset, args.out, settings, root=params.data.root_of(args.dataset),
                                   download=params.data.download,
                                   benchmark_split=_benchmark_split(params.prepare.nb201_cifar10_split,
                                                                    args.dataset, args.subgrid))
    print(f"prepare {args.dataset}: {manifest['sizes']} -> {args.out}")
    return 0


def _benchmark_split(path: str, dataset: str, subgrid: str | None) -> Path | None:
    """The NB201 split file that fixes this prepare's search halves, if any: only the NB201 sub-grid's
    CIFAR-10 (the main grid keeps DARTS' seeded halves), and only when the params name one."""
    return Path(path) if path and subgrid == NB201 and dataset == BENCHMARK_SPLIT_DATASET else None


def prepare_dataset(name: str, out: Path, settings: SplitSettings, *, root: Path, download: bool = False,
                    benchmark_split: Path | None = None) -> dict[str, Any]:
    """Write `splits.npz` and `manifest.json` for a registered dataset; return the manifest.

    `benchmark_split`: NAS-Bench-201's split file, whose train / valid halves become the search halves
    instead of the seeded ones (search_portion then does not apply). Its sha256 goes into the provenance
    inside splits.npz and into the manifest, so an edited file changes both and everything downstream
    reruns (the training stages fingerprint splits.npz, pipeline/inputs.py).
    """
    source = get_source(name)
    if benchmark_split and not benchmark_split.is_file():
        raise DataError(f"prepare.nb201_cifar10_split: {benchmark_split} not found (NAS-Bench-201's "
                        f"cifar-split.txt; README, NAS-Bench-201)")
    split_file = {"path": str(benchmark_split), "sha256": sha256_file(benchmark_split)} if benchmark_split else {}
    # The file's content, not its path (moving it changes no result); absent without a file, so the seeded
    # split's outputs stay byte-identical to those written before the key existed.
    fingerprint = {"nb201_cifar10_split_sha256": split_file["sha256"]} if split_file else {}
    record = provenance("prepare", {**asdict(settings), **fingerprint}, dataset=name)
    if download:
        source.fetch(root)
    if source.needs_split_file:
        labels = np.asarray(source.load("train", root, transform=_identity).targets)
        train, test = holdout_split(labels, settings.test_fraction, settings.split_seed)
        arrays = {"train": train, "test": test}
        sizes = {"train": len(train), "test": len(test)}
    else:
        arrays = {}
        sizes = {split: len(build_dataset(name, split, root=root, augment=False))
                 for split in ("train", "test")}
    if benchmark_split:
        arrays["search_train"], arrays["search_valid"] = read_benchmark_split(benchmark_split, sizes["train"])
    else:
        arrays["search_train"], arrays["search_valid"] = search_split(
            sizes["train"], settings.split_seed, settings.search_portion)
    sizes |= {key: len(arrays[key]) for key in ("search_train", "search_valid")}
    splits_path = out / "splits.npz"
    save_splits(splits_path, arrays, _timeless(record))
    manifest = {
        "dataset": name,
        "sizes": sizes,
        "settings": asdict(settings),
        "files": {"splits.npz": sha256_file(splits_path)},
        "source_files": source.checksums(root),
        **({"nb201_cifar10_split": split_file} if split_file else {}),
        "provenance": record,
    }
    _write_manifest(out / "manifest.json", manifest)
    return manifest


def prepare_imagenet_search(out: Path, root: Path, weights_fraction: float, arch_fraction: float,
                            seed: int) -> dict[str, Any]:
    """Write the seeded per-class samples of a direct ImageNet search (the PC-DARTS protocol); return the manifest.

    `search_train` / `search_valid` index the training split of the ImageFolder tree at `root` (ImageNet,
    or the demo stand-in, recognised by its manifest); listing the tree reads no image.
    """
    source_name = folder_dataset(root)
    source = get_source(source_name)
    settings = {"weights_fraction": weights_fraction, "arch_fraction": arch_fraction, "split_seed": seed}
    record = provenance("prepare", settings, dataset=IMAGENET)
    labels = np.asarray(source.load("train", root, transform=_identity).targets)
    search_train, search_valid = per_class_sample(labels, (weights_fraction, arch_fraction), seed)
    arrays = {"search_train": search_train, "search_valid": search_valid}
    splits_path = out / "splits.npz"
    save_splits(splits_path, arrays, _timeless(record))
    manifest = {
        "dataset": IMAGENET,
        "source": source_name,
        "sizes": {"train": len(labels), "classes": len(np.unique(labels)),
                  "search_train": len(search_train), "search_valid": len(search_valid)},
        "settings": settings,
        "files": {"splits.npz": sha256_file(splits_path)},
        "source_files": source.checksums(root),
        "provenance": record,
    }
    _write_manifest(out / "manifest.json", manifest)
    return manifest


def prepare_imagenet_demo(out: Path, settings: SplitSettings) -> dict[str, Any]:
    """Write the ImageFolder stand-in and its manifest into a temporary directory, then swap it in."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        counts = write_demo_tree(staging, image_size=settings.demo_image_size,
                                 val_fraction=settings.demo_val_fraction, seed=settings.split_seed)
        manifest = {
            "dataset": DEMO,
            "sizes": counts,
            "settings": asdict(settings),
            "files": {f"{folder}/": tree_digest(staging / folder, contents=True) for folder in counts},
            "source_files": source_checksums(),
            "provenance": provenance("prepare", asdict(settings), dataset=DEMO),
        }
        _keep_created_time(manifest, out / "manifest.json")
        atomic_write_json(staging / "manifest.json", manifest)
        _replace_directory(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _identity(image: Any) -> Any:
    return image


def _timeless(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "created_utc"}


def _keep_created_time(manifest: dict[str, Any], existing: Path) -> None:
    """Reuse the creation time of an existing manifest that describes the same content."""
    try:
        old = json.loads(existing.read_text(encoding="utf-8"))
        old_created = old["provenance"]["created_utc"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    new = json.loads(json.dumps(manifest))
    old["provenance"] = _timeless(old["provenance"])
    new["provenance"] = _timeless(new["provenance"])
    if old == new:
        manifest["provenance"]["created_utc"] = old_created


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    _keep_created_time(manifest, path)
    atomic_write_json(path, manifest)


def _replace_directory(staging: Path, out: Path) -> None:
    """Move `staging` to `out`; an existing `out` is set aside first and removed only after the swap."""
    if not out.exists():
        os.replace(staging, out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.replace(out, retired / out.name)
    os.replace(staging, out)
    shutil.rmtree(retired)
