"""Word-level corpora and BPTT batching, against hand-made files and hand-worked indices."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import main
from pipeline.data.text import EOS, batchify, epoch_windows, evaluation_windows, load_corpus, read_tokens, window
from pipeline.data.text.batches import Window
from pipeline.data.text.corpus import CORPUS_FILES
from pipeline.data.text.demo import demo_splits, source_lines, write_demo_corpus
from pipeline.data.text.prepare import prepare_text_corpus
from pipeline.errors import DataError


def _write(root: Path, corpus: str, texts: dict[str, str]) -> Path:
    for split, text in texts.items():
        (root / CORPUS_FILES[corpus][split]).write_text(text)
    return root


def test_every_line_ends_in_eos_blank_lines_included(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("a b\n\n c \n")
    assert read_tokens(path) == [["a", "b", EOS], [EOS], ["c", EOS]]


def test_vocabulary_comes_from_train_in_order_of_first_appearance(tmp_path: Path) -> None:
    corpus = load_corpus(_write(tmp_path, "ptb", {"train": "the cat <unk>\nthe dog\n", "valid": "dog cat\n",
                                                  "test": "the bird\n"}), "ptb")
    assert corpus.vocab.words == ("the", "cat", "<unk>", EOS, "dog")
    assert corpus.train.tolist() == [0, 1, 2, 3, 0, 4, 3]
    assert corpus.valid.tolist() == [4, 1, 3]
    assert corpus.test.tolist() == [0, 2, 3], "a test word outside the training vocabulary becomes <unk>"


def test_unknown_word_without_unk_token_is_an_error_naming_file_line_and_word(tmp_path: Path) -> None:
    _write(tmp_path, "wikitext2", {"train": "a b\n", "valid": "a\n b zebra\n", "test": "a\n"})
    with pytest.raises(DataError, match=r"wiki\.valid\.tokens line 2: word 'zebra'"):
        load_corpus(tmp_path, "wikitext2")


def test_missing_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "ptb.train.txt").write_text("a\n")
    with pytest.raises(DataError, match=r"ptb\.valid\.txt.*ptb\.test\.txt"):
        load_corpus(tmp_path, "ptb")


def test_batchify_lays_contiguous_chunks_side_by_side_and_drops_the_tail() -> None:
    # 11 tokens at batch 3: 3 rows; column b holds tokens 3b .. 3b+2; tokens 9 and 10 are dropped.
    assert batchify(torch.arange(11), 3).tolist() == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    with pytest.raises(DataError, match="fewer than 2 rows"):
        batchify(torch.arange(5), 3)


def test_evaluation_windows_cover_every_target_once() -> None:
    source = batchify(torch.arange(20), 2)  # rows 0..9: column 0 is 0..9, column 1 is 10..19
    windows = evaluation_windows(len(source), 4)
    assert windows == [Window(0, 4), Window(4, 4), Window(8, 1)]
    inputs, targets = window(source, windows[2])
    assert inputs.tolist() == [[8, 18]] and targets.tolist() == [[9, 19]]
    inputs, targets = window(source, windows[0])
    assert inputs[:, 1].tolist() == [10, 11, 12, 13] and targets[:, 1].tolist() == [11, 12, 13, 14]


def test_fixed_training_windows_stop_two_rows_before_the_end_as_the_released_loop() -> None:
    # while i < rows - 1 - 1: rows 10, bptt 4 -> starts 0 and 4; start 8 < 8 fails.
    assert epoch_windows(10, 4, "fixed", seed=0, epoch=0) == [Window(0, 4, 1.0), Window(4, 4, 1.0)]
    # rows 11: start 8 < 9 runs, cut to the 2 rows whose targets exist; the lr scale stays drawn / bptt.
    assert epoch_windows(11, 4, "fixed", seed=0, epoch=0)[-1] == Window(8, 2, 1.0)


@pytest.mark.parametrize("mode", ["search", "evaluation"])
def test_variable_windows_are_contiguous_and_drawn_as_the_released_scripts(mode: str) -> None:
    bptt, rows = 35, 35 * 3000
    windows = epoch_windows(rows, bptt, mode, seed=3, epoch=1)
    drawn = np.array([w.lr_scale * bptt for w in windows])
    assert np.allclose(drawn, np.rint(drawn))
    drawn = np.rint(drawn).astype(int)
    starts = np.array([w.start for w in windows])
    assert starts[0] == 0 and (np.diff(starts) == drawn[:-1]).all()
    assert all(w.length == min(d, rows - 1 - w.start) for w, d in zip(windows, drawn, strict=True))
    if mode == "search":  # int(bptt) with probability 0.95, int(bptt / 2) otherwise
        assert set(drawn) <= {35, 17}
        assert abs((drawn == 17).mean() - 0.05) < 0.015
    else:  # max(5, int(N(base, 5))) capped at bptt + 20
        assert drawn.min() >= 5 and drawn.max() <= 55
        expected_mean = 0.95 * 35 + 0.05 * 17.5 - 0.5  # int() truncates: about half a token below the normal mean
        assert abs(drawn.mean() - expected_mean) < 0.5
    assert epoch_windows(rows, bptt, mode, seed=3, epoch=1) == windows, "a pure function of (seed, epoch)"
    assert epoch_windows(rows, bptt, mode, seed=3, epoch=2) != windows


def test_demo_corpus_is_deterministic_ptb_like_and_loads(tmp_path: Path) -> None:
    lines = source_lines()
    assert all(word == "N" or (word.isalpha() and word.islower()) for line in lines for word in line)
    splits = demo_splits(lines, vocab_size=500)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [
        int(len(lines) * 0.8), int(len(lines) * 0.1), len(lines) - int(len(lines) * 0.8) - int(len(lines) * 0.1)]
    write_demo_corpus(tmp_path / "a", vocab_size=500)
    write_demo_corpus(tmp_path / "b", vocab_size=500)
    for name in CORPUS_FILES["text_demo"].values():
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    corpus = load_corpus(tmp_path / "a", "text_demo")
    assert len(corpus.vocab) == 500 and "<unk>" in corpus.vocab.ids
    with pytest.raises(DataError, match="vocab_size"):
        demo_splits(lines, vocab_size=10**6)


def test_prepare_copies_a_corpus_from_data_root_and_describes_it(tmp_path: Path) -> None:
    texts = {"train": "a b <unk>\nb a\n", "valid": "a\n", "test": "b zebra\n"}
    (tmp_path / "data" / "ptb").mkdir(parents=True)
    _write(tmp_path / "data" / "ptb", "ptb", texts)
    manifest = prepare_text_corpus("ptb", tmp_path / "out", source_root=tmp_path / "data", demo_vocab_size=3)
    for split, text in texts.items():
        assert (tmp_path / "out" / CORPUS_FILES["ptb"][split]).read_text() == text
    # vocabulary a, b, <unk>, <eos>; tokens are words plus one <eos> per line
    assert manifest["sizes"] == {"vocab": 4, "train": 7, "valid": 2, "test": 3}
    digest = hashlib.sha256(texts["test"].encode()).hexdigest()
    assert manifest["files"]["ptb.test.txt"] == manifest["source_files"]["ptb/ptb.test.txt"] == digest
    with pytest.raises(DataError, match=r"wikitext2: missing .*wiki\.train\.tokens"):
        prepare_text_corpus("wikitext2", tmp_path / "out2", source_root=tmp_path / "data", demo_vocab_size=3)


def test_prepare_stage_writes_the_demo_corpus_and_its_manifest(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("prepare:\n  text_demo: {vocab_size: 300}\n")
    out = tmp_path / "results" / "data" / "text_demo"
    assert main(["prepare", "--params", str(params), "--dataset", "text_demo", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sizes"]["vocab"] == 300 and manifest["settings"] == {"vocab_size": 300}
    assert set(manifest["files"]) == set(CORPUS_FILES["text_demo"].values())
    assert list(manifest["source_files"]) == ["pydoc_data/topics.py"]


def test_the_two_demo_corpora_are_the_topics_at_even_and_odd_positions() -> None:
    import pydoc_data.topics

    topics = pydoc_data.topics.topics
    keys = sorted(topics)

    # A source line becomes a corpus line when it holds a letter or digit (its words, PTB style).
    def wordy(key: str) -> int:
        return sum(1 for line in topics[key].splitlines() if re.search(r"[A-Za-z0-9]", line))

    even, odd = source_lines("text_demo"), source_lines("text_demo2")
    assert len(even) == sum(wordy(key) for key in keys[0::2])
    assert len(odd) == sum(wordy(key) for key in keys[1::2])
    first_of_second_topic = next(line for line in topics[keys[1]].splitlines() if re.search(r"[A-Za-z0-9]", line))
    assert odd[0] == ["N" if word.isdigit() else word for word in re.findall(r"[a-z]+|[0-9]+",
                                                                             first_of_second_topic.lower())]
