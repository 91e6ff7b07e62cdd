"""MLflow tracking of stage runs: the only module that imports mlflow.

Why it is shaped like this:
- `import mlflow` costs seconds, so it happens inside functions, and only when tracking is enabled.
- Tracking is a side channel. Training must never fail or stall because a server is down, so every
  MLflow call goes through one guard: the first failure is warned about once, the run switches to
  offline mode, and everything not sent (including the run's own creation) is appended to a JSONL spool
  in the stage's output directory. `python -m pipeline sync-tracking` replays the spool later.
- Replays are idempotent: each stage invocation has a random run key stored as a tag and in every spool
  record, so a replay finds the run it belongs to instead of creating a second one; metrics keep their
  original timestamps (the SQL store drops exact duplicates); params and tags are re-set to the same
  values; artifacts overwrite themselves. A byte offset next to the spool records what was synced.
- One parent run per (dataset, method, seed) groups search, derive, retrain and transfer. Processes (and
  SLURM jobs on other nodes) agree on it through the store alone: see `_parent_run_id`.
- A new SQLite store is created under a file lock, because several processes creating the same schema at
  once crash (Snakemake starts many stages together).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.atomic import atomic_write_text
from pipeline.errors import PipelineError, Preempted
from pipeline.provenance import git_commit, params_sha256

log = logging.getLogger(__name__)

SPOOL_NAME = "tracking_spool.jsonl"
SYNCED_NAME = "tracking_spool.synced"
RUN_KEY_TAG = "pipeline.run_key"
PARENT_KEY_TAG = "pipeline.parent_key"
PARENT_RUN_TAG = "pipeline.parent_run_id"  # on a parent claim: the run id that won the key

# Short network limits: a job on a compute node must not wait minutes for a tracking server
# (MLflow's defaults are 7 retries with exponential backoff and a 120 s timeout). setdefault, so a user
# can still raise them in the environment.
_MLFLOW_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    # Compute nodes rarely reach the internet; a telemetry thread would only add latency there.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
_PARAMS_PER_BATCH = 100  # MLflow's limit for params (and tags) in one log_batch call
_METRICS_PER_BATCH = 1000  # MLflow's limit for metrics in one log_batch call
_FLUSH_EVERY_METRICS = 500
_FLUSH_EVERY_S = 30.0
_MAX_PARAM_CHARS = 6000

_warned_uris: set[str] = set()
_ensured_uris: set[str] = set()


def tracking_uri(params_uri: str) -> str:
    """The tracking URI a stage uses: `MLFLOW_TRACKING_URI` wins, then params.yaml, then `<cwd>/mlflow.db`.

    Relative SQLite paths are made absolute against the working directory (Snakemake, DVC and SLURM jobs
    all run stages from the repository root), so every process of a workflow writes the same file.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params_uri
    if not uri:
        return f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return f"{prefix}{(Path.cwd() / uri[len(prefix):]).resolve()}"
    return uri


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def _import_mlflow() -> Any:
    for key, value in _MLFLOW_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    import mlflow

    return mlflow


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise store set-up between processes; a no-op for servers, which serialise themselves."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_store(uri: str) -> None:
    """Create (or upgrade) a SQLite tracking store once, safely when many processes start together.

    Servers (http/https URIs) own their store, so nothing is done for them.
    """
    if uri in _ensured_uris or _sqlite_path(uri) is None:
        return
    _import_mlflow()
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    with _store_lock(uri):
        # Constructing the store creates the schema when the file is new and verifies it otherwise.
        SqlAlchemyStore(uri, _artifact_root(uri))
    _ensured_uris.add(uri)


def _artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live next to the database, wherever the stage ran from."""
    db = _sqlite_path(uri)
    return (db.parent / "mlartifacts").as_uri() if db is not None else None


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """`{"arch": {"lr": 3e-4}}` -> `{"arch.lr": "0.0003"}`: MLflow params are flat strings."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, list | tuple | Mapping) else str(value)
            flat[name] = text[:_MAX_PARAM_CHARS]
    return flat


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- applying records to a tracking store (shared by live runs and by sync) ----------------------------


def _client(uri: str) -> Any:
    mlflow = _import_mlflow()
    ensure_store(uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, uri: str, name: str) -> str:
    """Find or create the experiment; a concurrent creator makes `create_experiment` fail, so re-read."""
    with _store_lock(uri):
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(name, artifact_location=_artifact_root(uri))
        except Exception:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id


def _tag_filter(tag: str, value: str) -> str:
    return f"tags.`{tag}` = '{value}'"


def parent_claim_name(experiment_id: str, parent_key: str) -> str:
    """The name of the (deleted) experiment that records which run is the parent of `parent_key`."""
    return f"pipeline-parent/{experiment_id}/{parent_key}"


def _parent_run_id(client: Any, experiment_id: str, start: Mapping[str, Any]) -> str:
    """Find or create the parent run of (dataset, method, seed): exactly one under any interleaving.

    Why a claim: "search for the parent, create one if none" lets two processes both find none and both
    create (retrain and transfer of a genotype start together), and no rule applied afterwards to the
    runs they see (oldest start time, smallest id) can repair that, because each process may already
    have used its own parent before it sees the other one. MLflow cannot create a run under an id we
    choose, and a file lock only serialises processes of one host (a server's clients are on many
    nodes), so the decision is made by the store itself, with the one write it refuses to repeat:
    creating an experiment whose name exists. Each contender creates its candidate parent, then tries to
    create the claim experiment `parent_claim_name(...)` carrying that candidate's id as a tag, in one
    transaction (SQLite and every SQL store behind a server enforce the unique name). Exactly one
    succeeds; the others read the winner from the claim and delete their own candidate, which has no
    children yet because children are created only after this returns. Later stages only read the
    claim. The claim is then deleted: the UI hides it, but its name stays taken, so the key stays
    decided (until `mlflow gc` purges deleted experiments; see the README). A contender killed, or cut
    off from the server, between creating its candidate and deleting it as a loser leaves that candidate
    behind as an empty run; no stage ever runs under it.
    """
    key = start["parent_key"]
    name = parent_claim_name(experiment_id, key)
    claim = client.get_experiment_by_name(name)
    if claim is not None:
        return claim.tags[PARENT_RUN_TAG]
    tags = {PARENT_KEY_TAG: key, **{k: start["tags"][k] for k in ("dataset", "method", "seed")}}
    mine = client.create_run(experiment_id, tags=tags, run_name=key).info.run_id
    try:
        claim_id = client.create_experiment(name, tags={PARENT_RUN_TAG: mine})
    except Exception:
        claim = client.get_experiment_by_name(name)
        if claim is None:
            raise
        winner = claim.tags[PARENT_RUN_TAG]
        # A retried request may have created our own claim before failing; never delete the winner.
        if winner != mine:
            client.delete_run(mine)
        return winner
    client.delete_experiment(claim_id)
    return mine


def _open_run(client: Any, uri: str, start: Mapping[str, Any]) -> tuple[str, str | None]:
    """Find the run of `start["run_key"]`, or create it (under its parent) and log its params.

    Returns (run id, parent run id). Finding before creating is what makes a replay idempotent.
    """
    from mlflow.entities import Param

    experiment_id = _experiment_id(client, uri, start["experiment"])
    parent = _parent_run_id(client, experiment_id, start) if start.get("parent_key") else None
    found = client.search_runs([experiment_id], _tag_filter(RUN_KEY_TAG, start["run_key"]))
    if found:
        return found[0].info.run_id, parent
    tags = {**start["tags"], RUN_KEY_TAG: start["run_key"]}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    run_id = client.create_run(
        experiment_id, start_time=start["start_time"], tags=tags, run_name=start["stage"]
    ).info.run_id
    params = [Param(k, v) for k, v in start["params"].items()]
    for i in range(0, len(params), _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[i : i + _PARAMS_PER_BATCH])
    return run_id, parent


def _apply(client: Any, run_id: str, parent_id: str | None, record: Mapping[str, Any], base: Path) -> None:
    """Send one spool record (metrics, artifact, text, dict or end) to an open run."""
    from mlflow.entities import Metric

    op = record["op"]
    if op == "metrics":
        metrics = [Metric(key, value, ts, step) for key, value, ts, step in record["metrics"]]
        for i in range(0, len(metrics), _METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + _METRICS_PER_BATCH])
    elif op == "artifact":
        client.log_artifact(run_id, str(base / record["path"]), record.get("artifact_path"))
    elif op == "text":
        client.log_text(run_id, record["text"], record["artifact_file"])
    elif op == "dict":
        client.log_dict(run_id, record["dict"], record["artifact_file"])
    elif op == "end":
        client.set_terminated(run_id, record["status"], record["end_time"])
        if parent_id is not None:
            # The parent only groups stages; it mirrors the latest stage so it never shows "running".
            client.set_terminated(parent_id, record["status"], record["end_time"])
    else:
        raise ValueError(f"unknown tracking spool record {op!r}")


# --- live runs -----------------------------------------------------------------------------------------


class RunLogger:
    """What a stage logs to: metrics (buffered), artifacts, text and dicts.

    Every method is safe to call when tracking is disabled or the server is gone; nothing raises.
    """

    def __init__(self, start: dict[str, Any] | None, spool_dir: Path) -> None:
        self._start = start
        self._spool = spool_dir / SPOOL_NAME
        self._client: Any = None
        self._run_id: str | None = None
        self._parent_id: str | None = None
        self._offline = False
        self._spooled_start = False
        self._metrics: list[list[Any]] = []
        self._last_flush = time.monotonic()

    def _open(self) -> None:
        assert self._start is not None
        try:
            self._client = _client(self._start["uri"])
            self._run_id, self._parent_id = _open_run(self._client, self._start["uri"], self._start)
        except Exception as exc:  # any failure of the side channel must leave the stage running
            self._go_offline(exc)

    def _go_offline(self, exc: BaseException) -> None:
        assert self._start is not None
        uri = self._start["uri"]
        if uri not in _warned_uris:
            _warned_uris.add(uri)
            log.warning(
                "MLflow tracking at %s failed (%s: %s); the run continues and unsent records go to %s "
                "(upload later with `python -m pipeline sync-tracking`)",
                uri, type(exc).__name__, exc, self._spool,
            )
        self._offline = True

    def _write_spool(self, record: Mapping[str, Any]) -> None:
        assert self._start is not None
        if not self._spooled_start:
            self._spooled_start = True
            self._write_spool(self._start)
        line = json.dumps({**record, "run_key": self._start["run_key"]}, sort_keys=True) + "\n"
        try:
            self._spool.parent.mkdir(parents=True, exist_ok=True)
            # One write per record with O_APPEND: records of concurrent writers never interleave.
            with open(self._spool, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError as exc:
            log.warning("cannot write the tracking spool %s (%s); this record is lost", self._spool, exc)

    def _send(self, record: dict[str, Any]) -> None:
        if self._start is None:
            return
        if not self._offline and self._run_id is not None:
            try:
                _apply(self._client, self._run_id, self._parent_id, record, Path.cwd())
                return
            except Exception as exc:
                self._go_offline(exc)
        if record["op"] == "artifact":
            record = {**record, "path": os.path.relpath(Path(record["path"]).resolve(), self._spool.parent)}
        self._write_spool(record)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record `metrics` at `step` (e.g. the epoch); sent in batches because single calls are slow."""
        if self._start is None:
            return
        ts = _now_ms()
        self._metrics.extend([key, float(value), ts, int(step)] for key, value in metrics.items())
        overdue = time.monotonic() - self._last_flush >= _FLUSH_EVERY_S
        if overdue or len(self._metrics) >= _FLUSH_EVERY_METRICS:
            self.flush()

    def flush(self) -> None:
        """Send buffered metrics now (also done every 30 s of logging and when the run ends)."""
        if not self._metrics:
            return
        batch, self._metrics = self._metrics, []
        self._last_flush = time.monotonic()
        self._send({"op": "metrics", "metrics": batch})

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> None:
        """Upload a file (genotype, history, figure) to the run's artifacts."""
        if self._start is None:
            return
        self.flush()
        self._send({"op": "artifact", "path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def log_text(self, text: str, artifact_file: str) -> None:
        """Store `text` as the artifact `artifact_file` (e.g. a rendered genotype)."""
        if self._start is not None:
            self._send({"op": "text", "text": text, "artifact_file": artifact_file})

    def log_dict(self, obj: Mapping[str, Any], artifact_file: str) -> None:
        """Store a JSON-serialisable mapping as the artifact `artifact_file`."""
        if self._start is not None:
            self._send({"op": "dict", "dict": dict(obj), "artifact_file": artifact_file})

    def _close(self, status: str) -> None:
        if self._start is None:
            return
        self.flush()
        self._send({"op": "end", "status": status, "end_time": _now_ms()})


@dataclass(frozen=True)
class RunKey:
    """The grid cell a stage run belongs to; a stage outside the grid (tables) leaves them None."""

    dataset: str | None = None
    method: str | None = None
    seed: int | None = None


class TrackingSettings(Protocol):
    """What a run needs of params.yaml's `tracking` section (`pipeline.config.TrackingConfig`)."""

    enabled: bool
    uri: str
    experiment: str


@contextlib.contextmanager
def stage_run(stage: str, key: RunKey, *, params: Mapping[str, Any], tags: Mapping[str, str],
              tracking: TrackingSettings, out_dir: Path | str, enabled: bool = True) -> Iterator[RunLogger]:
    """Track one stage invocation as an MLflow run; yields the `RunLogger` the stage logs to.

    `params` is the params.yaml slice the stage read (logged flattened and hashed into a tag). The run is a
    child of the (dataset, method, seed) parent when both method and seed are given (prepare and tables
    runs stand alone). `out_dir` is the stage's output directory, where the spool goes if the store
    cannot be reached. `enabled=False` turns tracking off for this run whatever `tracking.enabled` says
    (the non-main processes of a DDP job). The run ends FINISHED, FAILED on an error, or KILLED when
    stopped to be resumed (the exception is re-raised either way).
    """
    spool_dir = Path(out_dir)
    if not (enabled and tracking.enabled):
        yield RunLogger(None, spool_dir)
        return
    dataset, method, seed, experiment = key.dataset, key.method, key.seed, tracking.experiment
    resolved = tracking_uri(tracking.uri)
    run_tags = {
        **{k: str(v) for k, v in tags.items()},
        "stage": stage,
        "dataset": str(dataset),
        "method": str(method),
        "seed": str(seed),
        "git_commit": git_commit(),
        "params_sha256": params_sha256(params),
    }
    start = {
        "op": "start",
        "run_key": uuid.uuid4().hex,
        "uri": resolved,
        "experiment": experiment,
        "stage": stage,
        "start_time": _now_ms(),
        "parent_key": f"{dataset}/{method}/seed{seed}" if method is not None and seed is not None else None,
        "tags": run_tags,
        "params": flatten_params(params),
    }
    logger = RunLogger(start, spool_dir)
    logger._open()
    try:
        yield logger
    except BaseException as exc:
        logger._close(_end_status(exc))
        raise
    logger._close("FINISHED")


def _end_status(exc: BaseException) -> str:
    """KILLED for a stop that a rerun resumes (interrupt, SLURM's warning signal), FAILED otherwise."""
    return "KILLED" if isinstance(exc, Preempted | KeyboardInterrupt | SystemExit) else "FAILED"


# --- replaying spools ----------------------------------------------------------------------------------


def _read_new_records(spool: Path) -> tuple[list[dict[str, Any]], int]:
    """Complete records after the synced offset, and the offset just past them."""
    synced = spool.with_name(SYNCED_NAME)
    offset = int(synced.read_text().strip() or 0) if synced.exists() else 0
    with open(spool, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1  # a record still being appended has no newline yet: leave it for later
    records = []
    for number, line in enumerate(data[:end].decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)  # JSON only builds dicts, lists, strings and numbers: nothing runs
        except json.JSONDecodeError as exc:
            raise PipelineError(f"{spool}: line {number} after the synced offset is not a JSON record "
                                f"({exc.msg}); the spool was edited or damaged") from exc
        if not isinstance(record, dict) or not {"op", "run_key"} <= record.keys():
            raise PipelineError(f"{spool}: line {number} after the synced offset is not a spool record "
                                f"(expected an object with 'op' and 'run_key')")
        records.append(record)
    return records, offset + end


def sync_spool(spool: Path, uri_override: str | None = None,
               on_run: Callable[[str, int], None] | None = None) -> int:
    """Upload the unsynced records of one spool file; returns how many records were sent.

    The destination is `uri_override`, else `MLFLOW_TRACKING_URI`, else the URI the stage meant to use.
    The offset is advanced only after every run of the file was replayed, so a failure part-way leaves
    the spool to be replayed again; that is harmless because replaying is idempotent.
    """
    records, new_offset = _read_new_records(spool)
    runs: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        runs.setdefault(record["run_key"], []).append(record)
    sent = 0
    for run_key, run_records in runs.items():
        start = next((r for r in run_records if r["op"] == "start"), None)
        if start is None:
            start = _find_start(spool, run_key)
        uri = uri_override or os.environ.get("MLFLOW_TRACKING_URI") or start["uri"]
        try:
            client = _client(uri)
            run_id, parent_id = _open_run(client, uri, start)
            for record in run_records:
                if record["op"] != "start":
                    _apply(client, run_id, parent_id, record, spool.parent)
        except Exception as exc:
            raise PipelineError(f"cannot upload {spool} to {uri}: {type(exc).__name__}: {exc}") from exc
        sent += len(run_records)
        if on_run is not None:
            on_run(run_id, len(run_records))
    if records:
        atomic_write_text(spool.with_name(SYNCED_NAME), f"{new_offset}\n")
    return sent


def _find_start(spool: Path, run_key: str) -> dict[str, Any]:
    """The start record of a run whose start was synced earlier (it is always spooled first)."""
    with open(spool, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["run_key"] == run_key and record["op"] == "start":
                return record
    raise PipelineError(f"{spool}: no start record for run {run_key}; the spool was edited or truncated")
