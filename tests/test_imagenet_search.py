"""Direct search on ImageNet (DrNAS, DDSAS): the PC-DARTS per-class samples, the 14-cell ImageNet supernet of
the paper settings, and prepare -> search -> derive -> transfer through the CLI on a tiny ImageFolder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from search_e2e import tiny_params
from space_support import arch, cnn_cells

from pipeline.checkpoint import load_checkpoint
from pipeline.cli import main
from pipeline.config import load_params, params_from_dict
from pipeline.data.splits import load_splits, per_class_sample
from pipeline.errors import ConfigError, DataError
from pipeline.space.primitives import PRIMITIVES_NO_NONE
from pipeline.space.supernet import Supernet

REPO = Path(__file__).resolve().parents[1]
CLASSES, PER_CLASS = 3, 40

pytestmark = pytest.mark.usefixtures("one_thread")


def test_per_class_sample_takes_each_share_of_every_class_disjointly_and_reproducibly() -> None:
    labels = np.repeat([0, 1, 2], [40, 80, 13])
    weights, arch = per_class_sample(labels, (0.1, 0.025), seed=0)
    # round(share x class size), at least one image per class: 4/8/1 and 1/2/1.
    assert [int((labels[weights] == c).sum()) for c in range(3)] == [4, 8, 1]
    assert [int((labels[arch] == c).sum()) for c in range(3)] == [1, 2, 1]
    assert not set(weights.tolist()) & set(arch.tolist())
    assert list(weights) == sorted(weights) and list(arch) == sorted(arch)
    again = per_class_sample(labels, (0.1, 0.025), seed=0)
    assert np.array_equal(again[0], weights) and np.array_equal(again[1], arch)
    assert not np.array_equal(per_class_sample(labels, (0.1, 0.025), seed=1)[0], weights)
    with pytest.raises(DataError, match="class 1 has 1 training images"):
        per_class_sample(np.array([0, 0, 1]), (0.1, 0.025), seed=0)


def test_imagenet_is_searched_through_imagenet_methods_only() -> None:
    with pytest.raises(ConfigError, match=r"grid\.datasets.*grid\.imagenet_methods"):
        params_from_dict({"grid": {"datasets": ["imagenet"]}})
    with pytest.raises(ConfigError, match=r"grid\.imagenet_methods: 'drnas_imagnet' is not defined.*drnas_imagenet"):
        params_from_dict({"grid": {"imagenet_methods": ["drnas_imagnet"]},
                          "search": {"methods": {"darts_1st": {"algorithm": "darts"},
                                                 "drnas_imagenet": {"algorithm": "drnas"}}}})
    with pytest.raises(ConfigError, match=r"prepare\.imagenet_search.*exceeds 1"):
        params_from_dict({"prepare": {"imagenet_search": {"weights_fraction": 0.6, "arch_fraction": 0.5}}})


def test_paper_config_searches_drnas_and_ddsas_on_imagenet_with_the_released_settings() -> None:
    params = load_params(REPO / "configs/paper.yaml")
    assert params.grid.imagenet_methods == ["drnas_imagenet", "ddsas_imagenet"]
    assert (params.prepare.imagenet_search.weights_fraction, params.prepare.imagenet_search.arch_fraction) == (
        0.1, 0.025)
    # DrNAS Sec. 4.2: 14 cells, C=48; DDSAS' paper gives no size, its code searches 8 cells, C=16.
    for name, epochs, layers, channels in (("drnas_imagenet", 50, 14, 48), ("ddsas_imagenet", 60, 8, 16)):
        s = params.search_settings(name)
        assert (s.layers, s.channels, s.batch_size, s.image_size, s.epochs) == (layers, channels, 512, 224, epochs)
        assert (s.weights.lr, s.arch.lr) == (0.5, 6e-3)
        # The codes' stem is 3C wide and batches above 256 warm up linearly for 5 epochs.
        assert (s.stem_multiplier, s.weights.warmup_epochs) == (3, 5)
    drnas, ddsas = params.method("drnas_imagenet"), params.method("ddsas_imagenet")
    assert [stage.partial_k for stage in drnas.stages] == [6, 3]
    assert [stage.keep_ops for stage in drnas.stages] == [7, 4]
    assert (ddsas.num_sampled, ddsas.update_every, ddsas.schedule, ddsas.schedule_every) == (
        28, 30, "parametric_first", 40)


def test_imagenet_supernet_has_14_cells_and_brings_224_down_to_28() -> None:
    primitives = PRIMITIVES_NO_NONE
    net = Supernet(channels=48, num_classes=1000, layers=14, cells=cnn_cells(primitives), stem="imagenet", partial_k=6)
    assert len(net.cells) == 14
    assert [i for i, cell in enumerate(net.cells) if cell.reduction] == [4, 9]
    with torch.no_grad():
        stem = net.stem1(net.stem0(torch.zeros(1, 3, 224, 224)))
        assert stem.shape == (1, 3 * 48, 28, 28)  # 3C wide, as the DrNAS/DDSAS/PC-DARTS search codes
        uniform = torch.full((14, len(primitives)), 1.0 / len(primitives))
        assert net(torch.zeros(2, 3, 32, 32), arch(uniform, uniform)).shape == (2, 1000)


def _write_tree(root: Path) -> None:
    """A tiny ImageNet-layout tree: CLASSES classes, PER_CLASS training and 2 validation PNGs each."""
    rng = np.random.default_rng(0)
    for folder, count in (("train", PER_CLASS), ("val", 2)):
        for c in range(CLASSES):
            directory = root / folder / f"n0{c}"
            directory.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
                pixels[..., c] = 255  # a class signal the search can pick up
                Image.fromarray(pixels).save(directory / f"{i}.png")


METHODS: dict[str, dict[str, Any]] = {
    "drnas_imagenet": {"algorithm": "drnas", "space": "darts_no_none", "warmup_epochs": 0,
                       "stages": [{"epochs": 1, "partial_k": 4, "keep_ops": 7},
                                  {"epochs": 1, "partial_k": 2, "keep_ops": 4}]},
    "ddsas_imagenet": {"algorithm": "ddsas", "num_sampled": 6, "update_every": 2, "schedule": "parametric_first",
                       "schedule_every": 1},
}


@pytest.fixture(scope="module")
def direct(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny tree, its per-class samples (20% / 10%), and both direct searches run on them to the end."""
    directory = tmp_path_factory.mktemp("direct")
    _write_tree(directory / "tree")
    params = tiny_params(directory, METHODS, image_size=32, max_steps_per_epoch=0)
    raw = yaml.safe_load(params.read_text())
    raw["grid"]["imagenet_methods"] = list(METHODS)
    raw["data"]["imagenet_root"] = str(directory / "tree")
    raw["prepare"]["imagenet_search"] = {"weights_fraction": 0.2, "arch_fraction": 0.1}
    raw["transfer"].update(epochs=1, batch_size=8, layers=3, image_size=32)
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    prepared = directory / "data"
    assert main(["prepare", "--params", str(params), "--dataset", "imagenet", "--out", str(prepared)]) == 0
    for method in METHODS:
        out = directory / "search" / method
        assert main(["search", "--params", str(params), "--dataset", "imagenet", "--method", method, "--seed", "0",
                     "--prepared", str(prepared), "--out", str(out), "--no-progress"]) == 0
    return directory


def test_prepare_samples_the_tree_per_class_and_reruns_identically(direct: Path) -> None:
    manifest = json.loads((direct / "data/manifest.json").read_text())
    assert manifest["source"] == "imagenet"
    assert manifest["sizes"] == {"train": CLASSES * PER_CLASS, "classes": CLASSES,
                                 "search_train": CLASSES * 8, "search_valid": CLASSES * 4}
    splits = load_splits(direct / "data/splits.npz")
    assert set(splits) == {"search_train", "search_valid"}
    # ImageFolder orders samples class by class, so index // PER_CLASS is the class.
    for name, per_class in (("search_train", 8), ("search_valid", 4)):
        assert np.bincount(splits[name] // PER_CLASS).tolist() == [per_class] * CLASSES
    first = (direct / "data/splits.npz").read_bytes()
    assert main(["prepare", "--params", str(direct / "params.yaml"), "--dataset", "imagenet",
                 "--out", str(direct / "data")]) == 0
    assert (direct / "data/splits.npz").read_bytes() == first


@pytest.mark.parametrize("method", list(METHODS))
def test_direct_search_trains_the_imagenet_supernet_on_the_weights_sample_only(direct: Path, method: str) -> None:
    out = direct / "search" / method
    summary = json.loads((out / "summary.json").read_text())
    # 24 sampled images in batches of 4: 6 steps per epoch (the whole split would give 30), 2 epochs.
    assert summary["steps"] == 12 and summary["provenance"]["dataset"] == "imagenet"
    state = load_checkpoint(out)["net"]
    assert any(key.startswith("stem1.") for key in state)  # the ImageNet stem
    assert state["classifier.weight"].shape[0] == 1000
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 3 and "nan" not in history[-1].lower().split(",")[1:8]


def test_ddsas_direct_search_samples_ops_with_weights_first(direct: Path) -> None:
    with (direct / "search/ddsas_imagenet/history.csv").open() as f:
        rows = list(csv.DictReader(f))
    # 2 cell types x 5 edges (2 nodes): 4 ops with weights each in epoch 0, all 7 non-`none` ops after.
    assert [int(row["available_ops"]) for row in rows] == [40, 70]


def test_direct_search_genotype_is_evaluated_on_imagenet_by_transfer(direct: Path) -> None:
    params = str(direct / "params.yaml")
    genotype = direct / "genotypes/ddsas_imagenet.json"
    assert main(["derive", "--params", params, "--search-dir", str(direct / "search/ddsas_imagenet"),
                 "--out", str(genotype)]) == 0
    assert json.loads(genotype.read_text())["provenance"]["dataset"] == "imagenet"
    out = direct / "transfer/ddsas_imagenet"
    assert main(["transfer", "--params", params, "--genotype", str(genotype), "--seed", "0", "--out", str(out),
                 "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["searched_on"], metrics["dataset"]) == ("imagenet", "imagenet")
    assert 0.0 <= metrics["top1_error"] <= 100.0 and metrics["top5_error"] == 0.0  # 3 classes: top-5 always hits


@pytest.mark.parametrize(("multiplier", "width"), [(3, 48), (1, 16)])
def test_imagenet_search_stem_is_stem_multiplier_times_c_wide(multiplier, width) -> None:
    net = Supernet(channels=16, num_classes=10, layers=8, cells=cnn_cells(PRIMITIVES_NO_NONE), stem="imagenet",
                   stem_multiplier=multiplier)
    with torch.no_grad():
        s0 = net.stem0(torch.zeros(1, 3, 64, 64))
        assert s0.shape == (1, width, 16, 16) and net.stem1(s0).shape == (1, width, 8, 8)
    # The first cell's preprocessing reads the stems' width: both inputs are width channels.
    assert net.cells[0].preprocess1[1].in_channels == width
