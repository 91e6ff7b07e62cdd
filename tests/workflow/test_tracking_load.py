"""Tracking under load: many stage processes logging to one store at the same moment.

Each test starts N stand-in stage processes (tracking_load_stage.py: real `pipeline.tracking`, real
MLflow, no training), two per parent key, released together after they have all imported MLflow, with
the creation of parent runs slowed down so that the two processes of a key both find no parent and the
older one commits last: the interleaving in which "create if none, then keep the oldest" gave a key two
parents. What each process logged is known in advance (tracking_load_stage.expected_metric), so the
store is checked against that, not against anything the pipeline wrote: every run and every metric
value exactly once, one active parent per key, no run under a deleted parent, and no "database is
locked" or spool fallback while the store is up. The figures are printed after pytest's summary.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import tracking_load_stage as stage
from workflow_support import BIN, mlflow_server, run, tool_env

from pipeline import tracking

pytestmark = pytest.mark.slow

N = 16  # processes per test, two per parent key
FIGURES: list[str] = []  # printed by conftest.py's terminal summary
LOCKED = "database is locked"
FALLBACK = "MLflow tracking at"  # the first words of the one warning a stage gives when it starts spooling


def _key(index: int) -> str:
    return f"digits/m{index // 2}/0"


def _parent_key(index: int) -> str:
    dataset, method, seed = _key(index).split("/")
    return f"{dataset}/{method}/seed{seed}"


@dataclass
class Load:
    """The processes of one test and where their sequencing files, outputs and logs are."""

    root: Path
    procs: dict[int, subprocess.Popen[bytes]]

    @property
    def sync(self) -> Path:
        return self.root / "sync"

    def out(self, index: int) -> Path:
        return self.root / "out" / str(index)

    def log(self, index: int) -> str:
        return (self.root / "logs" / f"{index}.log").read_text()

    def start(self, uri: str, indices: Iterable[int], *, pause: bool = False) -> None:
        """Start the stage processes `indices` and wait until each is ready to race (MLflow imported).

        The two processes of a key race for its parent when they are started together (index 2k is the
        slow one, 2k+1 the fast one); a process whose partner is not among `indices` does not wait for it.
        """
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.sync.mkdir(exist_ok=True)
        indices = list(indices)
        for index in indices:
            race = ["--race-role", "slow" if index % 2 == 0 else "fast"] if (index ^ 1) in indices else []
            cmd = [str(BIN / "python"), str(Path(stage.__file__)), "--uri", uri, "--index", str(index),
                   "--key", _key(index), "--out", str(self.out(index)), "--sync", str(self.sync),
                   *race, *(["--pause"] if pause else [])]
            with open(self.root / "logs" / f"{index}.log", "wb") as log:
                self.procs[index] = subprocess.Popen(
                    ["timeout", "-k", "30", "600", *cmd], env=tool_env(), stdin=subprocess.DEVNULL,
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_for("ready", indices)

    def wait_for(self, name: str, indices: Iterable[int], timeout_s: float = 300) -> None:
        """Wait until every process of `indices` wrote `<name>-<index>`; fail at once if one died."""
        deadline = time.monotonic() + timeout_s
        for index in indices:
            while not (self.sync / f"{name}-{index}").exists():
                code = self.procs[index].poll()
                assert code is None, f"process {index} exited {code} before {name}:\n{self.log(index)}"
                assert time.monotonic() < deadline, f"process {index} never reached {name}"
                time.sleep(0.1)

    def release(self, name: str) -> None:
        (self.sync / name).touch()

    def finish(self) -> None:
        """Wait for every process; each must exit 0."""
        for index, proc in sorted(self.procs.items()):
            assert proc.wait(timeout=600) == 0, f"process {index} exited {proc.returncode}:\n{self.log(index)}"


@pytest.fixture
def load(tmp_path: Path) -> Load:
    return Load(tmp_path, {})


def _check_store(uri: str, label: str) -> None:
    """Every run and metric value once, one active parent per key, children only under active parents."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("load")
    assert experiment is not None, f"no experiment 'load' in {uri}"
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'load'", run_view_type=ViewType.ALL)
    by_index = Counter(int(r.data.tags["load.index"]) for r in runs)
    parents = client.search_runs([experiment.experiment_id], f"tags.`{tracking.PARENT_KEY_TAG}` LIKE '%'",
                                 run_view_type=ViewType.ACTIVE_ONLY)
    parents_per_key = Counter(p.data.tags[tracking.PARENT_KEY_TAG] for p in parents)
    lost = sum(max(0, 2 * stage.STEPS - 2 * stage.STEPS * by_index[i]) for i in range(N))
    for r in runs:
        index = int(r.data.tags["load.index"])
        history = client.get_metric_history(r.info.run_id, "value")
        got = sorted((m.step, m.value) for m in history)
        want = [(step, stage.expected_metric(index, step)) for step in range(2 * stage.STEPS)]
        lost += len(set(want) - set(got))
        assert got == want, f"run of process {index}: metric history {got}, expected {want}"
        assert r.info.lifecycle_stage == "active" and r.info.status == "FINISHED", r.info
        parent = client.get_run(r.data.tags["mlflow.parentRunId"])
        assert parent.info.lifecycle_stage == "active", f"process {index} logged under a deleted parent"
        assert parent.data.tags[tracking.PARENT_KEY_TAG] == _parent_key(index)
    counts = sorted(set(parents_per_key.values()))
    FIGURES.append(f"tracking load ({label}): processes: {N}, runs recorded: {len(runs)}, "
                   f"parents per key: {'/'.join(map(str, counts))}, lost: {lost}")
    assert by_index == Counter(range(N)), f"runs per process: {dict(by_index)}"
    assert parents_per_key == Counter({_parent_key(i): 1 for i in range(0, N, 2)}), parents_per_key
    assert lost == 0


def _assert_clean(load: Load, indices: Iterable[int]) -> None:
    """No process saw the store locked or fell back to its spool."""
    for index in indices:
        log = load.log(index)
        assert LOCKED not in log and FALLBACK not in log, f"process {index}:\n{log}"
        assert not (load.out(index) / tracking.SPOOL_NAME).exists(), f"process {index} spooled"


def test_many_stages_at_once_on_one_sqlite_store(load: Load) -> None:
    uri = f"sqlite:///{load.root / 'mlflow.db'}"
    load.start(uri, range(N))
    load.release("go")
    load.finish()
    _assert_clean(load, range(N))
    _check_store(uri, "sqlite")


def test_many_stages_at_once_on_a_real_server(load: Load, tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("server")
    with mlflow_server(home) as uri:
        load.start(uri, range(N))
        load.release("go")
        load.finish()
        _assert_clean(load, range(N))
        _check_store(uri, "server")
    assert LOCKED not in (home / "server.log").read_text()


def test_server_stopped_halfway_spools_and_sync_uploads_exactly_once(
        load: Load, tmp_path_factory: pytest.TempPathFactory) -> None:
    # Keys 0-3 are tracked online until the stop; key 4 has one process before the stop and one after;
    # keys 5-7 only reach the store through sync, so their parents are created there.
    online, offline = range(N // 2 + 1), range(N // 2 + 1, N)
    home = tmp_path_factory.mktemp("server")
    with mlflow_server(home) as uri:
        load.start(uri, online, pause=True)
        load.release("go")
        load.wait_for("half", online)
    load.start(uri, offline)
    load.release("resume")
    load.finish()
    for index in range(N):
        assert load.log(index).count(FALLBACK) == 1, f"process {index}:\n{load.log(index)}"
        assert (load.out(index) / tracking.SPOOL_NAME).is_file()

    with mlflow_server(home) as uri:
        env = tool_env(MLFLOW_TRACKING_URI=uri)
        sync = [str(BIN / "python"), "-m", "pipeline", "sync-tracking", "--results", str(load.root / "out")]
        first = run(sync, cwd=load.root, timeout=600, env=env)
        assert f"from {N} spool files" in first.stdout and "uploaded 0 records" not in first.stdout
        second = run(sync, cwd=load.root, timeout=600, env=env)
        assert "uploaded 0 records" in second.stdout, second.stdout
        _check_store(uri, "server stopped halfway, then sync-tracking")
    assert LOCKED not in (home / "server.log").read_text()
