"""NAS-Bench-201's own split of the CIFAR-10 training set (its "cifar10-valid" halves), read from the file
the benchmark's authors distribute.

NB201 trained every architecture of its cifar10-valid entries on 25k training images and validated on the
other 25k; a search on the same halves makes our valid accuracies comparable with the benchmark's. The file
(`configs/nas-benchmark/cifar-split.txt` of D-X-Y/AutoDL-Projects) is a JSON object whose keys `train` and
`valid` each hold `["int", [<decimal strings>]]`: a type name and the values as strings, the format of that
repository's config files. The indices are positions in the CIFAR-10 training set (its 5 batch files in
order).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pipeline.errors import DataError

# The dataset (pipeline/data registry name) of the benchmark's split: NB201's cifar10-valid.
BENCHMARK_SPLIT_DATASET = "cifar10"
HALVES = ("train", "valid")


def read_benchmark_split(path: Path, n_train: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, valid) positions of the split file at `path` in a training set of `n_train` images.

    Refused, naming the file and what is wrong, unless both halves are integers in [0, n_train), neither
    repeats an index, they share none and each holds half the training set (25,000 + 25,000 for CIFAR-10):
    anything else is not the benchmark's split of this data.
    """
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"prepare.nb201_cifar10_split: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"prepare.nb201_cifar10_split: {path} is not a JSON split file ({exc})") from exc
    if not isinstance(content, dict) or set(content) != set(HALVES):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise DataError(f"prepare.nb201_cifar10_split: {path} must hold exactly the keys {list(HALVES)}, "
                        f"found {found}")
    train, valid = (_half(path, name, content[name], n_train) for name in HALVES)
    shared = np.intersect1d(train, valid)
    if shared.size:
        raise DataError(f"prepare.nb201_cifar10_split: {path}: {shared.size} indices are in both train and "
                        f"valid, e.g. {shared[:5].tolist()}")
    half = n_train // 2
    if (len(train), len(valid)) != (half, n_train - half) or n_train % 2:
        raise DataError(f"prepare.nb201_cifar10_split: {path} splits {len(train)} + {len(valid)} images; "
                        f"the training set has {n_train}, the benchmark's halves are {half} + {half} "
                        f"(is the file for another dataset?)")
    return train, valid


def _half(path: Path, name: str, entry: object, n_train: int) -> np.ndarray:
    """One half's sorted indices, from `["int", ["0", "5", ...]]`."""
    where = f"prepare.nb201_cifar10_split: {path}: '{name}'"
    if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == "int" and isinstance(entry[1], list)):
        raise DataError(f"{where} must be [\"int\", [<indices as strings>]], found {str(entry)[:80]}")
    try:
        indices = np.array([_integer(value) for value in entry[1]], dtype=np.int64)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None
    outside = indices[(indices < 0) | (indices >= n_train)]
    if outside.size:
        raise DataError(f"{where}: {outside.size} indices outside the training set's 0..{n_train - 1}, "
                        f"e.g. {outside[:5].tolist()}")
    unique = np.unique(indices)
    if unique.size != indices.size:
        raise DataError(f"{where} repeats {indices.size - unique.size} indices")
    return unique


def _integer(value: object) -> int:
    """A decimal index written as a string (the file's form) or a JSON integer; never a float or bool."""
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not an index")
