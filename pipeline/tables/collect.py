"""Read the grid's result files into frames: one row per planned run, each with a status.

A run is `ok` when its metrics.json exists, `failed` when a stage left a FAILED.json marker for it (its
own, or upstream: a failed search or derive explains a missing retrain), and `missing` otherwise. The
reason travels with the row so the tables can say why a number is absent instead of leaving a silent gap.
Unreadable JSON is an error naming the file: stages write atomically, so a torn file means a real problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import PipelineError
from pipeline.layout import genotype_path, retrain_dir, search_dir, text_transfer_dir, transfer_dir
from pipeline.markers import failure_marker
from pipeline.tables.grid import Grid

SECONDS_PER_DAY = 86400.0
_ERROR_CHARS = 80
_SEARCH_FIELDS = ("search_cost_days", "search_on_cpu", "peak_memory_mb")
_RETRAIN_FIELDS = ("test_error", "test_acc", "params_m", "mult_adds_m")
_TRANSFER_FIELDS = ("top1_error", "top5_error", "params_m", "mult_adds_m")
_LM_FIELDS = ("valid_ppl", "test_ppl", "params_m")
# Text columns taken from metrics.json under another name: transfer's `dataset` is what it trained on
# (ILSVRC2012, or the offline demo stand-in), not the dataset the cell was searched on.
_TRANSFER_TEXT = {"trained_on": "dataset"}
_KEYS = ("dataset", "method", "seed", "status", "reason")


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in `path`, or None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: not valid JSON ({exc}); rerun the stage that writes it") from None
    if not isinstance(obj, dict):
        raise PipelineError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def collect_retrain_runs(results: Path, grid: Grid) -> pd.DataFrame:
    """Every (dataset, method, seed) of the grid, in grid order, with retrain metrics and search cost."""
    return _collect(results, grid, grid.retrain_pairs(), retrain_dir, "retrain", _RETRAIN_FIELDS, {})


def collect_transfer_runs(results: Path, grid: Grid) -> pd.DataFrame:
    """Every (searched-on dataset, method, seed) trained on ImageNet, direct searches included, with metrics."""
    return _collect(results, grid, grid.transfer_pairs(), transfer_dir, "transfer", _TRANSFER_FIELDS, _TRANSFER_TEXT)


def collect_lm_runs(results: Path, grid: Grid, target: str | None = None) -> pd.DataFrame:
    """Every (corpus, method, seed) of the recurrent sub-grid with its language-model metrics: trained on the
    corpus it was searched on (retrain), or on `target` (the transfer to grid.rnn.transfer_to)."""
    if target is None:
        return _collect(results, grid, grid.rnn.pairs(), retrain_dir, "retrain", _LM_FIELDS, {})
    def stage_dir(results: Path, dataset: str, method: str, seed: int) -> Path:
        return text_transfer_dir(results, target, dataset, method, seed)
    return _collect(results, grid, grid.rnn.pairs(), stage_dir, "transfer", _LM_FIELDS, {})


def collect_histories(results: Path, grid: Grid, dataset: str, *, methods: tuple[str, ...] | None = None,
                      run_dir: Callable[[Path, str, str, int], Path] = search_dir) -> pd.DataFrame:
    """The history.csv files of one dataset (of the searches, or of the stage whose directory `run_dir`
    gives), stacked, with `method` and `seed` columns; `methods` default to the main grid's."""
    frames = []
    for method in grid.methods if methods is None else methods:
        for seed in grid.seeds:
            path = run_dir(results, dataset, method, seed) / "history.csv"
            if path.is_file():
                frames.append(pd.read_csv(path).assign(method=method, seed=seed))
    if not frames:
        return pd.DataFrame(columns=["method", "seed", "epoch"])
    return pd.concat(frames, ignore_index=True)


def read_arch_weights(path: Path) -> list[dict[str, Any]]:
    """The per-epoch records of an arch_weights.jsonl file, in epoch order (empty when absent)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{path}:{number}: not valid JSON ({exc})") from None
    return sorted(records, key=lambda record: record["epoch"])


def _collect(results: Path, grid: Grid, pairs: list[tuple[str, str]],
             stage_dir: Callable[[Path, str, str, int], Path], stage: str, fields: tuple[str, ...],
             texts: dict[str, str]) -> pd.DataFrame:
    """One row per (dataset, method) of `pairs` and seed for `stage` (retrain or transfer), with search fields."""
    rows = []
    for dataset, method in pairs:
        for seed in grid.seeds:
            search = search_dir(results, dataset, method, seed)
            genotype = genotype_path(results, dataset, method, seed)
            target = stage_dir(results, dataset, method, seed)
            chain = [
                ("search/summary.json", search / "summary.json"),
                ("genotype", genotype),
                (f"{stage}/metrics.json", target / "metrics.json"),
            ]
            rows.append(_run_row(dataset, method, seed, chain, [search, genotype, target], fields, texts)
                        | search_fields(search))
    frame = pd.DataFrame(rows, columns=[*_KEYS, *fields, *texts, *_SEARCH_FIELDS])
    return frame.astype(dict.fromkeys([*fields, "search_cost_days", "peak_memory_mb"], "float64"))


def _run_row(dataset: str, method: str, seed: int, chain: list[tuple[str, Path]], outputs: list[Path],
             fields: tuple[str, ...], texts: dict[str, str]) -> dict[str, Any]:
    """Status, reason and metric fields of one run; `chain` (artefacts) and `outputs` (the stages' --out
    paths) list upstream first, so the failure nearest the missing metrics is the one reported."""
    row: dict[str, Any] = {"dataset": dataset, "method": method, "seed": seed} | dict.fromkeys([*fields, *texts])
    metrics = read_json(chain[-1][1])
    if metrics is not None:
        return (row | {"status": "ok", "reason": ""} | {key: metrics.get(key) for key in fields}
                | {column: metrics.get(key) for column, key in texts.items()})
    for out in reversed(outputs):
        failure = read_json(failure_marker(out))
        if failure is not None:
            return row | {"status": "failed", "reason": f"seed {seed}: {_failure_text(failure)}"}
    missing = ", ".join(label for label, path in chain if not path.exists())
    return row | {"status": "missing", "reason": f"seed {seed}: missing {missing}"}


def _failure_text(failure: dict[str, Any]) -> str:
    """`<stage> failed: <first line of the error>`, short enough for a table cell."""
    lines = str(failure.get("error", "")).strip().splitlines()
    error = lines[0] if lines else "no error message"
    if len(error) > _ERROR_CHARS:
        error = error[: _ERROR_CHARS - 1] + "…"
    return f"{failure.get('stage', 'a stage')} failed: {error}"


def search_fields(search: Path) -> dict[str, Any]:
    """Search cost in device-days (wall time x devices / 86400), whether it ran on CPU, peak memory."""
    summary = read_json(search / "summary.json")
    if summary is None:
        return dict.fromkeys(_SEARCH_FIELDS)
    wall_time_s = summary.get("wall_time_s")
    devices = float(summary.get("device_count") or 1)
    return {
        "search_cost_days": None if wall_time_s is None else float(wall_time_s) * devices / SECONDS_PER_DAY,
        "search_on_cpu": str(summary.get("device", "")).startswith("cpu"),
        "peak_memory_mb": summary.get("peak_memory_mb"),
    }
