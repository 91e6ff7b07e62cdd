"""ImageNet16-120 from batch files the tests write in the released format (Chrabaszcz et al., 2017).

The format, as the downsampled-ImageNet release documents it: a pickled dict per file with 'data', one
row per image of 768 uint8 values (the 16 x 16 red plane, then green, then blue, each row-major), and
'labels', 1-based classes 1..1000. NAS-Bench-201 keeps classes 1..120 and numbers them from 0.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from faultlib import Plant

from pipeline.data import build_dataset, get_dataset_info
from pipeline.data.imagenet16 import FILES, FOLDER
from pipeline.errors import DataError


def _row(image_chw: np.ndarray) -> np.ndarray:
    return np.concatenate([image_chw[0].ravel(), image_chw[1].ravel(), image_chw[2].ravel()])


def _write(root: Path, labels: dict[str, list[int]], seed: int = 0) -> dict[str, np.ndarray]:
    """Every batch file (files `labels` leaves out hold one image of class 700); returns the CHW images."""
    rng = np.random.default_rng(seed)
    written = {}
    for name in (*FILES["train"], *FILES["test"]):
        file_labels = labels.get(name, [700])
        images = rng.integers(0, 256, size=(len(file_labels), 3, 16, 16), dtype=np.uint8)
        batch = {"data": np.stack([_row(im) for im in images]), "labels": file_labels}
        (root / FOLDER).mkdir(parents=True, exist_ok=True)
        (root / FOLDER / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = images
    return written


def test_keeps_the_first_120_classes_numbered_from_zero(tmp_path: Path) -> None:
    labels = {"train_data_batch_1": [1, 121, 120, 1000], "train_data_batch_10": [57],
              "val_data": [500, 2, 119]}
    written = _write(tmp_path, labels)
    train = build_dataset("imagenet16_120", "train", root=tmp_path, augment=False)
    test = build_dataset("imagenet16_120", "test", root=tmp_path, augment=False)
    assert [train[i][1] for i in range(len(train))] == [0, 119, 56]
    assert [test[i][1] for i in range(len(test))] == [1, 118]
    # The kept images keep their pixels and planes: batch 1's third image is the second one kept.
    info = get_dataset_info("imagenet16_120")
    raw = written["train_data_batch_1"][2]
    expected = (raw[1, 7, 4] / 255 - info.mean[1]) / info.std[1]
    assert train[1][0][1, 7, 4].item() == pytest.approx(expected, abs=1e-5)
    assert tuple(train[0][0].shape) == (3, 16, 16)
    assert info.num_classes == 120 and info.image_size == 16


def test_missing_batches_are_listed_and_say_where_they_come_from(tmp_path: Path) -> None:
    _write(tmp_path, {"train_data_batch_1": [1]})
    (tmp_path / FOLDER / "train_data_batch_7").unlink()
    with pytest.raises(DataError, match=r"train_data_batch_7(.|\n)*image-net.org"):
        build_dataset("imagenet16_120", "train", root=tmp_path, augment=False)
    with pytest.raises(DataError, match="cannot be downloaded"):
        build_dataset("imagenet16_120", "train", root=tmp_path, augment=False, download=True)


def test_a_batch_of_another_resolution_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, {"val_data": [1]})
    (tmp_path / FOLDER / "val_data").write_bytes(
        pickle.dumps({"data": np.zeros((1, 3 * 32 * 32), np.uint8), "labels": [1]}))
    with pytest.raises(DataError, match=r"val_data: 'data' has shape \(1, 3072\), expected N x 768"):
        build_dataset("imagenet16_120", "test", root=tmp_path, augment=False)


def test_a_planted_batch_is_refused_before_its_code_runs(tmp_path: Path) -> None:
    _write(tmp_path, {"val_data": [1]})
    marker = tmp_path / "pwned"
    (tmp_path / FOLDER / "val_data").write_bytes(
        pickle.dumps({"data": np.zeros((1, 768), np.uint8), "labels": [1], "x": Plant(marker)}, protocol=2))
    with pytest.raises(DataError, match="not a ImageNet16 batch pickle \\(refused to import"):
        build_dataset("imagenet16_120", "test", root=tmp_path, augment=False)
    assert not marker.exists()
