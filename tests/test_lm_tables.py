"""The recurrent sub-grid's tables and curves from a hand-made results tree: means and stds worked by hand,
paper numbers typed from the papers (DARTS Table 2, DATA Tables 3 and 4), names apart from the main grid's."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from pipeline.tables import Grid, SubGrid, build_tables
from pipeline.tables.figures import recurrent_edge_labels
from pipeline.tables.produce import lm_histories, produce

GRID = Grid(datasets=("digits",), methods=(), seeds=(0, 1), transfer=False,
            rnn=SubGrid(("ptb",), ("rnn_darts_2nd", "rnn_mine"), transfer_to="wikitext2"))


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(results: Path, method: str, seed: int, ppl: tuple[float, float], moved: tuple[float, float] | None) -> None:
    """A finished search (one GPU-hour), genotype, PTB retrain and maybe WikiText-2 transfer of one seed."""
    run = f"ptb/{method}/seed{seed}"
    _write(results / f"search/{run}/summary.json", {"wall_time_s": 3600.0, "device": "cuda:0", "device_count": 1})
    _write(results / f"genotypes/{run}.json", {"recurrent": [["tanh", 0]], "concat": [1], "search_space": "rnn"})
    _write(results / f"retrain/{run}/metrics.json", {"valid_ppl": ppl[0], "test_ppl": ppl[1], "params_m": 23.0})
    (results / f"retrain/{run}/history.csv").write_text(f"epoch,valid_ppl\n0,{ppl[0] + 10}\n1,{ppl[0]}\n")
    if moved is not None:
        _write(results / f"transfer/wikitext2/{run}/metrics.json",
               {"valid_ppl": moved[0], "test_ppl": moved[1], "params_m": 33.0})


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    _run(root, "rnn_darts_2nd", 0, (58.0, 56.0), (70.0, 67.0))
    _run(root, "rnn_darts_2nd", 1, (60.0, 58.0), (72.0, 69.0))
    _run(root, "rnn_mine", 0, (61.0, 59.0), None)  # seed 1 never ran; no transfer of seed 0
    return root


def _row(frame: pd.DataFrame, method: str) -> pd.Series:
    return frame[frame["method"] == method].iloc[0]


def test_ptb_table_puts_seed_statistics_beside_the_papers_rows(results: Path) -> None:
    tables = {table.name: table for table in build_tables(results, GRID)}
    assert {"lm_ptb", "lm_wikitext2_from_ptb"} <= set(tables) and "ptb" not in tables
    frame = tables["lm_ptb"].frame
    ours = _row(frame, "rnn_darts_2nd")
    # By hand: valid 58, 60 -> mean 59, sample std sqrt(((58-59)^2 + (60-59)^2) / 1) = sqrt(2); test 56, 58 -> 57.
    assert ours["valid_ppl_mean"] == 59.0 and ours["valid_ppl_std"] == pytest.approx(math.sqrt(2))
    assert ours["test_ppl_mean"] == 57.0 and ours["test_ppl_std"] == pytest.approx(math.sqrt(2))
    assert (ours["n_finished"], ours["n_planned"]) == (2, 2)
    assert ours["search_cost_days"] == pytest.approx(1 / 24)  # one GPU-hour per seed
    # DARTS (2nd order) on PTB, DARTS Table 2: valid 58.1, test 55.7, 23M params, 1 GPU-day.
    assert (ours["paper_valid"], ours["paper_test"], ours["paper_params_m"], ours["paper_search_cost_gpu_days"]) == (
        58.1, 55.7, 23, 1)
    mine = _row(frame, "rnn_mine")
    assert mine["valid_ppl_mean"] == 61.0 and math.isnan(mine["valid_ppl_std"])
    assert (mine["n_finished"], mine["n_planned"]) == (1, 2) and "seed 1: missing" in mine["status"]
    paper_only = frame[frame["source"] == "paper"].set_index("method")
    # DATA Table 3, M = 7: valid 57.1, test 55.3; the DARTS authors' released model: test 55.68 at 22.960M.
    assert (paper_only.loc["data_m7", "paper_valid"], paper_only.loc["data_m7", "paper_test"]) == (57.1, 55.3)
    assert paper_only.loc["darts_v2_released", "paper_test"] == 55.68
    assert "darts_2nd" not in paper_only.index, "our rnn_darts_2nd row carries it"


def test_wikitext2_table_holds_the_transferred_cells(results: Path) -> None:
    frame = {table.name: table for table in build_tables(results, GRID)}["lm_wikitext2_from_ptb"].frame
    ours = _row(frame, "rnn_darts_2nd")
    assert (ours["valid_ppl_mean"], ours["test_ppl_mean"], ours["params_m"]) == (71.0, 68.0, 33.0)
    # DATA Table 4, DARTS searched on PTB: valid 69.5, test 66.9, 33M.
    assert (ours["paper_valid"], ours["paper_test"], ours["paper_params_m"]) == (69.5, 66.9, 33)
    assert _row(frame, "rnn_mine")["n_finished"] == 0


def test_produce_writes_the_tables_and_the_perplexity_curves(results: Path, tmp_path: Path) -> None:
    written = produce(results, tmp_path / "tables", tmp_path / "figures", GRID, ["md"], use_graphviz=False)
    names = {path.name for path in written}
    assert {"lm_ptb.md", "lm_wikitext2_from_ptb.md", "lm_ptb.png", "index.md"} <= names
    assert "lm_wikitext2_from_ptb.png" not in names, "no transfer history.csv exists"
    index = (tmp_path / "tables" / "index.md").read_text()
    assert "Recurrent sub-grid: corpora ptb" in index and "lm_wikitext2_from_ptb.png: no transfer history.csv" in index


def test_recurrent_edges_are_labelled_by_the_nodes_each_node_reads() -> None:
    # Node 1 reads node 0; node 2 reads 0 and 1; node 3 reads 0, 1, 2 (DARTS Fig. 4's cell, 3 nodes).
    assert recurrent_edge_labels(6) == ["0→1", "0→2", "1→2", "0→3", "1→3", "2→3"]


def test_with_selection_each_row_is_the_seed_with_the_lowest_select_perplexity(results: Path) -> None:
    """DARTS §3.2: the cell kept is the one whose short training scored the lowest validation perplexity,
    although another seed's full training tests better; its transfer is reported too."""
    root = results
    _run(root, "rnn_darts_2nd", 2, (57.0, 55.0), (69.0, 66.0))  # the best full run, but not selected
    for seed, select_ppl in ((0, 90.0), (1, 80.0), (2, 85.0)):
        _write(root / f"select/ptb/rnn_darts_2nd/seed{seed}/metrics.json", {"valid_ppl": select_ppl})
    grid = Grid(datasets=("digits",), methods=(), seeds=(0, 1, 2), transfer=False,
                rnn=SubGrid(("ptb",), ("rnn_darts_2nd", "rnn_mine"), transfer_to="wikitext2", select=True))
    tables = {table.name: table for table in build_tables(root, grid)}
    # Seed 1 (80 < 85 < 90): its retrain (60, 58) and transfer (72, 69) alone, no spread over seeds.
    ours = _row(tables["lm_ptb"].frame, "rnn_darts_2nd")
    assert (ours["valid_ppl_mean"], ours["test_ppl_mean"], ours["n_finished"], ours["n_planned"]) == (60.0, 58.0, 1, 1)
    assert math.isnan(ours["valid_ppl_std"])
    moved = _row(tables["lm_wikitext2_from_ptb"].frame, "rnn_darts_2nd")
    assert (moved["valid_ppl_mean"], moved["test_ppl_mean"]) == (72.0, 69.0)
    assert "lowest validation perplexity" in tables["lm_ptb"].notes[0]
    # rnn_mine has no select run: nothing is reported for it, and the status says why.
    mine = _row(tables["lm_ptb"].frame, "rnn_mine")
    assert math.isnan(mine["valid_ppl_mean"]) and mine["status"].startswith("no seed selected")
    # The perplexity curves follow the tables: seed 1's history alone (valid 70 then 60, written by _run).
    curves = lm_histories(root, grid, "ptb", None)
    assert curves[["method", "seed", "epoch", "valid_ppl"]].values.tolist() == [
        ["rnn_darts_2nd", 1, 0, 70.0], ["rnn_darts_2nd", 1, 1, 60.0]]
