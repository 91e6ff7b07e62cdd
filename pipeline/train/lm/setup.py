"""What the recurrent space's stages share: the prepared corpus, its fingerprints, the device, dropouts."""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.config import LmDropouts, Params
from pipeline.data.files import sha256_file
from pipeline.data.text import Corpus, load_corpus
from pipeline.data.text.corpus import CORPUS_FILES, SPLITS
from pipeline.device import choose_device, pin_threads, seed_everything
from pipeline.errors import DataError, PipelineError
from pipeline.inputs import code_fingerprint
from pipeline.space.rnn.model import Dropouts


def corpus_inputs(prepared: Path, dataset: str) -> dict[str, str]:
    """The resume-key inputs of a text stage: the three corpus files prepare wrote, and the code."""
    files = CORPUS_FILES[dataset]
    return {files[split]: sha256_file(prepared / files[split]) for split in SPLITS} | {"code": code_fingerprint()}


def read_corpus(prepared: Path, dataset: str) -> Corpus:
    if dataset not in CORPUS_FILES:
        raise DataError(f"'{dataset}' is not a text corpus; the recurrent space trains on {', '.join(CORPUS_FILES)}")
    return load_corpus(prepared, dataset)


def dropouts(config: LmDropouts) -> Dropouts:
    return Dropouts(**config.model_dump())


def start(params: Params, seed: int) -> torch.device:
    """The device, with threads pinned and every generator seeded, as the image stages start."""
    device = choose_device(params.runtime.device)
    pin_threads(params.runtime.threads)
    seed_everything(seed, params.runtime.deterministic)
    return device


def refuse_nan_skip(allow_nan_skip: int) -> None:
    """The language-model loop stops at the first non-finite training loss (its checkpoint kept): it has no
    batches to skip, so --allow-nan-skip is refused rather than ignored."""
    if allow_nan_skip:
        raise PipelineError("--allow-nan-skip applies to image stages; a language model stops at the first "
                            "non-finite loss, keeping its last checkpoint (lower the learning rate instead)")
