"""Tracking against a real MLflow server, and what happens when the server is gone.

Stages run as users run them (`python -m pipeline ...` with MLFLOW_TRACKING_URI set); the results are read
back with MlflowClient, the way the MLflow UI reads them.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from workflow_support import BIN, copy_repo, free_port, mlflow_server, run, tool_env, write_tiny_params

pytestmark = pytest.mark.slow

PY = str(BIN / "python")
WARNING = "MLflow tracking at"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on a free local port for the whole module."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-grid copy with tracking on and two search epochs (so a metric has a history)."""
    root = copy_repo(tmp_path_factory.mktemp("repo"))
    write_tiny_params(root, {"tracking": {"enabled": True}, "search": {"epochs": 2}})
    run([PY, "-m", "pipeline", "prepare", "--params", "params.yaml", "--dataset", "digits",
         "--out", "results/data/digits"], cwd=root, timeout=300)
    return root


def _stage(root: Path, uri: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run([PY, "-m", "pipeline", *args], cwd=root, timeout=600, env=tool_env(MLFLOW_TRACKING_URI=uri))


def _search(root: Path, uri: str, out: str) -> subprocess.CompletedProcess[str]:
    return _stage(root, uri, "search", "--params", "params.yaml", "--dataset", "digits", "--method",
                  "darts_1st", "--seed", "0", "--out", out)


def test_search_and_retrain_are_read_back_from_the_server(repo: Path, server: str) -> None:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    _search(repo, server, "results/search/digits/darts_1st/seed0")
    _stage(repo, server, "derive", "--params", "params.yaml", "--search-dir",
           "results/search/digits/darts_1st/seed0", "--out", "results/genotypes/digits/darts_1st/seed0.json")
    _stage(repo, server, "retrain", "--params", "params.yaml", "--genotype",
           "results/genotypes/digits/darts_1st/seed0.json", "--dataset", "digits", "--seed", "0",
           "--out", "results/retrain/digits/darts_1st/seed0")

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("darts-family")
    found = client.search_runs([experiment.experiment_id], "tags.stage != ''")
    runs = {run.data.tags["stage"]: run for run in found}
    search, derive, retrain = runs["search"], runs["derive"], runs["retrain"]

    assert search.data.params["search.epochs"] == "2"
    assert search.data.tags["method"] == "darts_1st" and search.data.tags["seed"] == "0"
    assert len(search.data.tags["params_sha256"]) == 64
    # Every stage of a search's chain names the space the variant searched (darts_1st: the default).
    assert search.data.tags["space"] == derive.data.tags["space"] == retrain.data.tags["space"] == "darts"
    history = client.get_metric_history(search.info.run_id, "train_loss")
    assert len({m.step for m in history}) == 2, history

    local = download_artifacts(run_id=derive.info.run_id, artifact_path="seed0.json", tracking_uri=server)
    genotype = json.loads(Path(local).read_text())
    on_disk = json.loads((repo / "results/genotypes/digits/darts_1st/seed0.json").read_text())
    assert genotype == on_disk and {"normal", "reduce"} <= set(genotype)
    assert {a.path for a in client.list_artifacts(search.info.run_id)} >= {"history.csv", "architecture.json"}

    assert retrain.data.params["retrain.epochs"] == "1"
    parent = search.data.tags["mlflow.parentRunId"]
    assert derive.data.tags["mlflow.parentRunId"] == retrain.data.tags["mlflow.parentRunId"] == parent
    assert client.get_run(parent).data.tags["pipeline.parent_key"] == "digits/darts_1st/seed0"


def test_unreachable_server_warns_once_spools_and_sync_uploads_exactly_once(repo: Path, server: str) -> None:
    from mlflow import MlflowClient

    dead = f"http://127.0.0.1:{free_port()}"
    out = "results/search/digits/darts_1st/outage"
    started = time.monotonic()
    proc = _search(repo, dead, out)
    assert time.monotonic() - started < 300
    assert (repo / out / "summary.json").is_file()
    assert proc.stderr.count(WARNING) + proc.stdout.count(WARNING) == 1, proc.stderr[-3000:]
    spool = repo / out / "tracking_spool.jsonl"
    records = [json.loads(line) for line in spool.read_text().splitlines()]
    assert records[0]["op"] == "start"
    assert (records[-1]["op"], records[-1]["status"]) == ("end", "FINISHED")
    run_key = records[0]["run_key"]

    first = _stage(repo, server, "sync-tracking", "--results", "results")
    assert f"uploaded {len(records)} records" in first.stdout
    second = _stage(repo, server, "sync-tracking", "--results", "results")
    assert "uploaded 0 records" in second.stdout

    client = MlflowClient(server)
    experiment = client.get_experiment_by_name("darts-family")
    synced = client.search_runs([experiment.experiment_id], f"tags.`pipeline.run_key` = '{run_key}'")
    assert len(synced) == 1
    assert synced[0].info.status == "FINISHED"
    assert len({m.step for m in client.get_metric_history(synced[0].info.run_id, "train_loss")}) == 2
