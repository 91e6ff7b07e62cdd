"""Small NAS-Bench-201 / NATS-Bench archives in the benchmark APIs' own layout, written by tests.

The layout is NATS-Bench's (nats_bench 1.8, api_utils.py): per architecture `{hp: ArchResults.state_dict()}`
with `all_results` keyed by (dataset, seed) holding `ResultsCount.__dict__`; containers as the APIs read
them (fast-mode directory, single `.pickle.pbz2`, NAS-Bench-201's torch-saved `.pth`).
"""

from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import torch

A0 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
A1 = "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"
SETS = {"cifar10-valid": ("x-valid", "ori-test"), "cifar10": ("ori-test",),
        "cifar100": ("x-valid", "x-test", "ori-test"), "ImageNet16-120": ("x-valid", "x-test", "ori-test")}


def results_count(dataset: str, seed: int, base: float, params: float, flop: float) -> dict:
    """One trial as `ResultsCount.__dict__`: accuracy `base + offset(set) + seed/1000` after the last epoch,
    and 5 at epoch 11 (so a reader of the wrong epoch is caught)."""
    offsets = {"x-valid": 0.0, "x-test": 1.0, "ori-test": 2.0}
    acc = {}
    for name in SETS[dataset]:
        acc[f"{name}@11"] = 5.0
        acc[f"{name}@199"] = base + offsets[name] + seed / 1000
    return {"name": f"infer.tiny-{dataset}", "net_state_dict": None, "train_acc1es": {199: 99.0},
            "train_acc5es": None, "train_losses": {199: 0.01}, "train_times": None,
            "arch_config": {"name": "infer.tiny", "C": 16, "N": 5, "num_classes": 10}, "params": params,
            "flop": flop, "seed": seed, "epochs": 200, "latency": [0.01], "eval_names": list(SETS[dataset]),
            "eval_acc1es": acc, "eval_times": {}, "eval_losses": {}}


def arch_results(index: int, arch: str, base: float, params: tuple[float, float] = (1.0, 1.0)) -> dict:
    """`ArchResults.state_dict()` with seeds 777 and 888 on every dataset (888 with `params[1]`)."""
    trials, seeds = {}, {}
    for dataset in SETS:
        seeds[dataset] = [777, 888]
        for seed, p in zip((777, 888), params, strict=True):
            trials[(dataset, seed)] = results_count(dataset, seed, base, p, 100 * p)
    return {"arch_index": index, "arch_str": arch, "all_results": trials, "dataset_seed": seeds,
            "clear_net_done": True}


def records(hp: str = "200", short: str = "12") -> dict[int, dict]:
    return {0: {short: arch_results(0, A0, 10.0), hp: arch_results(0, A0, 90.0, params=(1.2, 1.2))},
            1: {hp: arch_results(1, A1, 60.0, params=(0.3, 0.1))}}


def dump_pbz2(path: Path, obj: object) -> None:
    with bz2.open(path, "wb") as handle:
        pickle.dump(obj, handle)


def fast_dir(root: Path) -> Path:
    folder = root / "NATS-tss-v1_0-3ffb9-simple"
    folder.mkdir()
    dump_pbz2(folder / "meta.pickle.pbz2", {"meta_archs": [A0, A1], "arch2infos": {}, "evaluated_indexes": []})
    for index, by_hp in records().items():
        dump_pbz2(folder / f"{index:06d}.pickle.pbz2", by_hp)
    return folder


def single_file(root: Path) -> Path:
    path = root / "NATS-tss-v1_0-3ffb9-simple.pickle.pbz2"
    dump_pbz2(path, {"meta_archs": [A0, A1], "arch2infos": records(), "evaluated_indexes": [0, 1]})
    return path


def nb201_pth(root: Path) -> Path:
    path = root / "NAS-Bench-201-v1_1-096897.pth"
    torch.save({"meta_archs": [A0, A1], "arch2infos": records(hp="full", short="less"),
                "evaluated_indexes": {0, 1}}, path)
    return path
