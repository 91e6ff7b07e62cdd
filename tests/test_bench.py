"""The bench stage: timings of the method variants on a synthetic batch, written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pipeline import cli
from pipeline.methods import list_methods
from pipeline.stages.bench import bench_variants, build_harness
from pipeline.stages.kernel_ops import count_kernel_ops

TINY = ["--batch", "2", "--layers", "3", "--channels", "4", "--image-size", "8", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_registered_algorithm_has_a_bench_variant():
    assert set(list_methods()) <= {config.algorithm for config in bench_variants().values()}


def test_bench_writes_timings_and_ratios(tmp_path: Path, capsys):
    out = tmp_path / "bench" / "bench.json"
    status = cli.main(["bench", "--methods", "darts_1st", "ddsas", "random", "--steps", "2", "--warmup", "1",
                       *TINY, "--out", str(out)])
    assert status == 0
    report = json.loads(out.read_text())
    assert list(report["methods"]) == ["darts_1st", "ddsas", "random"]
    assert report["settings"] == {"batch": 2, "layers": 3, "channels": 4, "image_size": 8, "steps": 2, "warmup": 1,
                                  "amp": False}
    assert "per_method" in report["peak_memory_measure"]
    for name, result in report["methods"].items():
        assert len(result["step_times_s"]) == 2
        assert result["median_step_s"] > 0 and result["images_per_s"] == pytest.approx(2 / result["median_step_s"])
        assert result["peak_memory_mb"] > 0
        assert result["algorithm"] == bench_variants()[name].algorithm
    assert report["methods"]["darts_1st"]["ratio_to_darts_1st"] == 1.0
    printed = capsys.readouterr().out
    assert "x darts_1st" in printed and "ddsas" in printed


def test_bench_counts_the_operations_of_one_step(tmp_path: Path):
    """The count is that of one darts_1st step (deterministic: no sampling), taken here on a harness built
    as the bench builds it, after as many steps."""
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--methods", "darts_1st", "--steps", "1", "--warmup", "1", *TINY,
                     "--out", str(out)]) == 0
    counted = json.loads(out.read_text())["methods"]["darts_1st"]["kernel_ops_per_step"]
    harness = build_harness(bench_variants()["darts_1st"], batch=2, layers=3, channels=4, image_size=8)
    harness.step()
    harness.step()
    assert counted == count_kernel_ops(harness.step).total > 0


class ConvDtypes(TorchDispatchMode):
    """The dtypes of the inputs of every convolution (forward and backward) run while active."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.convolution, torch.ops.aten.convolution_backward):
            self.seen.add(args[0].dtype)
        return func(*args, **(kwargs or {}))


def test_bench_amp_times_the_step_under_bf16_autocast(tmp_path: Path, capsys):
    """`--amp`: the search's bf16 autocast around the supernet (its convolutions, forward and backward, run
    in bf16; without it in fp32), recorded in the report and its header."""
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--methods", "darts_1st", "--steps", "1", "--warmup", "0", *TINY, "--amp",
                     "--out", str(out)]) == 0
    assert json.loads(out.read_text())["settings"]["amp"] is True
    assert "bf16 autocast" in capsys.readouterr().out
    for amp, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        harness = build_harness(bench_variants()["darts_1st"], batch=2, layers=3, channels=4, image_size=8, amp=amp)
        with ConvDtypes() as convs:
            loss = harness.step()
        assert convs.seen == {dtype} and torch.isfinite(loss)


def test_bench_without_darts_1st_has_no_ratio(tmp_path: Path):
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--methods", "data_m4", "--steps", "1", "--warmup", "0", *TINY, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["methods"]["data_m4"]["ratio_to_darts_1st"] is None


def test_bench_rejects_unknown_variants():
    with pytest.raises(SystemExit):
        cli.main(["bench", "--methods", "darts_3rd", *TINY])


def test_bench_compares_the_supernets_side_by_side(tmp_path: Path, capsys):
    """`--compare reference` times the other supernet; `--recompute` adds a row with search.recompute,
    compared with the same reference measurement."""
    out = tmp_path / "bench.json"
    assert cli.main(["bench", "--methods", "darts_1st", "--steps", "1", "--warmup", "0", *TINY,
                     "--compare", "reference", "--recompute", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["methods"]) == ["darts_1st", "darts_1st+recompute"]
    for name, recompute in (("darts_1st", False), ("darts_1st+recompute", True)):
        result = report["methods"][name]
        assert (result["supernet"], result["recompute"]) == ("fast", recompute)
        assert (result["compared"]["supernet"], result["compared"]["recompute"]) == ("reference", False)
        assert result["speedup"] == pytest.approx(result["compared"]["median_step_s"] / result["median_step_s"])
        assert result["memory_ratio"] == pytest.approx(result["peak_memory_mb"] / result["compared"]["peak_memory_mb"])
    assert report["supernet"] == "fast"
    printed = capsys.readouterr().out
    assert "| reference s |" in printed and "| darts_1st+recompute |" in printed
