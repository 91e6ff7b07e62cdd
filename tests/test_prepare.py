"""The prepare stage: split files, manifests, the ImageFolder stand-in, and byte-identical reruns."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from pipeline.data import build_dataset, load_splits
from pipeline.data.files import sha256_file
from pipeline.stages import prepare

SETTINGS = prepare.SplitSettings(test_fraction=0.25, split_seed=0, search_portion=0.5, demo_image_size=16,
                                 demo_val_fraction=0.25)


def test_digits_prepare_writes_splits_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "results" / "data" / "digits"
    manifest = prepare.prepare_dataset("digits", out, SETTINGS, root=tmp_path / "data")
    splits = load_splits(out / "splits.npz")
    assert set(splits) == {"train", "test", "search_train", "search_valid"}
    assert len(splits["train"]) + len(splits["test"]) == 1797
    assert not set(splits["train"]) & set(splits["test"])
    n_train = len(splits["train"])
    assert np.array_equal(np.union1d(splits["search_train"], splits["search_valid"]), np.arange(n_train))
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["sizes"] == {"train": n_train, "test": 1797 - n_train,
                                "search_train": n_train // 2, "search_valid": n_train - n_train // 2}
    assert on_disk["files"]["splits.npz"] == sha256_file(out / "splits.npz")
    assert list(on_disk["source_files"]) == ["sklearn/datasets/data/digits.csv.gz"]
    assert on_disk["provenance"]["stage"] == "prepare" and on_disk["provenance"]["dataset"] == "digits"
    test = build_dataset("digits", "test", root=tmp_path, augment=False, indices_file=out / "splits.npz")
    assert len(test) == len(splits["test"])


def test_digits_prepare_rerun_is_byte_identical(tmp_path: Path) -> None:
    prepare.prepare_dataset("digits", tmp_path, SETTINGS, root=tmp_path)
    first = {name: (tmp_path / name).read_bytes() for name in ("splits.npz", "manifest.json")}
    prepare.prepare_dataset("digits", tmp_path, SETTINGS, root=tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in first} == first


def test_changed_settings_change_the_splits(tmp_path: Path) -> None:
    prepare.prepare_dataset("digits", tmp_path / "a", SETTINGS, root=tmp_path)
    other = prepare.SplitSettings(**{**SETTINGS.__dict__, "split_seed": 1})
    prepare.prepare_dataset("digits", tmp_path / "b", other, root=tmp_path)
    assert (tmp_path / "a" / "splits.npz").read_bytes() != (tmp_path / "b" / "splits.npz").read_bytes()


def test_official_split_dataset_gets_search_halves_and_source_checksums(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name, count in (("train_32x32.mat", 10), ("test_32x32.mat", 4)):
        images = np.zeros((32, 32, 3, count), dtype=np.uint8)
        scipy.io.savemat(data / name, {"X": images, "y": np.ones((count, 1))})
    manifest = prepare.prepare_dataset("svhn", tmp_path / "out", SETTINGS, root=data)
    assert manifest["sizes"] == {"train": 10, "test": 4, "search_train": 5, "search_valid": 5}
    assert manifest["source_files"] == {name: sha256_file(data / name)
                                        for name in ("train_32x32.mat", "test_32x32.mat")}
    assert set(load_splits(tmp_path / "out" / "splits.npz")) == {"search_train", "search_valid"}


def test_imagenet_demo_is_a_loadable_image_folder_and_reruns_identically(tmp_path: Path) -> None:
    out = tmp_path / "imagenet_demo"
    manifest = prepare.prepare_imagenet_demo(out, SETTINGS)
    assert sorted(path.name for path in out.iterdir()) == ["manifest.json", "train", "val"]
    assert manifest["sizes"]["train"] + manifest["sizes"]["val"] == 1797
    train = build_dataset("imagenet_demo", "train", root=out, augment=True, image_size=16)
    val = build_dataset("imagenet_demo", "test", root=out, augment=False, image_size=16)
    assert (len(train), len(val)) == (manifest["sizes"]["train"], manifest["sizes"]["val"])
    assert train.classes == [str(digit) for digit in range(10)]
    assert val[0][0].shape == (3, 16, 16)
    first = (out / "manifest.json").read_bytes()
    prepare.prepare_imagenet_demo(out, SETTINGS)
    assert (out / "manifest.json").read_bytes() == first
    assert sorted(path.name for path in tmp_path.iterdir()) == ["imagenet_demo"]


def test_run_reads_params_and_writes_under_out(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  test_fraction: 0.2\n  split_seed: 3\n")
    parser = argparse.ArgumentParser()
    prepare.add_arguments(parser)
    args = parser.parse_args(["--params", str(params), "--dataset", "digits", "--out", str(tmp_path / "out")])
    assert prepare.run(args) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["settings"]["split_seed"] == 3
    assert manifest["sizes"]["test"] == pytest.approx(0.2 * 1797, abs=10)
