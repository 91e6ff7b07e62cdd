"""The DVC pipeline: it agrees with the Snakemake workflow, reruns only what an edit affects, and its
remote restores every cached output bit for bit."""

from __future__ import annotations

import ast
import json
import shlex
import shutil
from pathlib import Path

import pytest
from snakemake_plan import plan
from workflow_support import (
    BIN,
    REPO,
    TINY_NB201,
    TINY_RNN_METHOD,
    assert_each_variant_searched_its_space,
    assert_nb201_cell_ran,
    copy_repo,
    run,
    sha256,
    tiny_rnn_edit,
    tool_env,
    write_params,
    write_tiny_params,
)

pytestmark = pytest.mark.slow

DVC = str(BIN / "dvc")
# Plumbing every stage shares that cannot change a result (CLI and argument helpers, validation, importing
# the params file's plugins, the results layout and params slices, error types, atomic writes, provenance
# records, tracking); as a dep it would rerun everything on any edit.
PLUMBING = {"pipeline/__init__.py", "pipeline/__main__.py", "pipeline/cli.py", "pipeline/stages/common.py",
            "pipeline/config.py", "pipeline/layout.py", "pipeline/plugins.py", "pipeline/errors.py",
            "pipeline/atomic.py", "pipeline/provenance.py", "pipeline/tracking.py"}
# Package data a stage reads without importing it.
DATA = {"pipeline/reference"}


def _dvc_stages(root: Path) -> list:
    from dvc.repo import Repo

    return list(Repo(str(root)).index.stages)


@pytest.fixture(scope="module")
def shipped_stages() -> list:
    """The checkout's dvc.yaml stages, read once for the tests that only inspect them (a read takes seconds)."""
    return _dvc_stages(REPO)


def _normalise(cmd: str) -> str:
    return shlex.join(shlex.split(cmd))


def _covered(path: str, outs: list[str]) -> bool:
    return any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs)


def _git(root: Path, *args: str) -> None:
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", *args], cwd=root, timeout=60)


def _git_copy(root: Path, tiny: bool) -> Path:
    """A copy of the checkout (with the tiny grid and its NAS-Bench-201 cell, or params.yaml as shipped) as
    a fresh git repository with one commit: DVC needs git."""
    copy_repo(root)
    if tiny:
        write_tiny_params(root, TINY_NB201)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "copy")
    return root


def test_snakemake_and_dvc_run_the_same_commands_with_the_same_outputs_and_edges(tmp_path: Path) -> None:
    root = _git_copy(tmp_path, tiny=False)
    jobs = [job for job in plan(root, "all") if job.command() is not None]
    from dvc.repo import Repo

    index = Repo(str(root)).index  # read once: stages and graph
    stages = list(index.stages)

    smk = {_normalise(job.command()): job for job in jobs}
    dvc = {_normalise(stage.cmd): stage for stage in stages}
    assert set(smk) == set(dvc), (
        f"only Snakemake: {sorted(set(smk) - set(dvc))}\nonly DVC: {sorted(set(dvc) - set(smk))}"
    )

    for cmd, job in smk.items():
        stage = dvc[cmd]
        outs = [out.def_path for out in stage.outs]
        reported = [out.def_path for out in stage.outs if out.metric or out.plot]
        for path in job.outputs:
            assert _covered(path, outs), f"{path} (Snakemake) is no DVC output of {stage.name}"
        for path in reported:
            assert path in job.outputs, f"{path} (DVC metric/plot) is no Snakemake output of {job.rule}"

    producer = {path: _normalise(job.command()) for job in jobs for path in job.outputs}
    smk_edges = {(producer[path], cmd) for cmd, job in smk.items() for path in job.inputs if path in producer}
    graph = index.graph  # edges point from a stage to the stage it depends on
    dvc_edges = {(_normalise(dep.cmd), _normalise(stage.cmd)) for stage, dep in graph.edges}
    assert smk_edges == dvc_edges


def _imported_files(module_file: Path) -> set[str]:
    """Every pipeline source file `module_file` imports, transitively, including imports inside functions
    (stages import their heavy modules lazily)."""
    seen: set[str] = set()
    todo = [module_file]
    while todo:
        path = todo.pop()
        rel = path.relative_to(REPO).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                if name == "pipeline" or name.startswith("pipeline."):
                    todo.extend(_module_files(name))
    return seen


def _module_files(name: str) -> list[Path]:
    base = REPO / Path(*name.split("."))
    candidates = [base.with_suffix(".py"), base / "__init__.py"]
    return [path for path in candidates if path.is_file()]


@pytest.mark.parametrize("kind", ["prepare", "search", "derive", "retrain", "transfer", "tables"])
def test_dvc_deps_cover_the_code_each_stage_runs(kind: str, shipped_stages: list) -> None:
    # Every stage running the command (search, search_imagenet, search_nb201, search_rnn, ...): the sub-grids'
    # stages restate their deps, so each list is checked.
    code = _imported_files(REPO / f"pipeline/stages/{kind}.py") - PLUMBING
    stages = {stage.name.split("@")[0]: stage for stage in shipped_stages
              if f"python -m pipeline {kind} " in stage.cmd}
    assert stages, f"no dvc.yaml stage runs `python -m pipeline {kind}`"
    for name, stage in stages.items():
        deps = [dep.def_path for dep in stage.deps]
        missing = sorted(path for path in code if not _covered(path, deps))
        assert not missing, f"dvc.yaml {name} deps miss code it runs: {missing}"
        stale = [dep for dep in deps if dep.startswith("pipeline/") and dep not in DATA
                 and not any(_covered(path, [dep]) for path in code)]
        assert not stale, f"dvc.yaml {name} deps on code it does not run: {stale}"


def test_dvc_search_params_cover_every_shared_search_key(shipped_stages: list) -> None:
    from pipeline.config import SearchConfig

    stage = next(s for s in shipped_stages if s.name.startswith("search@"))
    keys = {key for dep in stage.deps if hasattr(dep, "params") for key in dep.params}
    shared = {f"search.{name}" for name in SearchConfig.model_fields if name != "methods"}
    assert shared <= keys, f"dvc.yaml search misses {sorted(shared - keys)}"


def _cached_files(root: Path) -> dict[str, str]:
    """sha256 of every file under every cached (non-metric, non-plot) DVC output."""
    hashes: dict[str, str] = {}
    for stage in _dvc_stages(root):
        for out in stage.outs:
            if not out.use_cache:
                continue
            path = root / out.def_path
            files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
            hashes.update({p.relative_to(root).as_posix(): sha256(p) for p in files})
    return hashes


def _status(root: Path) -> dict:
    return json.loads(run([DVC, "status", "--json"], cwd=root, timeout=120).stdout or "{}")


def test_repro_push_pull_and_param_edits(tmp_path: Path) -> None:
    root = _git_copy(tmp_path / "repo", tiny=True)
    run([DVC, "remote", "modify", "local", "url", str(tmp_path / "remote")], cwd=root, timeout=60)
    write_params(root, tiny_rnn_edit())

    run([DVC, "repro"], cwd=root, timeout=900, env=tool_env())
    assert _status(root) == {}
    assert_each_variant_searched_its_space(root)
    rnn_cell = f"text_demo/{TINY_RNN_METHOD}/seed0"
    moved = json.loads((root / f"results/transfer/text_demo2/{rnn_cell}/metrics.json").read_text())
    assert (moved["dataset"], moved["searched_on"]) == ("text_demo2", "text_demo")
    assert (root / "results/tables/lm_text_demo2_from_text_demo.md").is_file()
    assert_nb201_cell_ran(root)

    before = _cached_files(root)
    assert any(path.endswith("checkpoint.pt") for path in before)
    run([DVC, "push"], cwd=root, timeout=300)
    shutil.rmtree(root / ".dvc/cache")
    for rel in before:
        (root / rel).unlink()
    run([DVC, "pull"], cwd=root, timeout=300)
    assert _cached_files(root) == before
    assert _status(root) == {}

    original = (root / "params.yaml").read_text()
    write_params(root, {"retrain": {"lr": 0.05}})
    # retrain_nb201 reads the whole retrain section too (its lr comes from retrain.space_overrides.nb201).
    assert set(_status(root)) == {"retrain@digits-darts_1st-0", "retrain@digits-darts_2nd-0",
                                  "retrain_nb201@digits-gdas_nb201-0"}

    # The recurrent sub-grid's transfer reads language_model.transfer, nothing else does.
    (root / "params.yaml").write_text(original)
    write_params(root, {"language_model": {"transfer": {"lr": 10.0}}})
    assert set(_status(root)) == {f"transfer_rnn@text_demo2-text_demo-{TINY_RNN_METHOD}-0"}

    (root / "params.yaml").write_text(original)
    write_params(root, {"search": {"methods": {"darts_2nd": {"overrides": {"batch_size": 4}}}}})
    # The tables read every method's options (their columns), so they see the edit too.
    assert set(_status(root)) == {"search@digits-darts_2nd-0", "tables"}

    # Worker processes change the training stages' augmentation streams, not prepare's splits.
    (root / "params.yaml").write_text(original)
    write_params(root, {"data": {"num_workers": 1}})
    changed = set(_status(root))
    assert any(name.startswith("search@") for name in changed)
    assert not any(name.startswith("prepare") for name in changed), changed

    # The README's experiment commands on the same repository: metrics, one experiment, its diff, plots.
    (root / "params.yaml").write_text(original)
    metric = "results/retrain/digits/darts_1st/seed0/metrics.json"
    shown = json.loads(run([DVC, "metrics", "show", "--json"], cwd=root, timeout=120).stdout)
    assert shown[""]["data"][metric]["data"]["test_error"] == json.loads((root / metric).read_text())["test_error"]
    run([DVC, "exp", "run", "-S", "retrain.lr=0.05"], cwd=root, timeout=600, env=tool_env())
    error = json.loads((root / metric).read_text())["test_error"]  # the experiment's, applied to the workspace
    table = json.loads(run([DVC, "exp", "show", "--json"], cwd=root, timeout=120).stdout)
    experiment = next(entry for entry in table if entry.get("experiments"))["experiments"][0]["revs"][0]["data"]
    assert experiment["params"]["params.yaml"]["data"]["retrain"]["lr"] == 0.05
    assert experiment["metrics"][metric]["data"]["test_error"] == error
    assert set(_status(root)) == set(), "the experiment left stages out of date"
    diff = json.loads(run([DVC, "metrics", "diff", "--json"], cwd=root, timeout=120).stdout)
    assert diff[metric]["test_error"] == {"old": None, "new": error}  # HEAD has no metrics committed
    run([DVC, "plots", "show"], cwd=root, timeout=300)
    assert (root / "dvc_plots" / "index.html").is_file()
