"""The tables stage over a hand-built results tree: exact Markdown/CSV, LaTeX properties, figures, reruns."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from shipped_params import narrowed

from pipeline.config import Params
from pipeline.stages import tables as tables_stage
from pipeline.tables import Grid, Table, build_tables, to_csv, to_latex, to_markdown
from pipeline.tables.ablations import data_sampling_table, drnas_partial_table
from pipeline.tables.cells import cell_dot_source
from pipeline.tables.collect import collect_retrain_runs
from pipeline.tables.render import format_number, tex_escape

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PRIMITIVES = ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
              "dil_conv_3x3", "dil_conv_5x5"]
GRID = Grid(datasets=("cifar10", "digits"), methods=("darts_1st", "darts_2nd"), seeds=(0, 1), transfer=True,
            method_specs={"darts_1st": {"algorithm": "darts", "order": 1},
                          "darts_2nd": {"algorithm": "darts", "order": 2}})
GENOTYPE = {
    "normal": [[["sep_conv_3x3", 0], ["sep_conv_3x3", 1]], [["skip_connect", 0], ["sep_conv_3x3", 1]],
               [["skip_connect", 0], ["dil_conv_3x3", 2]], [["sep_conv_3x3", 0], ["sep_conv_5x5", 0]]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [[["max_pool_3x3", 0], ["max_pool_3x3", 1]], [["skip_connect", 2], ["max_pool_3x3", 1]],
               [["max_pool_3x3", 0], ["skip_connect", 2]], [["skip_connect", 2], ["avg_pool_3x3", 0]]],
    "reduce_concat": [2, 3, 4, 5],
    "search_space": "darts",
}


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _search(results: Path, dataset: str, method: str, seed: int, wall_time_s: float, device: str,
            memory: float = 1000.0) -> None:
    _write(results / "search" / dataset / method / f"seed{seed}" / "summary.json",
           {"wall_time_s": wall_time_s, "device": device, "device_count": 1, "peak_memory_mb": memory})


def _retrain(results: Path, dataset: str, method: str, seed: int, error: float, params: float,
             mult_adds: float) -> None:
    _write(results / "retrain" / dataset / method / f"seed{seed}" / "metrics.json",
           {"test_error": error, "test_acc": 100 - error, "params_m": params, "mult_adds_m": mult_adds})


def _history(results: Path, dataset: str, method: str, seed: int, offset: float) -> None:
    rows = ["epoch,valid_acc,child_valid_acc,hessian_eig"]
    rows += [f"{e},{50 + 10 * e + offset},{40 + 12 * e + offset},{0.1 * (e + 1) + offset / 10}"
             for e in range(3)]
    (results / "search" / dataset / method / f"seed{seed}" / "history.csv").write_text("\n".join(rows) + "\n")


def _arch_weights(path: Path) -> None:
    lines = []
    for epoch in range(3):
        edge = [(1.0 + epoch * (i == 4)) / (8 + epoch) for i in range(8)]
        lines.append(json.dumps({"epoch": epoch, "weights": {"normal": [edge] * 14, "reduce": [edge[::-1]] * 14},
                                 "edge_ops": {"normal": [PRIMITIVES] * 14, "reduce": [PRIMITIVES] * 14}}))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    """cifar10 (GPU searches): darts_1st seed 1 not retrained yet. digits (CPU): darts_2nd seed 0 failed."""
    root = tmp_path / "results"
    for method, seed, error, params, mult_adds in [("darts_1st", 0, 3.10, 3.2, 520.0),
                                                   ("darts_2nd", 0, 2.80, 3.4, 540.0),
                                                   ("darts_2nd", 1, 2.60, 3.3, 530.0)]:
        _retrain(root, "cifar10", method, seed, error, params, mult_adds)
    for method in GRID.methods:
        for seed in GRID.seeds:
            _search(root, "cifar10", method, seed, 17280.0 if method == "darts_2nd" else 8640.0,
                    "cuda:NVIDIA H100")
            _search(root, "digits", method, seed, 43.2, "cpu")
            _history(root, "cifar10", method, seed, offset=float(seed) + 5 * (method == "darts_2nd"))
    for method, seed in [("darts_1st", 1), ("darts_2nd", 0)]:
        _write(root / "genotypes" / "cifar10" / method / f"seed{seed}.json", GENOTYPE)
    _retrain(root, "digits", "darts_1st", 0, 5.0, 0.012, 0.5)
    _retrain(root, "digits", "darts_1st", 1, 6.0, 0.014, 0.7)
    _retrain(root, "digits", "darts_2nd", 1, 4.5, 0.011, 0.55)
    _write(root / "retrain" / "digits" / "darts_2nd" / "seed0" / "FAILED.json",
           {"stage": "retrain", "error": "NumericalError: loss became NaN at epoch 1\nTraceback ...",
            "provenance": {}})
    _write(root / "transfer" / "imagenet" / "cifar10" / "darts_2nd" / "seed0" / "metrics.json",
           {"top1_error": 30.0, "top5_error": 11.0, "params_m": 4.5, "mult_adds_m": 560.0,
            "searched_on": "cifar10"})
    _arch_weights(root / "search" / "cifar10" / "darts_2nd" / "seed0" / "arch_weights.jsonl")
    return root


def _tables(results: Path) -> dict[str, Table]:
    return {table.name: table for table in build_tables(results, GRID)}


def _md_row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _paper_only(method: str, error: str, params: str = "—", cost: str = "—") -> str:
    return _md_row(method, *["—"] * 6, error, params, cost, "paper only")


HEADER = _md_row("method", "test error (%)", "n", "best seed error (%)", "params (M)", "mult-adds (M)",
                 "search cost ({unit})", "paper error (%)", "paper params (M)", "paper cost (GPU-days)",
                 "status")
RULE = _md_row("---", *["---:"] * 9, "---")
SEED_NOTE = ("- Our numbers: mean ± sample std over the seeds that finished (std omitted for one seed); "
             "n = finished/planned seeds; status names every seed that is missing or failed.")
COST_NOTE = ("- Search cost: search wall time × device count / 86400 per seed, averaged over the seeds whose "
             "search finished; CPU-days when the search ran on CPU.")
GENERATED = "_Generated by `python -m pipeline tables` from the metrics files of the run grid; do not edit._"

CIFAR10_MD = "\n".join([
    "# cifar10: test error of the derived architectures",
    "",
    HEADER.format(unit="GPU-days"),
    RULE,
    _md_row("darts_1st", "3.10", "1/2", "3.10", "3.20", "520.0", "0.10", "3.00 ± 0.14", "3.30", "0.40",
            "seed 1: missing retrain/metrics.json"),
    _md_row("darts_2nd", "2.70 ± 0.14", "2/2", "2.60", "3.35", "535.0", "0.20", "2.76 ± 0.09", "3.30", "1.00",
            "ok"),
    _paper_only("sdarts_rs", "2.67"),
    _paper_only("sdarts_adv", "2.61 ± 0.02", "3.30", "1.30"),
    _paper_only("drnas", "2.46 ± 0.03", "4.10", "0.60"),
    _paper_only("drnas_proxy", "2.54 ± 0.03", "4.00", "0.40"),
    _paper_only("ddsas", "2.59 ± 0.17", "3.50", "0.13"),
    _paper_only("ddsas_shrink", "2.52 ± 0.06", "3.90", "0.13"),
    _paper_only("ddsas_expand", "2.57 ± 0.10", "3.70", "0.13"),
    _paper_only("data_m4", "2.70 ± 0.10", "3.24", "1.00"),
    _paper_only("data_m7", "2.59 ± 0.09", "3.44", "1.00"),
    _paper_only("random_search", "3.29 ± 0.15", "3.20", "4.00"),
    _paper_only("pc_darts", "2.57 ± 0.07", "3.60", "0.10"),
    _paper_only("gdas", "2.93", "3.40", "0.30"),
    _paper_only("snas_moderate", "2.85 ± 0.02", "2.80", "1.50"),
    _paper_only("p_darts", "2.50", "3.40", "0.30"),
    "",
    SEED_NOTE,
    COST_NOTE,
    "- Paper columns: pipeline/reference/paper_results.yaml, section `cifar10`.",
    "",
    GENERATED,
    "",
])

DIGITS_MD = "\n".join([
    "# digits: test error of the derived architectures",
    "",
    HEADER.format(unit="CPU-days"),
    RULE,
    _md_row("darts_1st", "5.50 ± 0.71", "2/2", "5.00", "0.013", "0.60", "0.00050", "—", "—", "—", "ok"),
    _md_row("darts_2nd", "4.50", "1/2", "4.50", "0.011", "0.55", "0.00050", "—", "—", "—",
            "seed 0: retrain failed: NumericalError: loss became NaN at epoch 1"),
    "",
    SEED_NOTE,
    COST_NOTE,
    "- The papers report no numbers on digits.",
    "",
    GENERATED,
    "",
])

CSV_HEADER = ",".join([
    "method", "source", "test_error_mean", "test_error_std", "n_finished", "n_planned", "best_seed_error",
    "params_m", "mult_adds_m", "search_cost_days", "search_cost_unit", "paper_error", "paper_std",
    "paper_params_m", "paper_search_cost_gpu_days", "status",
])
CIFAR10_CSV_HEAD = "\n".join([
    CSV_HEADER,
    "darts_1st,ours,3.1,,1,2,3.1,3.2,520,0.1,GPU-days,3,0.14,3.3,0.4,seed 1: missing retrain/metrics.json",
    "darts_2nd,ours,2.7,0.1414213562,2,2,2.6,3.35,535,0.2,GPU-days,2.76,0.09,3.3,1,ok",
    "sdarts_rs,paper,,,,,,,,,,2.67,,,,paper only",
    "sdarts_adv,paper,,,,,,,,,,2.61,0.02,3.3,1.3,paper only",
])
DIGITS_CSV = "\n".join([
    CSV_HEADER,
    "darts_1st,ours,5.5,0.7071067812,2,2,5,0.013,0.6,0.0005,CPU-days,,,,,ok",
    "darts_2nd,ours,4.5,,1,2,4.5,0.011,0.55,0.0005,CPU-days,,,,,"
    "seed 0: retrain failed: NumericalError: loss became NaN at epoch 1",
    "",
])


def test_markdown_shows_mean_std_status_and_paper_numbers_exactly(results: Path) -> None:
    tables = _tables(results)
    assert to_markdown(tables["cifar10"]) == CIFAR10_MD
    assert to_markdown(tables["digits"]) == DIGITS_MD


def test_csv_holds_plain_numbers_with_empty_cells_for_nan(results: Path) -> None:
    tables = _tables(results)
    cifar10 = to_csv(tables["cifar10"])
    assert cifar10.startswith(CIFAR10_CSV_HEAD + "\n")
    assert cifar10.endswith("\np_darts,paper,,,,,,,,,,2.5,,3.4,0.3,paper only\n")
    assert len(cifar10.splitlines()) == 1 + 2 + 14  # header, our two variants, the paper's other methods
    assert to_csv(tables["digits"]) == DIGITS_CSV


def test_latex_uses_booktabs_bolds_our_best_and_escapes(results: Path) -> None:
    tex = to_latex(_tables(results)["cifar10"])
    lines = tex.splitlines()
    assert r"\begin{tabular}{lrrrrrrrrrl}" in lines
    assert [line for line in lines if line in (r"\toprule", r"\midrule", r"\bottomrule")] == [
        r"\toprule", r"\midrule", r"\midrule", r"\bottomrule"]  # a rule between ours and paper-only rows
    darts_1st = next(line for line in lines if line.startswith(r"darts\_1st &"))
    darts_2nd = next(line for line in lines if line.startswith(r"darts\_2nd &"))
    # Lowest error is ours-only: darts_2nd beats darts_1st; the paper rows (2.46 for drnas) do not compete.
    assert r"\textbf{2.70 $\pm$ 0.14}" in darts_2nd and r"\textbf{2.60}" in darts_2nd
    assert r"\textbf{3.20}" in darts_1st and r"\textbf{0.10}" in darts_1st  # fewer params, cheaper search
    assert r"3.00 $\pm$ 0.14" in darts_1st and "textbf{3.00" not in darts_1st  # paper column never bold
    assert r"test error (\%)" in tex and r"drnas\_proxy & --" in tex
    assert "_" not in tex.replace(r"\_", "")


def test_imagenet_table_has_our_transfer_rows_then_the_papers(results: Path) -> None:
    lines = to_csv(_tables(results)["imagenet"]).splitlines()
    assert lines[0] == ("searched_on,method,source,top1_mean,top1_std,top5_mean,top5_std,n_finished,"
                        "n_planned,params_m,mult_adds_m,search_cost_days,search_cost_unit,status")
    assert lines[2] == ('cifar10,darts_2nd,ours,30,,11,,1,2,4.5,560,0.2,GPU-days,'
                        '"seed 1: missing genotype, transfer/metrics.json"')
    assert lines[5] == "cifar10,darts_2nd,paper,26.7,,8.7,,,,4.7,574,4,GPU-days,paper only"
    assert len(lines) == 1 + 4 + 10


def test_stage_writes_tables_figures_index_and_reruns_byte_identically(results: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        "grid: {datasets: [cifar10, digits], methods: [darts_1st, darts_2nd], seeds: [0, 1], "
        "transfer: true}\n"
        "search:\n  methods:\n    darts_1st: {algorithm: darts, order: 1}\n"
        "    darts_2nd: {algorithm: darts, order: 2}\n"
        "tables: {formats: [md, csv, tex]}\n"
    )
    out, figures = tmp_path / "tables", tmp_path / "figures"
    args = argparse.Namespace(params=str(params), results=str(results), out=str(out), figures=str(figures))

    assert tables_stage.run(args) == 0
    first = {path: path.read_bytes() for path in sorted([*out.iterdir(), *figures.iterdir()])}
    assert tables_stage.run(args) == 0
    assert {path: path.read_bytes() for path in sorted([*out.iterdir(), *figures.iterdir()])} == first

    assert sorted(path.name for path in out.iterdir()) == sorted(
        [f"{name}.{fmt}" for name in ("cifar10", "digits", "imagenet") for fmt in ("md", "csv", "tex")]
        + ["index.md"])
    assert sorted(path.name for path in figures.iterdir()) == [
        "accuracy_cifar10.png", "arch_weights_cifar10_darts_2nd_seed0.png",
        "cells_cifar10_darts_1st_seed1.png", "cells_cifar10_darts_2nd_seed0.png",
        "error_vs_paper_cifar10.png", "error_vs_paper_digits.png", "hessian_cifar10.png"]
    for path in figures.iterdir():
        assert path.read_bytes().startswith(PNG_MAGIC) and path.stat().st_size > 1000
    index = (out / "index.md").read_text()
    assert "- cifar10: test error of the derived architectures: [md](cifar10.md), [csv](cifar10.csv)" in index
    assert "- [hessian_cifar10.png](../figures/hessian_cifar10.png)" in index
    assert "- hessian_digits.png: no search history.csv of digits has hessian_eig values" in index
    assert "- cells_digits_darts_1st_seed0.png: no genotypes/digits/darts_1st/seed0.json" in index


def test_ablation_tables_put_our_m_and_k_beside_the_papers(tmp_path: Path) -> None:
    grid = Grid(datasets=("cifar10",), methods=("data_m4", "data_m7", "drnas_k1", "drnas_k4", "drnas_prog"),
                seeds=(0,), transfer=False,
                method_specs={"data_m4": {"algorithm": "data", "samples": 4},
                              "data_m7": {"algorithm": "data", "samples": 7},
                              "drnas_k1": {"algorithm": "drnas", "partial_k": 1, "stages": []},
                              "drnas_k4": {"algorithm": "drnas", "partial_k": 4, "stages": []},
                              "drnas_prog": {"algorithm": "drnas", "partial_k": 1,
                                             "stages": [{"epochs": 1, "partial_k": 6, "keep_ops": 8}]}})
    root = tmp_path / "results"
    for method, error, memory in [("data_m4", 2.9, 900.0), ("data_m7", 2.7, 950.0), ("drnas_k1", 2.5, 2400.0),
                                  ("drnas_k4", 2.8, 1100.0)]:
        _search(root, "cifar10", method, 0, 864.0, "cuda:NVIDIA H100", memory)
        _retrain(root, "cifar10", method, 0, error, 3.0, 500.0)
    _search(root, "cifar10", "drnas_prog", 0, 864.0, "cuda:NVIDIA H100", 950.0)
    _write(root / "genotypes" / "cifar10" / "drnas_prog" / "seed0.FAILED.json",  # the CLI's marker for derive
           {"stage": "derive", "error": "GenotypeError: node 2 has no input", "provenance": {}})
    runs = collect_retrain_runs(root, grid)

    data = data_sampling_table(runs, "cifar10", grid)
    assert data is not None and data.name == "data_sampling_cifar10"
    assert to_markdown(data).splitlines()[2:13] == [
        _md_row("M", "method", "test error (%)", "n", "params (M)", "paper error, CIFAR-10 (%)",
                "paper params, CIFAR-10 (M)", "status"),
        _md_row("---", "---", *["---:"] * 5, "---"),
        _md_row("1", "—", "—", "—", "—", "2.94", "2.54", "paper only"),
        _md_row("2", "—", "—", "—", "—", "2.95", "2.68", "paper only"),
        _md_row("3", "—", "—", "—", "—", "2.78", "2.71", "paper only"),
        _md_row("4", "data_m4", "2.90", "1/1", "3.00", "2.70", "3.24", "ok"),
        _md_row("5", "—", "—", "—", "—", "2.72", "3.41", "paper only"),
        _md_row("6", "—", "—", "—", "—", "2.60", "3.49", "paper only"),
        _md_row("7", "data_m7", "2.70", "1/1", "3.00", "2.59", "3.44", "ok"),
        _md_row("8", "—", "—", "—", "—", "2.50", "3.79", "paper only"),
        _md_row("9", "—", "—", "—", "—", "2.45", "3.97", "paper only"),
    ]

    drnas = drnas_partial_table(runs, "cifar10", grid)
    assert drnas is not None
    csv_lines = to_csv(drnas).splitlines()
    assert csv_lines[0] == ("K,method,source,test_acc_mean,test_acc_std,n_finished,n_planned,peak_memory_mb,"
                            "paper_accuracy,paper_std,paper_memory_mb,status")
    assert [line.split(",")[:3] for line in csv_lines[1:]] == [
        ["1", "drnas_k1", "ours"], ["2", "", "paper"], ["4", "drnas_k4", "ours"], ["8", "", "paper"],
        ["progressive", "drnas_prog", "ours"]]
    assert csv_lines[1] == "1,drnas_k1,ours,97.5,,1,1,2400,94.36,0,2437,ok"
    assert csv_lines[5] == ("progressive,drnas_prog,ours,,,0,1,950,94.36,0,949,"
                            "seed 0: derive failed: GenotypeError: node 2 has no input")
    tex = to_latex(drnas)
    assert r"\textbf{97.50}" in tex and r"\textbf{950}" in tex  # highest accuracy, lowest memory
    assert "NB201 cifar10" in to_markdown(drnas)

    single = Grid(datasets=("cifar10",), methods=("data_m4",), seeds=(0,), transfer=False,
                  method_specs={"data_m4": {"algorithm": "data", "samples": 4}})
    assert data_sampling_table(runs, "cifar10", single) is None
    assert drnas_partial_table(runs, "cifar10", single) is None


def test_number_format_and_tex_escape() -> None:
    assert format_number(2.757, 2) == "2.76"
    assert format_number(0.0134, 2, significant=2) == "0.013"
    assert format_number(0.00051, 2, significant=2) == "0.00051"
    assert format_number(float("nan"), 2) is None
    assert format_number(3.3, 2, significant=2) == "3.30"
    assert tex_escape("a_b & 50% #1 {x} …") == r"a\_b \& 50\% \#1 \{x\} \ldots{}"


def test_graphviz_source_lists_every_edge_and_the_concat() -> None:
    source = cell_dot_source(GENOTYPE, "demo")
    assert source.count("->") == 2 * (8 + 4)  # 8 (op, input) pairs and 4 concat arrows per cell
    assert 'n2 -> n4 [label="dil_conv_3x3"];' in source
    assert "r5 -> rout [style=dashed];" in source


def test_direct_imagenet_searches_fill_the_imagenet_table_without_transfer(results: Path) -> None:
    grid = Grid(datasets=("digits",), methods=("darts_1st",), seeds=(0, 1), transfer=False,
                imagenet_methods=("drnas_imagenet",))
    _search(results, "imagenet", "drnas_imagenet", 0, 86400.0, "cuda:NVIDIA H100")
    _write(results / "genotypes" / "imagenet" / "drnas_imagenet" / "seed0.json", GENOTYPE)
    _write(results / "transfer" / "imagenet" / "imagenet" / "drnas_imagenet" / "seed0" / "metrics.json",
           {"top1_error": 24.5, "top5_error": 7.5, "params_m": 5.6, "mult_adds_m": 590.0, "dataset": "imagenet"})
    tables = {table.name: table for table in build_tables(results, grid)}
    assert set(tables) == {"digits", "imagenet"}
    lines = to_csv(tables["imagenet"]).splitlines()
    # Only the direct search: digits' cells are not transferred (transfer: false). One seed of two finished.
    assert lines[1] == ('imagenet,drnas_imagenet,ours,24.5,,7.5,,1,2,5.6,590,1,GPU-days,'
                        '"seed 1: missing search/summary.json, genotype, transfer/metrics.json"')
    assert lines[2].startswith("cifar10,") and len(lines) == 1 + 1 + 10
    no_direct = Grid(datasets=("digits",), methods=("darts_1st",), seeds=(0,), transfer=False)
    assert {table.name for table in build_tables(results, no_direct)} == {"digits"}


@pytest.mark.parametrize(("variants", "direct", "transfer"), [
    (["darts_1st"], [], True),
    (["darts_1st"], [], False),
    (["rnn_darts_1st"], [], True),  # a recurrent-only grid: grid.transfer has no genotype to transfer
    (["rnn_darts_1st"], ["darts_1st"], False),
], ids=["transfer", "no-transfer", "rnn-only", "direct-only"])
def test_the_grid_names_an_imagenet_table_exactly_when_the_stage_writes_one(variants, direct, transfer,
                                                                            tmp_path: Path) -> None:
    """Snakemake declares the tables job's outputs from `trains_cells_on_imagenet`; what the stage writes on
    an empty results tree is the oracle (a declared table it does not write fails the job)."""
    raw = narrowed([*variants, *direct], imagenet_methods=direct)
    raw["grid"]["transfer"] = transfer
    params = Params.model_validate(raw)
    written = {table.name for table in build_tables(tmp_path, tables_stage.grid_of(params))}
    assert ("imagenet" in written) == params.grid.trains_cells_on_imagenet()
