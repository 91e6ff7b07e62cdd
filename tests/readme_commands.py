"""Every command a Markdown file shows a reader: lines of shell code blocks and command spans in prose.

The executable-README test (tests/test_readme_commands.py) runs what this finds, so a command that a
reader can copy must be found here, and a span that merely names a tool or a flag must not be:
- a fenced block tagged as shell (bash, sh, shell, console, zsh) contributes every line; any other fenced
  block (untagged, yaml, ...) contributes only its `$ `-prompted lines, the rest being output or
  diagrams;
- an inline code span is a command when its first word is a program in PROGRAMS (or a `*.sh` script)
  and it has at least one argument: `snakemake -n` is a command, "read with `squeue`" names a tool.
Comments (` # ...`) are dropped, `\\`-continued lines joined, and `a; b` or `a && b` give two commands.
"""

from __future__ import annotations

import re

# The programs the README's readers type. A span starting with anything else (a flag such as
# `--sdm conda`, a params key, a path) is a fragment of a command, not one to run.
PROGRAMS = frozenset({
    "bash", "conda", "dvc", "export", "git", "make", "mlflow", "pip", "pytest", "python", "python3", "ruff",
    "sacct", "sbatch", "scancel", "snakemake", "squeue", "torchrun",
})
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "console", "zsh"})

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
_SPAN = re.compile(r"`([^`]+)`")
_COMMENT = re.compile(r"(^|\s)#.*$")
_SEPARATOR = re.compile(r"\s*(?:;|&&)\s*")


def normalise(command: str) -> str:
    """One spelling per command: runs of whitespace (a span wrapped over two lines) become one space."""
    return " ".join(command.split())


def _split(line: str) -> list[str]:
    """A shell line without its comment, cut into the commands it chains."""
    code = _COMMENT.sub("", line)
    return [normalise(part) for part in _SEPARATOR.split(code) if part.strip()]


def _joined(lines: list[str]) -> list[str]:
    """Lines with backslash continuations joined."""
    out: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def _block_commands(language: str, lines: list[str]) -> list[str]:
    commands: list[str] = []
    for line in _joined(lines):
        stripped = line.strip()
        if stripped.startswith("$ "):
            commands += _split(stripped[2:])
        elif language in SHELL_LANGUAGES and language != "console":
            commands += _split(stripped)
    return commands


def is_command_span(span: str) -> bool:
    """Whether an inline code span is a command a reader would type (see the module docstring)."""
    words = span.split()
    if len(words) < 2:
        return False
    return words[0] in PROGRAMS or words[0].endswith(".sh")


def split_fences(markdown: str) -> tuple[list[tuple[str, list[str]]], str]:
    """The fenced blocks as (language, lines), and the prose with every fenced block removed."""
    blocks: list[tuple[str, list[str]]] = []
    prose: list[str] = []
    fence: str | None = None
    for line in markdown.splitlines():
        match = _FENCE.match(line)
        if fence is None and match:
            fence, language, body = match.group(1), match.group(2).lower(), []
            continue
        if fence is not None and line.strip().startswith(fence):
            blocks.append((language, body))
            fence = None
            continue
        (body if fence is not None else prose).append(line)
    if fence is not None:
        raise ValueError(f"unclosed {fence} code block (language {language!r})")
    return blocks, "\n".join(prose)


def readme_commands(markdown: str) -> list[str]:
    """Every command in `markdown`, in order of appearance (blocks first, then prose), each once."""
    blocks, prose = split_fences(markdown)
    found = [command for language, body in blocks for command in _block_commands(language, body)]
    found += [normalise(span) for span in _SPAN.findall(prose) if is_command_span(span)]
    return list(dict.fromkeys(found))
