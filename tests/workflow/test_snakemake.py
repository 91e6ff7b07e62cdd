"""The Snakemake workflow: lint, a real local run on the tiny grid, and params edits that rerun exactly
the stages that read the edited key."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from snakemake_plan import plan
from workflow_support import (
    BIN,
    REPO,
    TINY_METHODS,
    TINY_NB201,
    TINY_RNN_METHOD,
    assert_each_variant_searched_its_space,
    assert_nb201_cell_ran,
    copy_repo,
    expected_tables,
    run,
    tiny_rnn_edit,
    write_params,
)

pytestmark = pytest.mark.slow

SNAKEMAKE = str(BIN / "snakemake")


def test_lint_passes_and_slurm_profile_resolves_from_repo_root(tmp_path: Path) -> None:
    root = copy_repo(tmp_path)
    lint = run([SNAKEMAKE, "--lint"], cwd=root, timeout=120)
    assert "Congratulations" in lint.stdout + lint.stderr
    # `--profile slurm` as typed from the root must find slurm/config.yaml (a dry run needs no cluster).
    dry = run([SNAKEMAKE, "--profile", "slurm", "-n", "all_tables"], cwd=root, timeout=120)
    assert "Using profiles slurm and workflow specific profile profiles/default" in dry.stderr


def test_conda_env_lists_the_package_dependencies_and_installs_the_package() -> None:
    env = yaml.safe_load((REPO / "envs/pipeline.yaml").read_text())
    assert "conda-forge" in env["channels"]
    conda_deps = [d for d in env["dependencies"] if isinstance(d, str)]
    assert any(d.startswith("python=3.11") for d in conda_deps)
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip_names = {_requirement_name(req) for req in pip}
    project = _pyproject_dependencies()
    assert project <= pip_names, f"missing from envs/pipeline.yaml: {sorted(project - pip_names)}"
    post_deploy = (REPO / "envs/pipeline.post-deploy.sh").read_text()
    assert "pip install --no-deps --editable ." in post_deploy


def _requirement_name(requirement: str) -> str:
    for sep in ("[", ">", "<", "=", "!", "~", ";", " "):
        requirement = requirement.split(sep, 1)[0]
    return requirement.strip().lower()


def _pyproject_dependencies() -> set[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {_requirement_name(req) for req in project["dependencies"]}


@pytest.fixture(scope="module")
def finished_run(tiny_repo: Path) -> Path:
    """The tiny grid run for real with 2 cores, MLflow tracking into a brand-new SQLite store."""
    write_params(tiny_repo, {"tracking": {"enabled": True}}, TINY_NB201, tiny_rnn_edit())
    run([SNAKEMAKE, "--cores", "2", "all_tables"], cwd=tiny_repo, timeout=900)
    return tiny_repo


def test_the_nb201_sub_grid_is_searched_on_its_data_retrained_and_tabled(finished_run: Path) -> None:
    assert_nb201_cell_ran(finished_run)


def test_local_run_writes_every_table_and_a_second_run_does_nothing(finished_run: Path) -> None:
    params = yaml.safe_load((finished_run / "params.yaml").read_text())
    for table in expected_tables(params):
        path = finished_run / table
        assert path.is_file() and path.stat().st_size > 0, f"{table} missing or empty"
    again = run([SNAKEMAKE, "--cores", "2", "all_tables"], cwd=finished_run, timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_a_two_space_grid_runs_each_variant_on_its_space(finished_run: Path) -> None:
    assert_each_variant_searched_its_space(finished_run)


def test_direct_imagenet_search_is_transferred_and_reported_not_retrained(finished_run: Path) -> None:
    cell = "imagenet/ddsas_imagenet/seed0"
    summary = json.loads((finished_run / f"results/search/{cell}/summary.json").read_text())
    assert summary["provenance"]["dataset"] == "imagenet"
    metrics = json.loads((finished_run / f"results/transfer/imagenet/{cell}/metrics.json").read_text())
    assert metrics["searched_on"] == "imagenet" and metrics["dataset"] == "imagenet_demo"
    assert not (finished_run / "results/retrain/imagenet").exists()
    rows = list(csv.DictReader((finished_run / "results/tables/imagenet.csv").open()))
    ours = [row for row in rows if row["searched_on"] == "imagenet" and row["source"] == "ours"]
    assert [(row["method"], row["status"]) for row in ours] == [("ddsas_imagenet", "ok")]
    assert float(ours[0]["top1_mean"]) == pytest.approx(metrics["top1_error"])


def test_the_recurrent_sub_grid_runs_prepare_to_transfer_and_reaches_its_tables(finished_run: Path) -> None:
    cell = f"text_demo/{TINY_RNN_METHOD}/seed0"
    summary = json.loads((finished_run / f"results/search/{cell}/summary.json").read_text())
    assert summary["provenance"]["dataset"] == "text_demo" and "final_valid_ppl" in summary
    retrained = json.loads((finished_run / f"results/retrain/{cell}/metrics.json").read_text())
    moved = json.loads((finished_run / f"results/transfer/text_demo2/{cell}/metrics.json").read_text())
    assert (retrained["dataset"], moved["dataset"], moved["searched_on"]) == ("text_demo", "text_demo2", "text_demo")
    for name, metrics in (("lm_text_demo", retrained), ("lm_text_demo2_from_text_demo", moved)):
        rows = list(csv.DictReader((finished_run / f"results/tables/{name}.csv").open()))
        ours = [row for row in rows if row["source"] == "ours"]
        assert [(row["method"], row["status"]) for row in ours] == [(TINY_RNN_METHOD, "ok")]
        assert float(ours[0]["test_ppl_mean"]) == pytest.approx(metrics["test_ppl"])
    assert (finished_run / "results/figures/lm_text_demo.png").is_file()


def test_rnn_selection_adds_a_select_job_per_recurrent_cell_and_reruns_only_the_tables(finished_run: Path) -> None:
    # grid.rnn.select (DARTS' protocol): every recurrent cell also gets its short training on its own corpus.
    jobs = _edit_and_plan(finished_run, {"grid": {"rnn": {"select": True}}})
    assert _jobs_by_rule(jobs) == {"select": {TINY_RNN_METHOD}, "tables": {""}}
    select = next(job for job in jobs if job.rule == "select")
    assert select.wildcards == {"dataset": "text_demo", "method": TINY_RNN_METHOD, "seed": "0"}
    assert "results/data/text_demo/manifest.json" in select.inputs
    assert f"results/genotypes/text_demo/{TINY_RNN_METHOD}/seed0.json" in select.inputs


def test_image_selection_adds_a_select_job_per_searched_cell_and_reruns_only_the_tables(finished_run: Path) -> None:
    # grid.select (the S1-S4 tables' protocol): every cell of the main grid also gets its short retrain; the
    # select rule is a checkpoint, so this is the plan Snakemake makes before any select job has run.
    jobs = _edit_and_plan(finished_run, {"grid": {"select": True}})
    assert _jobs_by_rule(jobs) == {"select": set(TINY_METHODS), "tables": {""}}
    for job in jobs:
        if job.rule == "select":
            assert job.wildcards == {"dataset": "digits", "method": job.wildcards["method"], "seed": "0"}
            assert f"results/genotypes/digits/{job.wildcards['method']}/seed0.json" in job.inputs


def test_report_holds_the_tables_and_figures(finished_run: Path) -> None:
    run([SNAKEMAKE, "--report", "report.html", "all_tables"], cwd=finished_run, timeout=300)
    report = finished_run / "report.html"
    text = report.read_text(errors="ignore")
    figures = sorted(p.name for p in (finished_run / "results/figures").glob("*.png"))
    assert figures and all((finished_run / "results/figures" / name).stat().st_size > 0 for name in figures)
    assert all(name in text for name in figures), "a figure is missing from the report"
    assert "digits.csv" in text


def test_parallel_stages_tracked_into_one_new_sqlite_store(finished_run: Path) -> None:
    # Several stages started together on a store that did not exist: each run must be there, each
    # search/derive/retrain/transfer run under the one parent of its (dataset, method, seed).
    with sqlite3.connect(finished_run / "mlflow.db") as db:
        stages = db.execute(
            "SELECT t.value, COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'stage' AND r.lifecycle_stage = 'active' GROUP BY t.value"
        ).fetchall()
        parents = db.execute(
            "SELECT COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
            "WHERE t.key = 'pipeline.parent_key' AND r.lifecycle_stage = 'active'"
        ).fetchone()[0]
    counts = dict(stages)
    # Two digits cells (searched, retrained, transferred), one direct ImageNet search (not retrained), one
    # NAS-Bench-201 cell (searched and retrained, not transferred) and one recurrent cell (searched, retrained
    # on its corpus, transferred to the second).
    assert {stage: counts.get(stage) for stage in ("search", "derive", "retrain", "transfer")} == {
        "search": 5, "derive": 5, "retrain": 4, "transfer": 4}, counts
    assert parents == 5


def _jobs_by_rule(jobs: list) -> dict[str, set[str]]:
    """Stage jobs (target rules like all_tables run nothing) grouped by rule: the methods they run for."""
    out: dict[str, set[str]] = {}
    for job in jobs:
        if job.shell is not None:
            out.setdefault(job.rule, set()).add(job.wildcards.get("method", ""))
    return out


def _edit_and_plan(root: Path, edit: dict) -> list:
    original = (root / "params.yaml").read_text()
    try:
        write_params(root, edit)
        return plan(root, "all_tables")
    finally:
        (root / "params.yaml").write_text(original)


def test_retrain_edit_reruns_only_retrain_and_tables(finished_run: Path) -> None:
    # Transfer trains from the genotype, not from the retrained network, so it is not downstream.
    jobs = _edit_and_plan(finished_run, {"retrain": {"lr": 0.05}})
    assert _jobs_by_rule(jobs) == {"retrain": {"darts_1st", "darts_2nd"}, "tables": {""}}
    for job in jobs:
        if job.rule == "retrain":
            assert job.reason.startswith("Params have changed since last execution"), job.reason


def test_one_methods_transfer_override_reruns_only_its_transfer_and_tables(finished_run: Path) -> None:
    jobs = _edit_and_plan(finished_run, {"transfer": {"method_overrides": {"darts_2nd": {"lr": 0.05}}}})
    assert _jobs_by_rule(jobs) == {"transfer": {"darts_2nd"}, "tables": {""}}


def test_one_methods_search_edit_reruns_only_that_methods_chain(finished_run: Path) -> None:
    edit = {"search": {"methods": {"darts_2nd": {"overrides": {"batch_size": 4}}}}}
    jobs = _edit_and_plan(finished_run, edit)
    assert _jobs_by_rule(jobs) == {
        "search": {"darts_2nd"}, "derive": {"darts_2nd"}, "retrain": {"darts_2nd"},
        "transfer": {"darts_2nd"}, "tables": {""},
    }
    search = next(job for job in jobs if job.rule == "search")
    assert search.reason.startswith("Params have changed since last execution"), search.reason


def test_shared_search_edit_reruns_every_search_and_downstream(finished_run: Path) -> None:
    jobs = _edit_and_plan(finished_run, {"search": {"arch": {"lr": 6.0e-4}}})
    # Snakemake's search slice holds every shared search key, so the NB201 and recurrent searches rerun too.
    images = {"darts_1st", "darts_2nd", "ddsas_imagenet"}
    everywhere = images | {"gdas_nb201", TINY_RNN_METHOD}
    assert _jobs_by_rule(jobs) == {
        "search": everywhere, "derive": everywhere,
        "retrain": {"darts_1st", "darts_2nd", "gdas_nb201", TINY_RNN_METHOD},
        "transfer": images, "transfer_text": {TINY_RNN_METHOD}, "tables": {""},
    }


def test_language_model_transfer_edit_reruns_only_the_text_transfer_and_tables(finished_run: Path) -> None:
    jobs = _edit_and_plan(finished_run, {"language_model": {"transfer": {"lr": 10.0}}})
    assert _jobs_by_rule(jobs) == {"transfer_text": {TINY_RNN_METHOD}, "tables": {""}}


def test_tracking_or_resources_edit_reruns_nothing(finished_run: Path) -> None:
    # Where results are logged and how much memory a job asks for do not change any result.
    jobs = _edit_and_plan(finished_run, {"tracking": {"experiment": "elsewhere"},
                                         "resources": {"search": {"mem_mb": 1500}}})
    assert _jobs_by_rule(jobs) == {}


def test_configuring_or_replacing_the_nb201_benchmark_reruns_only_the_tables(finished_run: Path) -> None:
    # The plan only: the archive is an input of the tables rule (the tables stage would open it).
    archive = finished_run / "bench.pth"
    archive.write_bytes(b"first")
    try:
        jobs = _edit_and_plan(finished_run, {"benchmark": {"nb201": "bench.pth"}})
        assert _jobs_by_rule(jobs) == {"tables": {""}}
        assert any("bench.pth" in str(path) for job in jobs for path in job.inputs)
    finally:
        archive.unlink()
