"""The offline demo corpora: English text that ships with CPython, made word level like PTB.

Source: the standard library's `pydoc_data/topics.py` (the text `help()` shows for Python's keywords and
topics, about 70,000 words), present on every CPython install, so a fresh machine without internet can run
the recurrent chain. Its topics, in sorted order, make two disjoint documents: those at even positions
are `text_demo` (the corpus searched on, PTB's role) and those at odd positions `text_demo2` (the corpus a
searched cell transfers to, WikiText-2's role). Made like Mikolov's PTB: lower case, words of letters
only, every number `N`, no punctuation, one output line per non-empty source line; the `vocab_size - 2`
most frequent training words are kept (ties alphabetically) and every other word becomes `<unk>`. The
lines are split contiguously 80/10/10 into train/valid/test, so the split never depends on a seed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from types import ModuleType

from pipeline.atomic import atomic_write_text
from pipeline.data.text.corpus import CORPUS_FILES, UNK
from pipeline.errors import DataError

DEMO = "text_demo"
# Each demo corpus and the parity of the positions of its topics in sorted order.
DEMO_DOCUMENTS = {DEMO: 0, "text_demo2": 1}
TRAIN_FRACTION, VALID_FRACTION = 0.8, 0.1
_WORD = re.compile(r"[a-z]+|[0-9]+")


def _topics_module() -> ModuleType:
    try:
        import pydoc_data.topics
    except ImportError as exc:  # some distributions package pydoc_data separately
        raise DataError("the demo corpus is built from the standard library's pydoc_data/topics.py, which this "
                        "Python lacks (install your distribution's python3 documentation/pydoc package)") from exc
    return pydoc_data.topics


def source_path() -> Path:
    """The file the demo corpus is made from (its checksum goes into prepare's manifest)."""
    return Path(_topics_module().__file__ or "")


def source_lines(name: str = DEMO) -> list[list[str]]:
    """The words of every non-empty line of the topics of demo corpus `name`, PTB style."""
    topics = _topics_module().topics
    lines = []
    for key in sorted(topics)[DEMO_DOCUMENTS[name]::2]:
        for line in topics[key].splitlines():
            words = ["N" if word.isdigit() else word for word in _WORD.findall(line.lower())]
            if words:
                lines.append(words)
    return lines


def demo_splits(lines: list[list[str]], vocab_size: int) -> dict[str, list[list[str]]]:
    """Contiguous train/valid/test lines with rare words replaced by `<unk>`."""
    if vocab_size < 3:
        raise DataError(f"demo vocab_size {vocab_size}: needs at least 3 (<eos>, <unk> and one word)")
    train_end = int(len(lines) * TRAIN_FRACTION)
    valid_end = train_end + int(len(lines) * VALID_FRACTION)
    parts = {"train": lines[:train_end], "valid": lines[train_end:valid_end], "test": lines[valid_end:]}
    counts = Counter(word for line in parts["train"] for word in line)
    if vocab_size - 2 >= len(counts):
        # Some training word must become <unk>, or valid/test words outside the vocabulary have no token.
        raise DataError(f"demo vocab_size {vocab_size}: the training split has only {len(counts)} distinct words; "
                        f"use at most {len(counts) + 1}")
    kept = {word for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[: vocab_size - 2]}
    return {split: [[word if word in kept else UNK for word in line] for line in part]
            for split, part in parts.items()}


def write_demo_corpus(out_dir: Path, vocab_size: int = 2000, name: str = DEMO) -> dict[str, Path]:
    """Write the three files of demo corpus `name` into `out_dir` (the PTB layout the loader reads)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, lines in demo_splits(source_lines(name), vocab_size).items():
        path = out_dir / CORPUS_FILES[name][split]
        atomic_write_text(path, "".join(" ".join(line) + "\n" for line in lines))
        written[split] = path
    return written

