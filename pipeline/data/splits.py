"""Seeded index splits, and the splits.npz file that carries them from prepare to the other stages."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_write_bytes
from pipeline.errors import DataError

# A fixed timestamp for every member: numpy's savez stamps the current time, so rewriting identical
# arrays would change the file's bytes and its checksum.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
PROVENANCE_KEY = "provenance"


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, *stream])


def holdout_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (kept, held_out) indices; each class gives `round(fraction * count)` samples to held_out.

    Stratified so that a small hold-out still has every class in its dataset proportion.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold-out fraction must be in (0, 1), got {fraction}")
    rng = _rng(seed)
    held_out = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held_out.append(members[: round(fraction * len(members))])
    held = np.sort(np.concatenate(held_out))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    return kept.astype(np.int64), held.astype(np.int64)


def search_split(n_train: int, seed: int, portion: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (search_train, search_valid) positions in a training split of `n_train` samples.

    DARTS searches on half of the training set and uses the other half for the architecture step;
    the halves come from one seeded permutation, so they are disjoint and cover the whole split.
    """
    if not 0.0 < portion < 1.0:
        raise ValueError(f"search portion must be in (0, 1), got {portion}")
    cut = int(np.floor(portion * n_train))
    if cut == 0 or cut == n_train:
        raise ValueError(f"portion {portion} of {n_train} samples leaves one search half empty")
    order = _rng(seed, 1).permutation(n_train)
    return np.sort(order[:cut]).astype(np.int64), np.sort(order[cut:]).astype(np.int64)


def per_class_sample(labels: np.ndarray, fractions: tuple[float, ...], seed: int) -> tuple[np.ndarray, ...]:
    """Disjoint sorted index samples, the i-th holding `fractions[i]` of every class (at least one image each).

    The PC-DARTS protocol for searching on ImageNet: 10% of each class for the weights and 2.5% for the
    architecture. Per class, so the small architecture sample still covers all classes in proportion.
    """
    if sum(fractions) > 1.0:
        raise ValueError(f"fractions {fractions} sum to more than 1; the samples are disjoint")
    rng = _rng(seed, 2)
    samples: list[list[np.ndarray]] = [[] for _ in fractions]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        sizes = [max(1, round(fraction * len(members))) for fraction in fractions]
        if sum(sizes) > len(members):
            raise DataError(f"class {label} has {len(members)} training images, too few for disjoint samples "
                            f"of {sizes} images (fractions {fractions})")
        start = 0
        for sample, size in zip(samples, sizes, strict=True):
            sample.append(members[start : start + size])
            start += size
    return tuple(np.sort(np.concatenate(sample)).astype(np.int64) for sample in samples)


def encode_splits(arrays: Mapping[str, np.ndarray], provenance: Mapping[str, Any]) -> bytes:
    """The bytes of an .npz holding `arrays` and a JSON provenance string; equal inputs, equal bytes."""
    members = {**{name: np.asarray(array) for name, array in arrays.items()},
               PROVENANCE_KEY: np.array(json.dumps(provenance, sort_keys=True))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(members):
            payload = io.BytesIO()
            np.lib.format.write_array(payload, members[name], allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, payload.getvalue())
    return buffer.getvalue()


def save_splits(path: Path, arrays: Mapping[str, np.ndarray], provenance: Mapping[str, Any]) -> None:
    atomic_write_bytes(path, encode_splits(arrays, provenance))


def load_splits(path: Path) -> dict[str, np.ndarray]:
    """Every index array of a splits.npz (the provenance string is left out)."""
    if not path.is_file():
        raise DataError(f"split file {path} not found; write it with `python -m pipeline prepare "
                        f"--dataset <name> --out {path.parent}`")
    try:
        with np.load(path, allow_pickle=False) as content:
            return {name: content[name] for name in content.files if name != PROVENANCE_KEY}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not a readable splits.npz ({exc}); run prepare again") from exc
