"""NAS-Bench-201's CIFAR-10 split: the NB201 sub-grid's prepare reads the benchmark's split file.

The split files are hand-written in the distributed format (configs/nas-benchmark/cifar-split.txt of
D-X-Y/AutoDL-Projects: a JSON object, `"train"` and `"valid"` each `["int", [<indices as strings>]]`), over
a 10-image CIFAR-10 tree, so each expected half is written out by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from pipeline.data import load_splits
from pipeline.data.nb201_split import read_benchmark_split
from pipeline.errors import DataError
from pipeline.stages import prepare

TRAIN = [0, 3, 5, 7, 9]
VALID = [1, 2, 4, 6, 8]


def _split_text(train: list[object], valid: list[object]) -> str:
    """The benchmark file's layout: padded keys, a type name, then the indices as strings."""
    def entry(values: list[object]) -> str:
        return "[\"int\"   , [" + ", ".join(json.dumps(str(v) if isinstance(v, int) else v) for v in values) + "]]"
    return "{\n  \"train\"              : " + entry(train) + ",\n  \"valid\"              : " + entry(valid) + "\n}"


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    """CIFAR-10's torchvision layout with 2 training images per batch: 10 in all."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, count in [*((f"data_batch_{i}", 2) for i in range(1, 6)), ("test_batch", 2)]:
        images = np.zeros((count, 3 * 32 * 32), dtype=np.uint8)
        with (folder / name).open("wb") as handle:
            pickle.dump({b"data": images, b"labels": [0] * count}, handle)
    return tmp_path / "data"


def _prepare(tmp_path: Path, split: str, *extra: str, out: str = "out") -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  root: {tmp_path / 'data'}\nprepare:\n  nb201_cifar10_split: '{split}'\n")
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    argv = ["--params", str(params), "--dataset", "cifar10", "--out", str(tmp_path / out), *extra]
    assert prepare.run(parser.parse_args(argv)) == 0
    return tmp_path / out


def test_nb201_cifar10_searches_on_the_files_halves_and_records_its_sha256(cifar10_root: Path,
                                                                          tmp_path: Path) -> None:
    split = tmp_path / "cifar-split.txt"
    split.write_text(_split_text([9, 0, 7, 3, 5], VALID))  # the file's order is not ours to keep
    out = _prepare(tmp_path, str(split), "--subgrid", "nb201")
    halves = load_splits(out / "splits.npz")
    assert halves["search_train"].tolist() == TRAIN and halves["search_valid"].tolist() == VALID
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["nb201_cifar10_split"] == {"path": str(split),
                                               "sha256": hashlib.sha256(split.read_bytes()).hexdigest()}
    assert manifest["sizes"] == {"train": 10, "test": 2, "search_train": 5, "search_valid": 5}

    # An edited file (7 and 8 change halves) is new content: new splits, new fingerprints, new splits.npz.
    first = (out / "splits.npz").read_bytes()
    split.write_text(_split_text([0, 3, 5, 8, 9], [1, 2, 4, 6, 7]))
    _prepare(tmp_path, str(split), "--subgrid", "nb201")
    assert load_splits(out / "splits.npz")["search_train"].tolist() == [0, 3, 5, 8, 9]
    assert (out / "splits.npz").read_bytes() != first
    assert json.loads((out / "manifest.json").read_text())["nb201_cifar10_split"]["sha256"] == \
        hashlib.sha256(split.read_bytes()).hexdigest()


def test_the_main_grid_keeps_the_seeded_split(cifar10_root: Path, tmp_path: Path) -> None:
    """Without --subgrid nb201 the key is not read: the outputs equal those of a params file without it."""
    split = tmp_path / "cifar-split.txt"
    split.write_text(_split_text(TRAIN, VALID))
    main = _prepare(tmp_path, str(split), out="main")
    unset = _prepare(tmp_path, "", "--subgrid", "nb201", out="unset")
    assert "nb201_cifar10_split" not in json.loads((main / "manifest.json").read_text())
    assert (main / "splits.npz").read_bytes() == (unset / "splits.npz").read_bytes()


def test_a_missing_split_file_is_named(cifar10_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"prepare.nb201_cifar10_split: {tmp_path / 'nope.txt'} not found")):
        _prepare(tmp_path, str(tmp_path / "nope.txt"), "--subgrid", "nb201")


@pytest.mark.parametrize(("text", "expected"), [
    (_split_text([0, 1, 2, 3, 4], [4, 5, 6, 7, 8]), "1 indices are in both train and valid, e.g. [4]"),
    (_split_text([0, 3, 5, 7, 10], VALID), "'train': 1 indices outside the training set's 0..9, e.g. [10]"),
    (_split_text([0, 3, 5, 7, 7], VALID), "'train' repeats 1 indices"),
    (_split_text([0, 3, 5, 7], [1, 2, 4, 6, 8, 9]), "splits 4 + 6 images; the training set has 10, the "
                                                    "benchmark's halves are 5 + 5"),
    (_split_text([0, 3, 5, 7], VALID), "splits 4 + 5 images"),
    (_split_text(["0", "3", "x5", "7", "9"], VALID), "'train': 'x5' is not an index"),
    (_split_text(TRAIN, VALID).replace('"int"', '"float"', 1), "'train' must be [\"int\", [<indices as strings>]]"),
    ('{"train": ["int", ["0"]]}', "must hold exactly the keys ['train', 'valid'], found ['train']"),
    ('[1, 2]', "must hold exactly the keys ['train', 'valid'], found list"),
    ('{"train": ', "is not a JSON split file"),
])
def test_a_split_file_that_is_not_the_benchmarks_split_is_refused_naming_it(tmp_path: Path, text: str,
                                                                           expected: str) -> None:
    split = tmp_path / "cifar-split.txt"
    split.write_text(text)
    with pytest.raises(DataError) as refused:
        read_benchmark_split(split, 10)
    assert str(split) in str(refused.value) and expected in str(refused.value)
