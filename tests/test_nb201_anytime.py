"""Anytime curves from search histories and a test-made benchmark archive (tests/nb201_archives.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from nb201_archives import A0, A1, single_file

from pipeline.errors import PipelineError
from pipeline.space.nb201.anytime import anytime_curves, query_histories
from pipeline.space.nb201.benchmark import Nb201Benchmark


def _history(rows: list[tuple[str, int, int, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "seed": s, "epoch": e, "genotype": json.dumps({"arch": a})}
                         for m, s, e, a in rows])


def test_curves_average_the_queried_test_accuracy_over_seeds(tmp_path: Path) -> None:
    bench = Nb201Benchmark(single_file(tmp_path))
    # cifar10_test: A0 92.8325, A1 62.8325 (base + 2 for ori-test + mean of seeds 777, 888 / 1000).
    histories = _history([("darts", 0, 0, A1), ("darts", 0, 1, A0), ("darts", 1, 0, A1), ("darts", 1, 1, A1),
                          ("gdas", 0, 0, A0)])
    curves = anytime_curves(query_histories(histories, bench))
    darts = curves[curves.method == "darts"].set_index("epoch")
    assert darts.loc[0, "mean"] == pytest.approx(62.8325) and darts.loc[0, "std"] == pytest.approx(0.0)
    assert darts.loc[1, "mean"] == pytest.approx((92.8325 + 62.8325) / 2)
    assert darts.loc[1, "std"] == pytest.approx(30 / 2**0.5)  # sample std of two values 30 apart
    gdas = curves[curves.method == "gdas"].iloc[0]
    assert (gdas["mean"], gdas["std"], gdas["seeds"]) == (pytest.approx(92.8325), 0.0, 1)


def test_a_history_of_another_space_is_named(tmp_path: Path) -> None:
    bench = Nb201Benchmark(single_file(tmp_path))
    darts_cell = pd.DataFrame([{"method": "darts", "seed": 0, "epoch": 3,
                                "genotype": json.dumps({"normal": [], "reduce": []})}])
    with pytest.raises(PipelineError, match=r"darts seed 0 epoch 3: genotype .* is not a NAS-Bench-201 architecture"):
        query_histories(darts_cell, bench)
    with pytest.raises(ValueError, match="unknown accuracy column 'cifar10'"):
        anytime_curves(query_histories(_history([("darts", 0, 0, A0)]), bench), "cifar10")
