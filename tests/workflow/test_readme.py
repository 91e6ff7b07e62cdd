"""The executable README: every command it shows is run here, as typed where that is cheap, in a dry-run
or concrete form where it would train, needs a cluster, a GPU or the real datasets, or is listed with the
reason it cannot run here (and, where one exists, the test that runs it for real).

CHECKS is the one list of how each command is checked. A command the README gains that CHECKS does not
name fails test_every_readme_command_is_checked, and so does a CHECKS entry the README no longer shows:
whoever adds a command to the README adds it here too. Commands run with bash in a fresh-clone copy of
the repository (tracked files, committed results and dvc.lock included, one git commit), never in the
checkout.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from readme_commands import readme_commands
from workflow_support import REPO, copy_repo, run, tool_env

from pipeline.cli import build_parser


@dataclass(frozen=True)
class Run:
    """Run exactly as typed; it must exit 0."""

    timeout: int = 300


@dataclass(frozen=True)
class DryRun:
    """Run as typed with `flag` appended, which makes the tool plan without executing (snakemake -n,
    make -n); `grid` names the params file whose grid a Snakemake plan must hold."""

    flag: str
    grid: str | None = None
    timeout: int = 300


@dataclass(frozen=True)
class Instance:
    """A synopsis (placeholders such as D, M, S, G, [optional flags]) or a command too costly as typed is
    checked through concrete `forms` that use every flag it shows. `parse_only` forms of
    `python -m pipeline` are only parsed by the real argument parser: they would train a network."""

    forms: tuple[str, ...]
    why: str
    parse_only: bool = False
    grid: str | None = None
    timeout: int = 300


@dataclass(frozen=True)
class FailsAsDocumented:
    """The README shows it as the mistake to avoid: with `flag` appended it must fail saying `message`."""

    message: str
    flag: str = "-n"


@dataclass(frozen=True)
class NotRun:
    """Cannot run here; `covered_by` names the test (file::function) that runs it for real, if any."""

    reason: str
    covered_by: str | None = None


Check = Run | DryRun | Instance | FailsAsDocumented | NotRun

# The concrete values the synopses' placeholders take (D, M, S, G in the README's stage table).
_RUN = "digits/darts_1st/seed0"
_VENV = "VENV={venv} -o {venv}/.installed"  # make with this interpreter's environment, never reinstalling it
_PAPER = "configs/paper.yaml"

CHECKS: dict[str, Check] = {
    # Two commands
    "make demo": DryRun("-n"),
    "make test": DryRun("-n"),
    "make demo CORES=2": DryRun("-n"),
    "make test TEST_WORKERS=1": DryRun("-n"),
    # Locally with Snakemake
    "make setup": DryRun("-n"),
    "export PATH=$PWD/.venv/bin:$PATH": Run(),
    "snakemake --cores 4 all_tables": DryRun("-n", grid="params.yaml"),
    "snakemake -n all_tables": Run(),
    "snakemake --cores 4 all_tables --report report.html": NotRun(
        "a report needs the finished runs' records in .snakemake/",
        covered_by="tests/workflow/test_snakemake.py::test_report_holds_the_tables_and_figures"),
    "snakemake -n": Run(),
    "snakemake --lint": Run(),
    "make paper": Instance((f"make paper SNAKEMAKE_ARGS=-n {_VENV}",), "runs the papers' grid for days",
                           grid=_PAPER),
    "snakemake all_tables --configfile configs/paper.yaml --cores $(nproc)": DryRun("-n", grid=_PAPER),
    "snakemake --configfile configs/paper.yaml all_tables": FailsAsDocumented(
        "No such file or directory: 'all_tables'"),
    # On a SLURM cluster
    "export SLURM_PARTITION=gpu": Run(),
    "make paper-slurm": Instance((f"make paper-slurm SNAKEMAKE_ARGS=-n {_VENV}",), "submits to SLURM",
                                 grid=_PAPER),
    "snakemake --profile slurm all_tables": DryRun("-n", grid="params.yaml"),
    "snakemake all_tables --configfile configs/paper.yaml --profile slurm": DryRun("-n", grid=_PAPER),
    "make paper-slurm SNAKEMAKE_ARGS=-n": Instance((f"make paper-slurm SNAKEMAKE_ARGS=-n {_VENV}",),
                                                   "make would first create .venv here", grid=_PAPER),
    "snakemake all_tables --configfile my.yaml --profile slurm": Instance(
        (f"cp {_PAPER} my.yaml && snakemake all_tables --configfile my.yaml --profile slurm -n",),
        "my.yaml is the reader's copy of configs/paper.yaml", grid="my.yaml"),
    "bash .ci/slurm.sh start": NotRun("starts slurmctld/slurmd as root; CI runs it before the suite"),
    ".ci/slurm.sh start": NotRun("starts slurmctld/slurmd as root; CI runs it before the suite"),
    "bash .ci/slurm.sh stop": NotRun("stops the CI cluster the SLURM tests run on"),
    "bash .ci/run": NotRun("CI's entry point: starts a SLURM cluster as root, then `make test`, which runs this test"),
    # With DVC
    "dvc repro": Instance(("dvc dag",), "reruns the demo grid (done for real on the tiny grid by "
                          "tests/workflow/test_dvc.py); `dvc repro --dry` fails in a fresh clone wherever a stage "
                          "reads an upstream output not yet made (treeverse/dvc#9021), so the check builds the same "
                          "stage graph with `dvc dag`"),
    "dvc status": Run(),
    "dvc exp run -S retrain.lr=0.05": NotRun(
        "trains the whole demo grid", covered_by="tests/workflow/test_dvc.py::test_repro_push_pull_and_param_edits"),
    "dvc exp show": Run(),
    "dvc metrics diff": Run(),
    "dvc metrics show": Run(),
    "dvc plots show": Run(),
    "dvc push": NotRun("needs the cached outputs of a finished `dvc repro`",
                       covered_by="tests/workflow/test_dvc.py::test_repro_push_pull_and_param_edits"),
    "dvc pull": NotRun("needs a remote that holds a finished run",
                       covered_by="tests/workflow/test_dvc.py::test_repro_push_pull_and_param_edits"),
    "dvc remote modify local url /shared/dvc-store": Run(),
    "dvc add data/NATS-tss-v1_0-3ffb9-simple": NotRun(
        "needs the NATS-Bench archive, which its authors distribute outside any registry"),
    # MLflow
    "mlflow ui --backend-store-uri sqlite:///$PWD/mlflow.db": NotRun("serves until stopped"),
    "mlflow server": NotRun(
        "serves until stopped",
        covered_by="tests/workflow/test_mlflow.py::test_search_and_retrain_are_read_back_from_the_server"),
    "mlflow server --host 127.0.0.1": NotRun(
        "serves until stopped",
        covered_by="tests/workflow/test_mlflow.py::test_search_and_retrain_are_read_back_from_the_server"),
    "mlflow gc": Instance(
        ("mlflow gc --backend-store-uri sqlite:///$PWD/mlflow.db --tracking-uri sqlite:///$PWD/mlflow.db",),
        "a bare `mlflow gc` asks for the store it purges; here a fresh SQLite store"),
    "git status": Run(),
    "python -m pipeline sync-tracking": Run(),
    "python -m pipeline sync-tracking --results results": Run(),
    # Stage commands
    "python -m pipeline prepare --dataset D --out results/data/D": Instance(
        ("python -m pipeline prepare --dataset digits --out results/data/digits",), "D is a placeholder"),
    "python -m pipeline search --dataset D --method M --seed S --out results/search/D/M/seedS": Instance(
        (f"python -m pipeline search --dataset digits --method darts_1st --seed 0 --out results/search/{_RUN}",),
        "trains a supernet (the real chain: tests/test_chain.py)", parse_only=True),
    "python -m pipeline derive --search-dir results/search/D/M/seedS --out results/genotypes/D/M/seedS.json": Instance(
        (f"python -m pipeline derive --search-dir results/search/{_RUN} --out results/genotypes/{_RUN}.json",),
        "needs a finished search (the real chain: tests/test_chain.py)", parse_only=True),
    "python -m pipeline retrain --genotype G --dataset D --seed S --out results/retrain/D/M/seedS": Instance(
        ("python -m pipeline retrain --genotype darts_v2.json --dataset digits --seed 0 "
         f"--out results/retrain/{_RUN}",),
        "trains a network (the real chain: tests/test_chain.py)", parse_only=True),
    "python -m pipeline select --genotype G --dataset D --seed S --out results/select/D/M/seedS": Instance(
        (f"python -m pipeline select --genotype darts_v2.json --dataset digits --seed 0 --out results/select/{_RUN}",),
        "trains a network (for real: tests/test_robustness.py)", parse_only=True),
    "snakemake all_tables --configfile configs/robustness.yaml --profile slurm": DryRun(
        "-n", grid="configs/robustness.yaml"),
    "python -m pipeline transfer --genotype G --seed S --out results/transfer/imagenet/D/M/seedS": Instance(
        (f"python -m pipeline transfer --genotype darts_v2.json --seed 0 --out results/transfer/imagenet/{_RUN}",),
        "trains an ImageNet network (the real chain: tests/test_chain.py)", parse_only=True),
    "python -m pipeline tables --results results --out results/tables --figures results/figures": Run(),
    "python -m pipeline tables": Run(),
    "python -m pipeline inspect GENOTYPE.json --dataset cifar10|imagenet [--layers N --channels C]": Instance(
        ("python -m pipeline inspect darts_v2.json --dataset cifar10 --layers 3 --channels 8",
         "python -m pipeline inspect darts_v2.json --dataset imagenet --layers 3 --channels 8"),
        "GENOTYPE.json is a placeholder; small networks keep it quick"),
    "python -m pipeline bench": Instance(
        ("python -m pipeline bench --methods darts_1st --steps 1 --warmup 0 --batch 2 --layers 3 --channels 4 "
         "--image-size 8",),
        "full size takes minutes per method on CPU; every method runs in the form below"),
    "python -m pipeline bench [--device cuda] [--out bench.json]": Instance(
        ("python -m pipeline bench --device cpu --out bench.json --methods darts_1st --steps 1 --warmup 0 "
         "--batch 2 --layers 3 --channels 4 --image-size 8",), "no GPU here; every method runs in the form below"),
    "python -m pipeline bench --device cuda --warmup 3 --out bench.json": Instance(
        ("python -m pipeline bench --device cpu --warmup 0 --out bench.json --steps 1 --batch 2 --layers 3 "
         "--channels 4 --image-size 8",),
        "no GPU here: every method on CPU at a small size, one step each (its fresh process dominates)"),
    "python -m pipeline bench --device cpu --batch 8 --layers 5 --channels 8 --image-size 16 --methods darts_1st "
    "data_m4 data_m4_frozen ddsas": Instance(
        ("python -m pipeline bench --device cpu --batch 2 --layers 3 --channels 4 --image-size 8 --steps 1 "
         "--warmup 0 --methods darts_1st data_m4 data_m4_frozen ddsas",),
        "the README's size takes minutes per method on CPU; one step of each method at a smaller size"),
    "python -m pipeline bench --methods darts_1st --steps 3 --compare reference --recompute": Instance(
        ("python -m pipeline bench --methods darts_1st --steps 1 --compare reference --recompute --batch 2 "
         "--layers 3 --channels 4 --image-size 8 --warmup 0 --device cpu",),
        "the README's size takes minutes per row on CPU; the three rows at a small size"),
    "python -m pipeline bench --device cpu --compare reference --batch 64 --steps 1 --warmup 1": Instance(
        ("python -m pipeline bench --device cpu --compare reference --batch 2 --layers 3 --channels 4 "
         "--image-size 8 --steps 1 --warmup 0 --methods darts_1st pc_darts",),
        "every method at full size takes about 25 minutes on CPU; two of them side by side at a small size"),
    "python -m pipeline bench --device cpu --methods sdarts_adv --steps 1 --warmup 1 --compare reference": Instance(
        ("python -m pipeline bench --device cpu --methods sdarts_adv --steps 1 --warmup 0 --compare reference "
         "--batch 2 --layers 3 --channels 4 --image-size 8",),
        "the README's size takes minutes on CPU; both supernets side by side at a small size"),
    "python -m pipeline bench --device cpu --compare reference --methods pc_darts --batch 64 --steps 3 "
    "--warmup 1": Instance(
        ("python -m pipeline bench --device cpu --compare reference --methods pc_darts --batch 2 --layers 3 "
         "--channels 4 --image-size 8 --steps 1 --warmup 0",),
        "the README's size takes minutes on CPU; both supernets side by side at a small size"),
    "python -m pipeline bench --device cpu --compare reference": Instance(
        ("python -m pipeline bench --device cpu --compare reference --methods darts_1st --steps 1 --warmup 0 "
         "--batch 2 --layers 3 --channels 4 --image-size 8",),
        "both supernets at full size take minutes per method on CPU; one small step of each side by side"),
    "python -m pytest tests/test_readme_commands.py tests/workflow/test_readme.py": NotRun(
        "runs this test itself"),
    "python -m pipeline spaces": Run(),
    "python -m pipeline spaces show darts_no_none": Run(),
    "python -m pipeline spaces show NAME [--json]": Instance(
        ("python -m pipeline spaces show darts --json",), "NAME is a placeholder"),
    "python -m pipeline config --params params.yaml": Run(),
    "python -m pipeline config --explain": Run(),
    "python -m pipeline config [--explain]": Instance(
        ("python -m pipeline config", "python -m pipeline config --explain"), "[--explain] is optional"),
}


def _documented() -> list[str]:
    return readme_commands((REPO / "README.md").read_text())


def test_every_readme_command_is_checked() -> None:
    documented = _documented()
    unchecked = [command for command in documented if command not in CHECKS]
    stale = [command for command in CHECKS if command not in documented]
    assert not unchecked, (
        "README.md shows commands that tests/workflow/test_readme.py neither runs nor lists; add each to CHECKS "
        f"with how to check it, or why it cannot run here: {unchecked}")
    assert not stale, f"CHECKS names commands README.md no longer shows; remove them: {stale}"


def _flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", command))


@pytest.mark.parametrize("command", [c for c, check in CHECKS.items() if isinstance(check, Instance)])
def test_a_concrete_form_uses_every_flag_its_command_shows(command: str) -> None:
    check = CHECKS[command]
    assert isinstance(check, Instance)
    shown = _flags(command)
    used = set().union(*(_flags(form) for form in check.forms))
    assert shown <= used, f"the forms of {command!r} leave out {sorted(shown - used)}"


@pytest.mark.parametrize("command", [c for c, check in CHECKS.items() if getattr(check, "covered_by", None)])
def test_the_test_named_for_a_command_not_run_here_exists(command: str) -> None:
    check = CHECKS[command]
    assert isinstance(check, NotRun) and check.covered_by
    path, name = check.covered_by.split("::")
    assert f"def {name}(" in (REPO / path).read_text(), f"{check.covered_by} (listed for {command!r}) is gone"


@pytest.mark.parametrize("command", [c for c, check in CHECKS.items()
                                     if isinstance(check, Instance) and check.parse_only])
def test_stage_synopsis_parses_with_the_real_argument_parser(command: str) -> None:
    check = CHECKS[command]
    assert isinstance(check, Instance)
    for form in check.forms:
        words = shlex.split(form)
        assert words[:3] == ["python", "-m", "pipeline"], form
        args = build_parser(words[3:]).parse_args(words[3:])
        assert args.stage == words[3]


def _git(root: Path, *args: str) -> None:
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", *args], cwd=root, timeout=60)


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a new user has after `git clone`: the checkout's files with its committed results and dvc.lock
    (which copy_repo leaves out), as one git commit (DVC needs git), plus DARTS_V2's genotype as the
    GENOTYPE.json of the synopses."""
    root = copy_repo(tmp_path_factory.mktemp("clone"))
    committed = subprocess.run(["git", "ls-files", "results", "dvc.lock"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()
    for rel in committed:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    from pipeline.space.cnn import GENOTYPE_DARTS_V2
    from pipeline.space.genotype import save_genotype

    save_genotype(root / "darts_v2.json", GENOTYPE_DARTS_V2)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "clone")
    return root


def _bash(command: str, root: Path, timeout: int, check: bool = True) -> subprocess.CompletedProcess[str]:
    venv = Path(sys.executable).parent.parent
    return run(["bash", "-c", command.format(venv=venv)], cwd=root, timeout=timeout, env=tool_env(), check=check)


def _search_jobs(params_file: Path) -> int:
    """The search jobs a grid has, straight from its YAML: one per dataset x variant x seed, plus one per
    variant searched directly on ImageNet and seed, plus each sub-grid's (grid.nb201, grid.rnn) dataset x
    variant x seed."""
    grid = yaml.safe_load(params_file.read_text())["grid"]
    seeds = len(grid["seeds"])
    subgrids = [grid.get(key, {}) for key in ("nb201", "rnn")]
    return (len(grid["datasets"]) * len(grid["methods"]) * seeds + len(grid.get("imagenet_methods", [])) * seeds
            + sum(len(sub.get("datasets", [])) * len(sub.get("methods", [])) * seeds for sub in subgrids))


def _assert_plans_grid(output: str, params_file: Path) -> None:
    planned = re.search(r"^search\s+(\d+)$", output, re.MULTILINE)
    assert planned, f"no search jobs in the plan:\n{output[-3000:]}"
    assert int(planned.group(1)) == _search_jobs(params_file), f"the plan is not {params_file.name}'s grid"


_EXECUTED = [c for c, check in CHECKS.items() if isinstance(check, Run | DryRun | Instance | FailsAsDocumented)
             and not (isinstance(check, Instance) and check.parse_only)]


@pytest.mark.slow
@pytest.mark.parametrize("command", _EXECUTED)
def test_readme_command_runs(command: str, fresh_clone: Path) -> None:
    check = CHECKS[command]
    if isinstance(check, FailsAsDocumented):
        failed = _bash(f"{command} {check.flag}", fresh_clone, timeout=300, check=False)
        assert failed.returncode != 0 and check.message in failed.stdout + failed.stderr, failed.stderr[-3000:]
        return
    forms = check.forms if isinstance(check, Instance) else (
        f"{command} {check.flag}" if isinstance(check, DryRun) else command,)
    for form in forms:
        done = _bash(form, fresh_clone, timeout=check.timeout)
        grid = getattr(check, "grid", None)
        if grid is not None:
            _assert_plans_grid(done.stdout + done.stderr, fresh_clone / grid)
