"""pipeline.tracking against a real SQLite store: what a stage logs arrives, a disabled run costs nothing,
and a spool written while the server was unreachable is uploaded exactly once."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest
from workflow_support import BIN, REPO, free_port, tool_env

from pipeline import tracking
from pipeline.config import TrackingConfig

pytestmark = pytest.mark.slow


def _run(out: Path, uri: str, *, fail: bool = False) -> None:
    """A stand-in stage: three epochs of metrics, a file artifact, a text and a dict."""
    (out / "genotype.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "genotype.json").write_text('{"normal": []}')
    with tracking.stage_run("search", tracking.RunKey("digits", "darts_1st", 0),
                            params={"search": {"epochs": 3, "arch": {"betas": [0.5, 0.999]}}},
                            tags={"note": "test"}, tracking=TrackingConfig(uri=uri, experiment="test"),
                            out_dir=out) as logger:
        for epoch in range(3):
            logger.log_metrics({"train_loss": 1.0 / (epoch + 1), "valid_acc": 10.0 * epoch}, step=epoch)
        logger.log_artifact(out / "genotype.json")
        logger.log_text("sep_conv_3x3 x2", "genotype.txt")
        logger.log_dict({"final": 1}, "final.json")
        if fail:
            raise RuntimeError("boom")


def _runs(uri: str, stage: str = "search") -> list:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("test")
    return client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_stage_run_arrives_with_params_tags_metric_history_and_artifacts(tmp_path: Path, store: str) -> None:
    from mlflow import MlflowClient

    _run(tmp_path / "out", store)
    (run,) = _runs(store)
    client = MlflowClient(store)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"search.epochs": "3", "search.arch.betas": "[0.5, 0.999]"}
    assert {k: run.data.tags[k] for k in ("stage", "dataset", "method", "seed", "note")} == {
        "stage": "search", "dataset": "digits", "method": "darts_1st", "seed": "0", "note": "test"}
    assert len(run.data.tags["params_sha256"]) == 64 and run.data.tags["git_commit"]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "valid_acc")] == [
        (0, 0.0), (1, 10.0), (2, 20.0)]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"genotype.json", "genotype.txt",
                                                                       "final.json"}
    parent = client.get_run(run.data.tags["mlflow.parentRunId"])
    assert parent.data.tags[tracking.PARENT_KEY_TAG] == "digits/darts_1st/seed0"


def test_a_second_stage_of_the_same_seed_joins_the_same_parent(tmp_path: Path, store: str) -> None:
    _run(tmp_path / "a", store)
    _run(tmp_path / "b", store)
    runs = _runs(store)
    assert len(runs) == 2
    assert len({run.data.tags["mlflow.parentRunId"] for run in runs}) == 1


def _parent_start(key: str = "digits/darts_1st/seed0") -> dict:
    return {"parent_key": key, "tags": {"dataset": "digits", "method": "darts_1st", "seed": "0"}}


def _active_parents(client, experiment_id: str) -> list:
    return client.search_runs([experiment_id], f"tags.`{tracking.PARENT_KEY_TAG}` LIKE '%'")


def test_two_contenders_that_both_found_no_parent_agree_on_one(store: str) -> None:
    # The race by hand: A finds no claim and creates its candidate; before A claims, B runs the whole
    # protocol (finds no claim, creates, claims). A's claim must then fail, and A must join B's parent.
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    tracking.ensure_store(store)
    client = MlflowClient(store)
    experiment_id = client.create_experiment("race")
    chosen_by_b: list[str] = []

    class ContenderA(MlflowClient):
        def create_run(self, *args, **kwargs):
            mine = super().create_run(*args, **kwargs)
            chosen_by_b.append(tracking._parent_run_id(client, experiment_id, _parent_start()))
            return mine

    chosen_by_a = tracking._parent_run_id(ContenderA(store), experiment_id, _parent_start())
    (parent,) = _active_parents(client, experiment_id)
    assert chosen_by_a == chosen_by_b[0] == parent.info.run_id
    deleted = client.search_runs([experiment_id], "", run_view_type=ViewType.DELETED_ONLY)
    assert len(deleted) == 1 and deleted[0].data.tags[tracking.PARENT_KEY_TAG] == "digits/darts_1st/seed0"
    # A later stage only reads the claim; a different key gets its own parent.
    assert tracking._parent_run_id(client, experiment_id, _parent_start()) == parent.info.run_id
    other = tracking._parent_run_id(client, experiment_id, _parent_start("digits/darts_1st/seed1"))
    assert other != parent.info.run_id and len(_active_parents(client, experiment_id)) == 2
    # The claim names the winner and is hidden from the experiment list.
    claim = client.get_experiment_by_name(tracking.parent_claim_name(experiment_id, "digits/darts_1st/seed0"))
    assert claim.lifecycle_stage == "deleted" and claim.tags[tracking.PARENT_RUN_TAG] == parent.info.run_id
    assert {e.name for e in client.search_experiments()} == {"race", "Default"}


def test_a_claim_whose_answer_was_lost_keeps_its_own_parent(store: str) -> None:
    # A retried request may create the claim and still report a failure (the first answer was lost):
    # the contender then reads its own run id from the claim and must not delete that parent.
    from mlflow import MlflowClient

    tracking.ensure_store(store)
    client = MlflowClient(store)
    experiment_id = client.create_experiment("lost-answer")

    class LostAnswer(MlflowClient):
        def create_experiment(self, *args, **kwargs):
            super().create_experiment(*args, **kwargs)
            raise ConnectionError("response lost")

    chosen = tracking._parent_run_id(LostAnswer(store), experiment_id, _parent_start())
    (parent,) = _active_parents(client, experiment_id)
    assert chosen == parent.info.run_id


def test_a_failing_stage_ends_its_run_failed_and_still_raises(tmp_path: Path, store: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        _run(tmp_path / "out", store, fail=True)
    (run,) = _runs(store)
    assert run.info.status == "FAILED"


def test_disabled_tracking_neither_imports_mlflow_nor_writes(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pipeline import tracking\n"
        "from pipeline.config import TrackingConfig\n"
        f"with tracking.stage_run('search', tracking.RunKey('d', 'm', 0), params={{}}, tags={{}},"
        f" tracking=TrackingConfig(enabled=False, uri='', experiment='e'), out_dir={str(tmp_path)!r}) as logger:\n"
        "    logger.log_metrics({'a': 1.0}, step=0)\n"
        "    logger.log_text('x', 'x.txt')\n"
        "print('mlflow' in sys.modules)\n"
    )
    proc = subprocess.run([str(BIN / "python"), "-c", code], cwd=REPO, env=tool_env(), capture_output=True,
                          text=True, timeout=120, check=True)
    assert proc.stdout.strip() == "False"
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_server_spools_and_sync_uploads_exactly_once(
    tmp_path: Path, store: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    monkeypatch.setattr(tracking, "_warned_uris", set())
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="pipeline.tracking"):
        _run(out, dead)
    (warning,) = [r.message for r in caplog.records if r.name == "pipeline.tracking"]
    assert warning.startswith(f"MLflow tracking at {dead} failed")

    spool = out / tracking.SPOOL_NAME
    ops = [json.loads(line)["op"] for line in spool.read_text().splitlines()]
    assert ops == ["start", "metrics", "artifact", "text", "dict", "end"]

    assert tracking.sync_spool(spool, store) == len(ops)
    assert tracking.sync_spool(spool, store) == 0
    # Even a replay from scratch (the offset file lost) finds the run by its key and adds nothing twice.
    (out / tracking.SYNCED_NAME).unlink()
    assert tracking.sync_spool(spool, store) == len(ops)
    (run,) = _runs(store)
    assert run.info.status == "FINISHED"
    history = MlflowClient(store).get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert {a.path for a in MlflowClient(store).list_artifacts(run.info.run_id)} == {
        "genotype.json", "genotype.txt", "final.json"}


def test_tables_stage_logs_tables_and_figures_as_artifacts(tmp_path: Path) -> None:
    import yaml
    from mlflow.tracking import MlflowClient

    from pipeline.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["tracking"].update(enabled=True, uri=uri, experiment="tables-test")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "tables"
    assert main(["tables", "--params", str(tmp_path / "params.yaml"), "--results", str(tmp_path / "results"),
                 "--out", str(out), "--figures", str(tmp_path / "figures")]) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tables-test")
    (table_run,) = client.search_runs([experiment.experiment_id], "tags.stage = 'tables'")
    logged = {artifact.path for artifact in client.list_artifacts(table_run.info.run_id, "tables")}
    assert {f"tables/{p.name}" for p in out.iterdir() if p.is_file()} <= logged
    assert "tables/index.md" in logged
