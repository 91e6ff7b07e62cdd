"""Dataset readers, transforms, splits and samplers, on tiny data written by each test."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from faultlib import plant_cifar_batch, runs_code_when_unpickled
from PIL import Image

from pipeline.data import (
    Cutout,
    EpochSampler,
    build_dataset,
    cycle_batches,
    get_dataset_info,
    list_datasets,
    make_loader,
    search_split,
)
from pipeline.data.splits import holdout_split, save_splits
from pipeline.errors import DataError


def _write_pickle(path: Path, images: np.ndarray, labels: list[int], label_key: bytes, protocol: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Bytes keys, as the original Python 2 pickles decode.
    with path.open("wb") as handle:
        pickle.dump({b"data": images.reshape(len(images), -1), label_key: labels, b"filenames": [b"a.png"]},
                    handle, protocol=protocol)


def _images(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 3, 32, 32), dtype=np.uint8)


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    for i in range(1, 6):
        _write_pickle(folder / f"data_batch_{i}", _images(4, i), [i, i, 0, 9], b"labels")
    _write_pickle(folder / "test_batch", _images(3, 0), [1, 2, 3], b"labels")
    return tmp_path


def test_cifar10_pickles_load_as_normalised_tensors_with_their_labels(cifar10_root: Path) -> None:
    train = build_dataset("cifar10", "train", root=cifar10_root, augment=False)
    test = build_dataset("cifar10", "test", root=cifar10_root, augment=False)
    assert (len(train), len(test)) == (20, 3)
    image, label = train[4]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == 2
    raw = torch.from_numpy(_images(4, 2)[0]).float() / 255
    info = get_dataset_info("cifar10")
    expected = (raw - torch.tensor(info.mean)[:, None, None]) / torch.tensor(info.std)[:, None, None]
    torch.testing.assert_close(image, expected)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cifar_batches_of_every_pickle_protocol_load_through_the_restricted_unpickler(
        tmp_path: Path, protocol: int) -> None:
    """Protocol 2 is the original Python 2 batches'; later ones rebuild arrays and bytes differently."""
    images = _images(3, protocol)
    for name in ("train", "test"):
        _write_pickle(tmp_path / "cifar-100-python" / name, images, [5, 0, 99], b"fine_labels", protocol)
    train = build_dataset("cifar100", "train", root=tmp_path, augment=False)
    assert [train[i][1] for i in range(3)] == [5, 0, 99]
    info = get_dataset_info("cifar100")
    pixel = (images[2, 1, 7, 4] / 255 - info.mean[1]) / info.std[1]
    assert train[2][0][1, 7, 4].item() == pytest.approx(pixel, abs=1e-5)


def test_cifar_batch_naming_numpy_1_modules_loads(tmp_path: Path) -> None:
    """The original batches were pickled under numpy 1.x, whose array module was `numpy.core.multiarray`."""
    folder = tmp_path / "cifar-100-python"
    for name in ("train", "test"):
        _write_pickle(folder / name, _images(2, 0), [3, 4], b"fine_labels", protocol=2)
        blob = (folder / name).read_bytes()
        assert b"cnumpy._core.multiarray\n" in blob
        (folder / name).write_bytes(blob.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"))
    train = build_dataset("cifar100", "train", root=tmp_path, augment=False)
    assert [train[i][1] for i in range(2)] == [3, 4]


def test_planted_cifar_batch_is_refused_by_name_and_its_code_never_runs(cifar10_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    batch = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    assert runs_code_when_unpickled(plant_cifar_batch(batch, marker), marker)  # the control
    with pytest.raises(DataError) as refused:
        build_dataset("cifar10", "train", root=cifar10_root, augment=False)
    assert f"{batch} is not a CIFAR batch pickle (refused to import posix.system" in str(refused.value)
    assert not marker.exists()


def test_cifar_batch_asking_for_another_codec_is_refused(cifar10_root: Path) -> None:
    """`_codecs.encode` is allowed only as protocol 2 uses it: latin1, nothing else of the codec registry."""
    batch = cifar10_root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R.")
    with pytest.raises(DataError, match=re.escape("_codecs.encode with encoding 'base64'")):
        build_dataset("cifar10", "test", root=cifar10_root, augment=False)


def test_svhn_mat_file_whose_arrays_are_not_numbers_is_refused_naming_the_key(tmp_path: Path) -> None:
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": np.array(["a", "b"], dtype=object), "y": np.ones((2, 1))})
    with pytest.raises(DataError, match=re.escape("train_32x32.mat: 'X' holds object, not numbers")):
        build_dataset("svhn", "train", root=tmp_path, augment=False)


def test_cifar10_augmentation_keeps_shape_and_cutout_zeroes_pixels(cifar10_root: Path) -> None:
    train = build_dataset("cifar10", "train", root=cifar10_root, augment=True, cutout=8)
    torch.manual_seed(0)
    image, _ = train[0]
    assert image.shape == (3, 32, 32)
    assert (image == 0).all(dim=0).sum() >= 4 * 4  # a hole centred in a corner keeps a quarter


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    _write_pickle(folder / "train", _images(5, 1), [0, 99, 50, 7, 7], b"fine_labels")
    _write_pickle(folder / "test", _images(2, 2), [98, 3], b"fine_labels")
    train = build_dataset("cifar100", "train", root=tmp_path, augment=True)
    test = build_dataset("cifar100", "test", root=tmp_path, augment=False)
    assert [train[i][1] for i in range(5)] == [0, 99, 50, 7, 7]
    assert test[0][0].shape == (3, 32, 32) and test[0][1] == 98
    assert get_dataset_info("cifar100").num_classes == 100


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3, 4), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": images, "y": np.array([[10], [1], [5], [10]])})
    dataset = build_dataset("svhn", "train", root=tmp_path, augment=False)
    assert [dataset[i][1] for i in range(4)] == [0, 1, 5, 0]
    info = get_dataset_info("svhn")
    pixel = (images[3, 5, 1, 2] / 255 - info.mean[1]) / info.std[1]
    assert dataset[2][0][1, 3, 5].item() == pytest.approx(pixel, abs=1e-5)


def _write_image_folder(root: Path, classes: list[str], per_class: int = 2) -> None:
    rng = np.random.default_rng(0)
    for folder in ("train", "val"):
        for name in classes:
            (root / folder / name).mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, size=(20, 28, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / folder / name / f"{i}.png")


def test_image_folder_loads_both_splits_at_the_chosen_size(tmp_path: Path) -> None:
    _write_image_folder(tmp_path, ["cat", "dog"])
    train = build_dataset("imagenet", "train", root=tmp_path, augment=True, image_size=16)
    val = build_dataset("imagenet", "test", root=tmp_path, augment=False, image_size=16)
    assert len(train) == len(val) == 4
    assert train[0][0].shape == val[3][0].shape == (3, 16, 16)
    assert [val[i][1] for i in range(4)] == [0, 0, 1, 1]


def test_image_folder_with_missing_val_names_the_expected_directory(tmp_path: Path) -> None:
    _write_image_folder(tmp_path, ["cat"])
    for path in (tmp_path / "val" / "cat").iterdir():
        path.unlink()
    (tmp_path / "val" / "cat").rmdir()
    (tmp_path / "val").rmdir()
    with pytest.raises(DataError, match=str(tmp_path / "val")):
        build_dataset("imagenet", "train", root=tmp_path, augment=False)


def test_image_folder_with_different_classes_in_train_and_val_is_refused(tmp_path: Path) -> None:
    _write_image_folder(tmp_path, ["cat", "dog"])
    (tmp_path / "val" / "dog").rename(tmp_path / "val" / "emu")
    with pytest.raises(DataError, match="only in train/: \\['dog'\\]"):
        build_dataset("imagenet", "test", root=tmp_path, augment=False)


@pytest.mark.parametrize(("name", "missing"), [
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ("cifar100", "cifar-100-python/train"),
    ("svhn", "train_32x32.mat"),
])
def test_missing_files_error_names_the_path_and_how_to_get_it(tmp_path: Path, name: str,
                                                              missing: str) -> None:
    with pytest.raises(DataError, match=r"data\.download: true") as caught:
        build_dataset(name, "train", root=tmp_path, augment=False)
    assert str(tmp_path / missing) in str(caught.value)


def test_unknown_dataset_lists_the_known_ones() -> None:
    with pytest.raises(DataError, match="cifar10, cifar100, digits"):
        get_dataset_info("mnist")
    assert {"digits", "cifar10", "cifar100", "svhn", "imagenet", "imagenet_demo"} <= set(list_datasets())


def test_native_size_datasets_refuse_another_image_size(cifar10_root: Path) -> None:
    with pytest.raises(DataError, match="ImageFolder"):
        build_dataset("cifar10", "train", root=cifar10_root, augment=False, image_size=64)


def test_digits_need_the_prepared_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="pipeline prepare --dataset digits"):
        build_dataset("digits", "test", root=tmp_path, augment=False)


def test_digits_are_upsampled_to_16_and_normalised_by_their_own_statistics(tmp_path: Path) -> None:
    labels = np.asarray(_digit_labels())
    train, test = holdout_split(labels, 0.25, seed=0)
    save_splits(tmp_path / "splits.npz", {"train": train, "test": test}, {"stage": "test"})
    dataset = build_dataset("digits", "test", root=tmp_path, augment=False,
                            indices_file=tmp_path / "splits.npz")
    assert len(dataset) == len(test)
    assert dataset[0][0].shape == (1, 16, 16) and dataset[0][1] == labels[test[0]]
    info = get_dataset_info("digits")
    assert (info.in_channels, info.image_size, info.num_classes) == (1, 16, 10)
    everything = torch.stack([dataset[i][0] for i in range(len(dataset))])
    assert abs(everything.mean().item()) < 0.1 and abs(everything.std().item() - 1) < 0.1


def _digit_labels() -> list[int]:
    from sklearn.datasets import load_digits

    return load_digits().target.tolist()


def test_digits_are_the_images_and_labels_scikit_learn_loads() -> None:
    # The oracle is scikit-learn's own loader; the pipeline parses the same CSV without importing it.
    from sklearn.datasets import load_digits

    from pipeline.data.digits import raw_digits, source_checksums

    bunch = load_digits()
    images, labels = raw_digits()
    assert torch.equal(images, torch.from_numpy(bunch.images).float().div(16).unsqueeze(1))
    assert labels.dtype == torch.int64 and labels.tolist() == bunch.target.tolist()
    assert list(source_checksums()) == ["sklearn/datasets/data/digits.csv.gz"]


def test_digits_holdout_is_stratified_seeded_and_covers_every_sample() -> None:
    labels = np.asarray(_digit_labels())
    train, test = holdout_split(labels, 0.25, seed=3)
    again, _ = holdout_split(labels, 0.25, seed=3)
    other, _ = holdout_split(labels, 0.25, seed=4)
    assert len(train) + len(test) == 1797 and abs(len(test) - 0.25 * 1797) <= 10
    assert np.array_equal(np.union1d(train, test), np.arange(1797))
    assert np.array_equal(train, again) and not np.array_equal(train, other)
    assert set(np.bincount(labels[test])) <= {44, 45, 46}


def test_search_split_halves_the_training_set_disjointly_and_reproducibly() -> None:
    first, second = search_split(101, seed=7)
    assert (len(first), len(second)) == (50, 51)
    assert np.array_equal(np.union1d(first, second), np.arange(101))
    assert np.array_equal(first, search_split(101, seed=7)[0])
    assert not np.array_equal(first, search_split(101, seed=8)[0])


def test_epoch_sampler_order_depends_only_on_seed_and_epoch() -> None:
    sampler = EpochSampler(range(50), seed=1)
    sampler.set_epoch(3)
    order = list(sampler)
    sampler.set_epoch(4)
    assert list(sampler) != order
    fresh = EpochSampler(range(50), seed=1)
    fresh.set_epoch(3)
    assert list(fresh) == order and sorted(order) == list(range(50))


def test_epoch_sampler_shards_are_disjoint_equal_and_cover_all_indices() -> None:
    indices = np.arange(100, 120)
    shards = []
    for rank in range(2):
        sampler = EpochSampler(indices, seed=0, rank=rank, world_size=2)
        sampler.set_epoch(5)
        shards.append(list(sampler))
    assert len(shards[0]) == len(shards[1]) == 10
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == indices.tolist()


def test_epoch_sampler_pads_uneven_shards_by_wrapping() -> None:
    shards = [list(EpochSampler(range(7), seed=0, rank=rank, world_size=2)) for rank in range(2)]
    assert len(shards[0]) == len(shards[1]) == 4
    assert set(shards[0]) | set(shards[1]) == set(range(7))


def test_set_start_replays_exactly_the_remaining_batches() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(40))
    loader = make_loader(dataset, range(5, 35), batch_size=4, seed=2, shuffle=True, num_workers=0)
    loader.sampler.set_epoch(1)
    full = [batch[0].tolist() for batch in loader]
    resumed = make_loader(dataset, range(5, 35), batch_size=4, seed=2, shuffle=True, num_workers=0)
    resumed.sampler.set_epoch(1)
    resumed.sampler.set_start(3, 4)
    assert len(resumed) == len(full) - 3
    assert [batch[0].tolist() for batch in resumed] == full[3:]


def test_cycle_batches_wraps_into_the_next_epoch_without_stopping() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(6))
    loader = make_loader(dataset, range(6), batch_size=3, seed=0, shuffle=True, num_workers=0)
    batches = cycle_batches(loader)
    first_epoch = [next(batches)[0] for _ in range(2)]
    second_epoch = [next(batches)[0] for _ in range(2)]
    assert loader.sampler.epoch == 1
    assert sorted(torch.cat(second_epoch).tolist()) == list(range(6))
    assert torch.cat(first_epoch).tolist() != torch.cat(second_epoch).tolist()


def test_cutout_zeroes_one_square_clipped_at_the_border() -> None:
    torch.manual_seed(0)
    areas = set()
    for _ in range(30):
        image = Cutout(4)(torch.ones(3, 10, 10))
        hole = image[0] == 0
        assert torch.equal(hole, (image == 0).all(dim=0))
        rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
        assert len(rows) <= 4 and len(cols) <= 4
        assert hole.sum() == len(rows) * len(cols)
        areas.add(int(hole.sum()))
    assert 16 in areas and min(areas) < 16
