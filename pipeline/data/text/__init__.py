"""Word-level language-modelling corpora (PTB, WikiText-2, the offline demo corpus) and their batching.

Separate from the image dataset registry: a text corpus is three token streams and a vocabulary, not
labelled samples, and the recurrent space reads it through `load_corpus` and `batches` only.
"""

from pipeline.data.text.batches import batchify, epoch_windows, evaluation_windows, window
from pipeline.data.text.corpus import CORPUS_FILES, EOS, UNK, Corpus, Vocabulary, load_corpus, read_tokens

__all__ = [
    "CORPUS_FILES",
    "EOS",
    "UNK",
    "Corpus",
    "Vocabulary",
    "batchify",
    "epoch_windows",
    "evaluation_windows",
    "load_corpus",
    "read_tokens",
    "window",
]
