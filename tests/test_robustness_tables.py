"""The S1-S4 tables (SDARTS Tables 4/5, DrNAS Table 6) from hand-made result files against hand-written tables.

The paper columns are typed here from DrNAS Table 6 (the CIFAR-10 rows of `simplified_spaces`) and the
SDARTS Table 5 numbers of the reference file's sections, not read back from it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pipeline.tables.collect import collect_retrain_runs
from pipeline.tables.grid import Grid
from pipeline.tables.produce import WRITERS
from pipeline.tables.robustness import (
    drnas_table6,
    paper_name,
    param_free_table,
    robustness_error_table,
)

SPACES = {"darts_2nd_s1": "s1", "darts_2nd_s4": "s4", "r_darts_dp_s1_p2": "s1", "r_darts_dp_s1_p6": "s1",
          "darts_2nd": "darts"}
# variant -> seed -> (retrain test error, select validation accuracy, normal-cell ops); None: not run.
RUNS = {
    "darts_2nd_s1": {0: (4.0, 80.0, ["skip_connect"] * 7 + ["dil_conv_3x3"]),
                     1: (3.0, 70.0, ["dil_conv_3x3"] * 8)},
    "darts_2nd_s4": {0: (6.0, 50.0, ["noise"] * 2 + ["sep_conv_3x3"] * 6),
                     1: (5.0, 50.0, ["sep_conv_3x3"] * 8)},
    "r_darts_dp_s1_p2": {0: (3.5, 60.0, ["skip_connect"] * 4 + ["sep_conv_3x3"] * 4), 1: None},
    "r_darts_dp_s1_p6": {0: (2.5, 65.0, ["skip_connect"] * 2 + ["sep_conv_3x3"] * 6),
                         1: (2.0, 55.0, ["sep_conv_3x3"] * 8)},
    "darts_2nd": {0: (2.9, 90.0, ["sep_conv_3x3"] * 8), 1: (3.1, 91.0, ["sep_conv_3x3"] * 8)},
}


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _results(root: Path) -> Path:
    for variant, seeds in RUNS.items():
        for seed, run in seeds.items():
            if run is None:
                continue
            error, valid_acc, ops = run
            _write(root / "retrain" / "cifar10" / variant / f"seed{seed}" / "metrics.json", {"test_error": error})
            _write(root / "select" / "cifar10" / variant / f"seed{seed}" / "metrics.json", {"valid_acc": valid_acc})
            normal = [[[ops[2 * k], 0], [ops[2 * k + 1], 1]] for k in range(4)]
            _write(root / "genotypes" / "cifar10" / variant / f"seed{seed}.json", {"normal": normal})
    return root


def _grid(select: bool) -> Grid:
    specs = {variant: {"algorithm": "darts", "order": 2, "space": space} for variant, space in SPACES.items()}
    return Grid(datasets=("cifar10",), methods=tuple(SPACES), seeds=(0, 1), transfer=False,
                method_specs=specs, select=select)


def _rows(table) -> list[list]:
    keys = ["method", "s1", "s1_paper", "s2", "s2_paper", "s3", "s3_paper", "s4", "s4_paper"]
    return [[None if isinstance(v, float) and math.isnan(v) else v for v in row]
            for row in table.frame[keys].itertuples(index=False, name=None)]


def _approx(rows: list[list]) -> list[list]:
    return [[pytest.approx(v) if isinstance(v, float) else v for v in row] for row in rows]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return _results(tmp_path)


def test_variant_names_map_to_the_papers_method_names():
    assert paper_name("r_darts_dp_s3_p4", "s3") == "r_darts_dp"
    assert paper_name("darts_2nd_s1", "s1") == "darts_2nd"
    assert paper_name("my_s1x", "s1") == "my_s1x"  # `_s1` must end the name or precede `_<setting>`


def test_table4_reports_the_selected_seed_beside_the_paper(results):
    grid = _grid(select=True)
    table = robustness_error_table(collect_retrain_runs(results, grid), results, grid)
    # darts_2nd_s1: seed 0 has the better validation accuracy (80 > 70) though seed 1 tests better.
    # darts_2nd_s4: a tie at 50: seed 0. R-DARTS(DP) on S1: drop path 0.6, seed 0 (65) beats 0.2, seed 0
    # (60); 0.2's seed 1 never ran. The DARTS-space variant is no row.
    assert _rows(table) == _approx([
        ["darts_2nd", 4.0, 3.84, None, 4.85, None, 3.34, 6.0, 7.20],
        ["r_darts_dp", 2.5, 3.11, None, 3.48, None, 2.93, None, 3.58],
        ["r_darts_l2", None, 2.78, None, 3.31, None, 2.51, None, 3.56],
        ["drnas", None, 2.74, None, 2.47, None, 2.40, None, 2.59],
    ])
    # Every format renders; CSV keeps plain numbers, LaTeX bolds the best of our S1 errors.
    assert "\ncifar10,r_darts_dp,ours,2.5," in WRITERS["csv"](table)
    assert "| cifar10 | r_darts_dp | 2.50 |" in WRITERS["md"](table)
    assert r"\textbf{2.50}" in WRITERS["tex"](table)
    status = dict(zip(table.frame["method"], table.frame["status"], strict=True))
    assert status["darts_2nd"] == "ok" and status["drnas"] == "paper only"
    assert status["r_darts_dp"].startswith("r_darts_dp_s1_p2: seed 1: missing")


def test_table4_without_selection_averages_the_seeds(results):
    grid = _grid(select=False)
    table = robustness_error_table(collect_retrain_runs(results, grid), results, grid)
    assert _rows(table)[0] == _approx([["darts_2nd", 3.5, 3.84, None, 4.85, None, 3.34, 5.5, 7.20]])[0]


def test_table5_counts_parameter_free_ops_of_the_selected_normal_cell(results):
    grid = _grid(select=True)
    table = param_free_table(collect_retrain_runs(results, grid), results, grid)
    # Selected cells: 7 of 8 skip (87.5 %), 2 of 8 noise (25 %), 2 of 8 skip (25 %).
    # Paper, CIFAR-10: SDARTS' text gives DARTS 100 % on S1 and S3 and DARTS-ES 100 % on S3; the other
    # rows are computed from the SDARTS authors' released cells.
    assert _rows(table) == _approx([
        ["darts_2nd", 87.5, 100.0, None, None, None, 100.0, 25.0, None],
        ["r_darts_dp", 25.0, None, None, None, None, None, None, None],
        ["sdarts_rs", None, 12.5, None, 37.5, None, 12.5, None, 0.0],
        ["sdarts_adv", None, 12.5, None, 12.5, None, 12.5, None, 0.0],
        ["pc_darts", None, 50.0, None, 75.0, None, 12.5, None, 12.5],
        ["darts_es", None, None, None, None, None, 100.0, None, None],
    ])


def test_drnas_table6_is_the_cifar10_slice_of_its_four_methods(results):
    grid = _grid(select=True)
    table = drnas_table6(collect_retrain_runs(results, grid), results, grid)
    assert [row[0] for row in _rows(table)] == ["darts_2nd", "r_darts_dp", "r_darts_l2", "drnas"]
    assert _rows(table)[0] == _approx([["darts_2nd", 4.0, 3.84, None, 4.85, None, 3.34, 6.0, 7.20]])[0]


def test_no_robustness_tables_without_s1_s4_variants(results):
    grid = Grid(datasets=("cifar10",), methods=("darts_2nd",), seeds=(0,), transfer=False,
                method_specs={"darts_2nd": {"algorithm": "darts", "space": "darts"}})
    runs = collect_retrain_runs(results, grid)
    assert robustness_error_table(runs, results, grid) is None
    assert param_free_table(runs, results, grid) is None
