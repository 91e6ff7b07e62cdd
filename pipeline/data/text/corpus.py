"""Reading a word-level corpus: tokens per line plus `<eos>`, a vocabulary from the training split.

As the AWD-LSTM / DARTS data code does, every line of a file (blank lines of WikiText included) becomes its
whitespace-separated words followed by `<eos>`, and word ids follow the order in which words first appear.
Unlike that code, the vocabulary comes from the training split alone (it added valid and test words too;
on PTB and WikiText-2, whose rare words are already `<unk>`, both give the same 10,000 / 33,278 words).
A valid or test word outside it becomes `<unk>` when the training split has that token, and is an error
naming the file, line and word otherwise, so a corpus mixed up with another never trains silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pipeline.errors import DataError

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")

# The file names each corpus ships with: PTB as in Mikolov's simple-examples/data, WikiText-2 as in
# wikitext-2 (word level, the `.tokens` files); the two demo corpora are written by `demo.write_demo_corpus`.
CORPUS_FILES: Mapping[str, Mapping[str, str]] = {
    "ptb": {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"},
    "wikitext2": {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"},
    "text_demo": {"train": "demo.train.txt", "valid": "demo.valid.txt", "test": "demo.test.txt"},
    "text_demo2": {"train": "demo2.train.txt", "valid": "demo2.valid.txt", "test": "demo2.test.txt"},
}


def read_tokens(path: Path) -> list[list[str]]:
    """The words of each line of `path`, each line ending in `<eos>`."""
    if not path.is_file():
        raise DataError(f"corpus file {path} is missing")
    with path.open(encoding="utf-8") as handle:
        return [[*line.split(), EOS] for line in handle]


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id, ids in order of first appearance in the training split."""

    words: tuple[str, ...]
    ids: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", {word: index for index, word in enumerate(self.words)})
        if len(self.ids) != len(self.words):
            raise ValueError("a vocabulary lists each word once")

    @classmethod
    def from_lines(cls, lines: Iterable[list[str]]) -> Vocabulary:
        seen: dict[str, None] = {}
        for line in lines:
            seen.update(dict.fromkeys(line))
        return cls(tuple(seen))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, lines: list[list[str]], source: str) -> torch.Tensor:
        """One int64 id per token of `lines`; `source` names the file in errors."""
        unknown = self.ids.get(UNK)
        out: list[int] = []
        for number, line in enumerate(lines, start=1):
            for word in line:
                index = self.ids.get(word, unknown)
                if index is None:
                    raise DataError(f"{source} line {number}: word {word!r} is not in the training split's "
                                    f"vocabulary, which has no {UNK} token to map it to")
                out.append(index)
        return torch.tensor(out, dtype=torch.int64)


@dataclass(frozen=True)
class Corpus:
    """The three splits of a corpus as token-id streams over one vocabulary."""

    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor


def load_corpus(root: Path, name: str) -> Corpus:
    """Read corpus `name` (a key of CORPUS_FILES) from the directory `root`."""
    try:
        files = CORPUS_FILES[name]
    except KeyError:
        raise DataError(f"unknown text corpus {name!r}; known: {', '.join(CORPUS_FILES)}") from None
    missing = [str(Path(root) / files[split]) for split in SPLITS if not (Path(root) / files[split]).is_file()]
    if missing:
        raise DataError(f"{name}: corpus file(s) missing: {', '.join(missing)} (expected {', '.join(files.values())} "
                        f"in {root})")
    lines = {split: read_tokens(Path(root) / files[split]) for split in SPLITS}
    vocab = Vocabulary.from_lines(lines["train"])
    streams = {split: vocab.encode(lines[split], str(Path(root) / files[split])) for split in SPLITS}
    return Corpus(vocab=vocab, **streams)
