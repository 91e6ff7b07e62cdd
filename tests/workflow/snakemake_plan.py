"""Reading Snakemake's dry-run: which jobs it would run, why, with which command and files.

The dry run (`snakemake -n -p`) is Snakemake's own resolution of the DAG; parsing its job blocks tests
the workflow as Snakemake sees it instead of re-implementing the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from workflow_support import BIN, run

_RULE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")  # a checkpoint is a rule whose jobs re-plan the DAG
_FIELD = re.compile(r"^    (\w+): (.*)$")
_DIRNAME = re.compile(r"\$\(dirname ([^)\s]+)\)")


@dataclass
class PlannedJob:
    """One job block of a dry run."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    reason: str = ""
    shell: str | None = None

    def command(self) -> str | None:
        """The stage command as a user would type it: no `exec`, no log redirection, dirnames resolved."""
        if self.shell is None:
            return None
        cmd = self.shell.removeprefix("exec ")
        cmd = re.sub(r" > \S+ 2>&1$", "", cmd)
        return _DIRNAME.sub(lambda m: str(Path(m.group(1)).parent), cmd)


def _split(value: str) -> list[str]:
    return [v for v in value.split(", ") if v]


def parse_dry_run(text: str) -> list[PlannedJob]:
    """The job blocks of `snakemake -n -p` output, in printed order."""
    jobs: list[PlannedJob] = []
    current: PlannedJob | None = None
    for line in text.splitlines():
        if match := _RULE.match(line):
            current = PlannedJob(rule=match.group(1))
            jobs.append(current)
        elif current is not None and (match := _FIELD.match(line)):
            key, value = match.groups()
            if key == "wildcards":
                current.wildcards = dict(item.split("=", 1) for item in _split(value))
            elif key == "input":
                current.inputs = _split(value)
            elif key == "output":
                current.outputs = _split(value)
            elif key == "reason":
                current.reason = value
        elif current is not None and line.startswith("Shell command: "):
            shell = line.removeprefix("Shell command: ")
            current.shell = None if shell == "None" else shell
            current = None
    return jobs


def plan(root: Path, *args: str, timeout: int = 180) -> list[PlannedJob]:
    """The jobs `snakemake -n -p <args>` would run in `root`."""
    proc = run([str(BIN / "snakemake"), "-n", "-p", *args], cwd=root, timeout=timeout)
    return parse_dry_run(proc.stdout + proc.stderr)
