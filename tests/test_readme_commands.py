"""What counts as a README command (tests/readme_commands.py), on hand-written Markdown whose commands
are listed by hand."""

from __future__ import annotations

import pytest
from readme_commands import is_command_span, readme_commands

MARKDOWN = """\
# Title

```
prepare -> search -> tables
```

```bash
make setup                     # once
export PATH=$PWD/.venv/bin:$PATH
dvc exp show; dvc metrics diff && dvc plots show
snakemake --cores 4 \\
    all_tables
# a comment line
```

```
$ python -m pipeline config --params params.yaml
error: params.yaml: search.epoch: unknown key
```

```console
$ dvc status
stage changed
```

```yaml
key: value
```

Run `snakemake -n` after an edit; `--config k=v` is refused, `squeue` is a tool, and `python -m pipeline
sync-tracking --results results` uploads later. See `params.yaml` and `bash .ci/slurm.sh start`,
`.ci/slurm.sh stop` and `make setup` again.
"""

EXPECTED = [
    "make setup",
    "export PATH=$PWD/.venv/bin:$PATH",
    "dvc exp show",
    "dvc metrics diff",
    "dvc plots show",
    "snakemake --cores 4 all_tables",
    "python -m pipeline config --params params.yaml",
    "dvc status",
    "snakemake -n",
    "python -m pipeline sync-tracking --results results",
    "bash .ci/slurm.sh start",
    ".ci/slurm.sh stop",
]


def test_commands_of_blocks_and_spans_in_order_each_once() -> None:
    assert readme_commands(MARKDOWN) == EXPECTED


@pytest.mark.parametrize(("span", "is_command"), [
    ("snakemake -n", True),
    ("make demo CORES=2", True),
    ("run.sh --fast", True),
    ("squeue", False),               # names a tool
    ("--sdm conda", False),          # a fragment of a command
    ("data.download: true", False),  # a params key
])
def test_command_spans_start_with_a_program_and_have_an_argument(span: str, is_command: bool) -> None:
    assert is_command_span(span) is is_command


def test_an_unclosed_block_is_an_error_not_silence() -> None:
    with pytest.raises(ValueError, match="unclosed"):
        readme_commands("text\n```bash\nmake demo\n")
