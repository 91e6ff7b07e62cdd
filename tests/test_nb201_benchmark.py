"""Benchmark queries against small archives the tests write in the benchmark APIs' own layout.

The layout is NATS-Bench's (nats_bench 1.8, api_utils.py): per architecture `{hp: ArchResults.state_dict()}`
with `all_results` keyed by (dataset, seed) holding `ResultsCount.__dict__`; containers as the APIs read
them (fast-mode directory, single `.pickle.pbz2`, NAS-Bench-201's torch-saved `.pth`). Expected numbers
are means over seeds worked out by hand below, at the last of 200 epochs.
"""

from __future__ import annotations

import bz2
import pickle
from pathlib import Path

import pytest
import torch
from faultlib import Plant

from pipeline.errors import DataError
from pipeline.space.nb201.arch import Nb201Arch
from pipeline.space.nb201.benchmark import Nb201Benchmark

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


@pytest.mark.parametrize("make", [fast_dir, single_file, nb201_pth])
def test_query_reads_the_papers_columns_at_200_epochs(tmp_path: Path, make) -> None:
    bench = Nb201Benchmark(make(tmp_path))
    result = bench.query(Nb201Arch.from_string(A0))
    # Mean of seeds 777 and 888: base + offset + 0.8325. CIFAR-10 valid is cifar10-valid's x-valid,
    # CIFAR-10 test is cifar10's ori-test, the others report x-valid and x-test.
    mean_seed = (0.777 + 0.888) / 2
    assert result.accuracy == pytest.approx({
        "cifar10_valid": 90.0 + mean_seed, "cifar10_test": 92.0 + mean_seed,
        "cifar100_valid": 90.0 + mean_seed, "cifar100_test": 91.0 + mean_seed,
        "imagenet16_120_valid": 90.0 + mean_seed, "imagenet16_120_test": 91.0 + mean_seed,
    })
    assert (result.params_mb, result.flops_m) == pytest.approx((1.2, 120.0))
    assert len(bench) == 2


def test_params_that_differ_between_seeds_are_seed_888s(tmp_path: Path) -> None:
    result = Nb201Benchmark(single_file(tmp_path)).query(A1)
    assert (result.params_mb, result.flops_m) == pytest.approx((0.1, 10.0))


def test_fast_mode_reads_only_the_queried_record_and_each_once(tmp_path: Path) -> None:
    folder = fast_dir(tmp_path)
    (folder / "000001.pickle.pbz2").write_bytes(b"not an archive")
    bench = Nb201Benchmark(folder)
    first = bench.query(A0)
    (folder / "000000.pickle.pbz2").unlink()  # a second query is answered from memory
    assert bench.query(Nb201Arch.from_string(A0)) == first
    with pytest.raises(DataError, match=r"000001.pickle.pbz2 is not a NATS-Bench archive file"):
        bench.query(A1)


def test_unknown_architecture_and_missing_training_are_named(tmp_path: Path) -> None:
    bench = Nb201Benchmark(single_file(tmp_path))
    absent = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    with pytest.raises(DataError, match=r"architecture \|none~0\|.* is not among its 2 architectures"):
        bench.query(absent)
    path = tmp_path / "short.pickle.pbz2"
    dump_pbz2(path, {"meta_archs": [A0], "arch2infos": {0: {"12": arch_results(0, A0, 1.0)}}})
    with pytest.raises(DataError, match=r"record 0: no 200-epoch results \(hp 200 or full\); it has \['12'\]"):
        Nb201Benchmark(path).query(A0)
    with pytest.raises(DataError, match="benchmark not found"):
        Nb201Benchmark(tmp_path / "nowhere")


def test_a_planted_archive_is_refused_before_its_code_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "NATS-tss-v1_0-3ffb9-simple.pickle.pbz2"
    dump_pbz2(path, {"meta_archs": [A0], "arch2infos": {0: Plant(marker)}})
    with pytest.raises(DataError, match=r"refused to import posix\.system"):
        Nb201Benchmark(path)
    assert not marker.exists()
