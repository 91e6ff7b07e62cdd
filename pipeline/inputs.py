"""Fingerprints of the files a training stage reads: the input half of a checkpoint's resume key.

A checkpoint may only be resumed by a run that reads the same bytes it was trained on. The params slice
says how a run trains; these fingerprints say on what: prepare's splits, the dataset's source files and
an ImageFolder tree. A stage records them in every checkpoint (`pipeline.checkpoint`), so an edited
`prepare.split_seed` or a replaced data tree restarts the run (or, by hand, is refused naming the input)
instead of resuming weights trained on the old data. The genotype a retrain reads is in its params slice
already (its cells). Each value is a hex sha256 or `ABSENT`, so the key stays a plain dict of strings.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.data.files import sha256_file
from pipeline.data.registry import get_source
from pipeline.provenance import params_sha256

ABSENT = "absent"
SPLITS = "splits.npz"
MANIFEST = "manifest.json"


def file_fingerprint(path: Path) -> str:
    """sha256 of the file, or ABSENT: retrain runs without prepare's splits where a dataset has an
    official split, and a splits file appearing later must still count as a change."""
    return sha256_file(path) if path.is_file() else ABSENT


def source_fingerprint(dataset: str, root: Path) -> str:
    """One hash of a dataset's source files under `root`.

    A tree that prepare wrote (the offline ImageNet stand-in) carries a manifest with content digests of
    every file: those are used. Otherwise the dataset's own checksums (the ones prepare's manifest
    records): sha256 of each file for digits and CIFAR/SVHN, names and sizes for an ImageFolder tree,
    because hashing ImageNet's 140 GB at every start would cost more than most runs it protects.
    """
    manifest = root / MANIFEST
    if manifest.is_file():
        return params_sha256(json.loads(manifest.read_text(encoding="utf-8")).get("files"))
    return params_sha256(get_source(dataset).checksums(root))


def training_inputs(*, splits: Path | None, dataset: str, root: Path) -> dict[str, str]:
    """The resume-key inputs of a search, retrain or transfer: its splits file (None when the stage
    reads none) and the source files of `dataset` at `root`."""
    inputs = {"source data": source_fingerprint(dataset, root)}
    if splits is not None:
        inputs[SPLITS] = file_fingerprint(splits)
    return inputs
