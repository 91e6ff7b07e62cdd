"""The workflow on a real SLURM cluster through `--profile slurm`, as a user types it from the repo root.

CI starts a one-node cluster with `.ci/slurm.sh start`; elsewhere the test is skipped when no SLURM
client is installed or no node is idle. Only cluster-specific values are given, the way a user would:
the partition through SLURM_PARTITION and small resources in params.yaml.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_support import (
    BIN,
    TINY_NB201,
    TINY_RNN_METHOD,
    assert_nb201_cell_ran,
    expected_tables,
    run,
    tiny_rnn_edit,
    tool_env,
    write_params,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def _idle_partition() -> str:
    """The partition of an idle node, or skip with the reason."""
    if shutil.which("sinfo") is None:
        pytest.skip("no SLURM client (sinfo) on PATH; CI starts a cluster with `bash .ci/slurm.sh start`")
    proc = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True, timeout=30)
    for line in proc.stdout.splitlines():
        partition, state = line.split()
        if state == "idle":
            return partition.rstrip("*")
    pytest.skip(f"no idle SLURM node (sinfo: {proc.stdout.strip() or proc.stderr.strip()})")


# What this test adds to the Snakemake fixture run (tests/workflow/test_snakemake.py) is every rule as a SLURM
# job, so one cell per rule is enough: darts_2nd (a second search of the same rules, and the costliest) and
# the direct ImageNet search (the same prepare, search, derive and transfer rules) would add 8 SLURM jobs
# of 25 and no rule.
ONE_CELL_PER_RULE = {"grid": {"methods": ["darts_1st"], "imagenet_methods": []}}


def test_profile_runs_the_tiny_grid_as_slurm_jobs(tiny_repo: Path) -> None:
    partition = _idle_partition()
    # The tiny grid with both sub-grids: an NB201 cell and a recurrent cell (retrained, transferred).
    write_params(tiny_repo, ONE_CELL_PER_RULE, TINY_NB201, tiny_rnn_edit())
    # The plugin checks a new job's status after this many seconds, then 10 s later each time, longer and
    # longer until a job has finished; a short start saves the wait on the many seconds-long tiny jobs.
    env = tool_env(SLURM_PARTITION=partition, SNAKEMAKE_SLURM_INIT_SECONDS="1")
    run([str(BIN / "snakemake"), "--profile", "slurm", "all_tables"], cwd=tiny_repo, timeout=900, env=env)

    params = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    for table in expected_tables(params):
        assert (tiny_repo / table).is_file(), f"{table} missing"

    logs = sorted((tiny_repo / ".snakemake/slurm_logs").rglob("*.log"))
    rules = {log.relative_to(tiny_repo / ".snakemake/slurm_logs").parts[0] for log in logs}
    assert {"rule_prepare", "rule_prepare_nb201", "rule_search", "rule_derive", "rule_retrain", "rule_transfer",
            "rule_transfer_text", "rule_tables"} <= rules, rules
    assert_nb201_cell_ran(tiny_repo)
    assert (tiny_repo / f"results/transfer/text_demo2/text_demo/{TINY_RNN_METHOD}/seed0/metrics.json").is_file()
    job_ids = {int(log.stem) for log in logs if re.fullmatch(r"\d+", log.stem)}
    assert len(job_ids) == len(logs), [log.name for log in logs]

    # The jobs were real SLURM jobs in the partition asked for, and they completed (MinJobAge keeps
    # finished jobs visible to squeue for a while).
    listed = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i %P %T", "-j", ",".join(map(str, sorted(job_ids)))],
        capture_output=True, text=True, timeout=30,
    ).stdout.split("\n")
    seen = {int(i): (p, s) for i, p, s in (line.split() for line in listed if line.strip())}
    assert seen, "squeue lists none of the workflow's jobs"
    for job_id in job_ids:
        if job_id in seen:
            assert seen[job_id] == (partition, "COMPLETED"), (job_id, seen[job_id])
