"""Fingerprints of the files a training stage reads: the input half of a checkpoint's resume key.

A checkpoint may only be resumed by a run that reads the same bytes it was trained on. The params slice
says how a run trains; these fingerprints say on what, and with which code: prepare's splits, the
dataset's source files (or ImageFolder tree) and the pipeline package's sources. A stage records them in
every checkpoint (`pipeline.checkpoint`), so an edited `prepare.split_seed`, a replaced data tree or new
code restarts the run (or, by hand, is refused naming the input) instead of resuming, or merely
rewriting the outputs of, a run made from the old ones. The genotype a retrain reads is in its params
slice already (its cells). Each value is a hex sha256 or `ABSENT`: the key stays a plain dict of strings.
"""

from __future__ import annotations

import hashlib
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


def code_fingerprint() -> str:
    """One hash of every Python source of the pipeline package (relative path and content).

    The whole package, not the modules a stage imports: the import set depends on what else ran in the
    process, and a key that varies with it would make resuming flaky. The price is that any code change
    restarts (or, by hand, refuses to resume) a run in progress; a finished run's outputs are untouched.
    Without it, a workflow engine that reruns a stage after a code change (DVC's code deps) would find a
    finished checkpoint with the same params and rewrite the old results as new.
    """
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(f"{path.relative_to(package).as_posix()}\t{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def training_inputs(*, splits: Path | None, dataset: str, root: Path) -> dict[str, str]:
    """The resume-key inputs of a search, retrain or transfer: its splits file (None when the stage
    reads none), the source files of `dataset` at `root` and the code."""
    inputs = {"source data": source_fingerprint(dataset, root), "code": code_fingerprint()}
    if splits is not None:
        inputs[SPLITS] = file_fingerprint(splits)
    return inputs
