"""Benchmark queries against small archives the tests write in the benchmark APIs' own layout
(tests/nb201_archives.py). Expected numbers are means over seeds worked out by hand, at the last of 200
epochs: trial accuracy is base + offset(set) + seed / 1000 there.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faultlib import Plant
from nb201_archives import A0, A1, arch_results, dump_pbz2, fast_dir, nb201_pth, single_file

from pipeline.errors import DataError
from pipeline.space.nb201.arch import Nb201Arch
from pipeline.space.nb201.benchmark import Nb201Benchmark


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
