"""The single-layer recurrent language model around a cell (quark0/darts rnn/model.py RNNModel).

Embedding -> embedding dropout (whole words, `embedding_words`) -> variational dropout of the embeddings
(`embedding`) -> the cell over time -> variational dropout of the outputs (`output`) -> a decoder tied to
the embedding (its weight is the embedding matrix; only its bias is its own) -> log-softmax. Tying needs
embedding size = hidden size, as in DARTS (300 in search, 850 on PTB, 700 on WikiText-2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from pipeline.space.base import ArchWeights
from pipeline.space.rnn.cell import INIT_RANGE, HighwayCell


@dataclass(frozen=True)
class Dropouts:
    """Drop probabilities; defaults of quark0/darts rnn/train.py and train_search.py (both the same)."""

    output: float = 0.75  # --dropout, on the cell's outputs before the decoder
    hidden: float = 0.25  # --dropouth, on every state entering a W_i
    input: float = 0.75  # --dropoutx, on x_t entering W0
    embedding: float = 0.2  # --dropouti, variational, on the embedded words
    embedding_words: float = 0.0  # --dropoute, whole rows of the embedding matrix


@dataclass(frozen=True)
class LmOutput:
    log_probs: torch.Tensor  # [T, B, vocab]
    hidden: torch.Tensor  # [B, H], the state to carry into the next window
    raw_outputs: torch.Tensor  # [T, B, H], the cell's outputs before dropout (temporal regularisation)
    dropped_outputs: torch.Tensor  # [T, B, H], after dropout (activation regularisation)


def locked_dropout(x: torch.Tensor, drop: float, training: bool) -> torch.Tensor:
    """Variational dropout of `[T, B, D]`: one mask per sequence, the same at every time step."""
    if not training or not drop:
        return x
    keep = 1.0 - drop
    mask = torch.bernoulli(torch.full((1, x.shape[1], x.shape[2]), keep, dtype=x.dtype, device=x.device))
    return x * (mask / keep)


def embedded_dropout(weight: torch.Tensor, tokens: torch.Tensor, drop: float, training: bool) -> torch.Tensor:
    """Embed with whole vocabulary rows dropped (every occurrence of a dropped word is zero)."""
    if training and drop:
        keep = 1.0 - drop
        weight = weight * (torch.bernoulli(torch.full((weight.shape[0], 1), keep, dtype=weight.dtype,
                                                      device=weight.device)) / keep)
    return F.embedding(tokens, weight)


class RNNLanguageModel(nn.Module):
    """The tied embedding/decoder matrix and the decoder bias are plain parameters (no nn.Embedding or
    nn.Linear), so `reset_parameters` alone decides their initialisation: U(-0.04, 0.04) and 0, as the
    released code (random search re-initialises every candidate through it)."""

    def __init__(self, vocab_size: int, embedding_size: int, cell: HighwayCell, dropouts: Dropouts) -> None:
        super().__init__()
        if embedding_size != cell.hidden_size:
            raise ValueError(f"the decoder is tied to the embedding, so the embedding size {embedding_size} must "
                             f"equal the hidden size {cell.hidden_size}")
        self.dropouts = dropouts
        self.embedding = nn.Parameter(torch.empty(vocab_size, embedding_size))
        self.decoder_bias = nn.Parameter(torch.empty(vocab_size))
        self.cell = cell
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.embedding, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder_bias)

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def init_hidden(self, batch: int) -> torch.Tensor:
        return self.embedding.new_zeros(batch, self.hidden_size)

    def forward(self, tokens: torch.Tensor, arch: ArchWeights | None = None,
                hidden: torch.Tensor | None = None) -> LmOutput:
        """`tokens [T, B]` -> log-probabilities of the next word at every position; `hidden [B, H]` is the
        state carried from the previous window (zeros when None); `arch` mixes a search cell's activations
        (its "recurrent" weights) and is None for an evaluation cell."""
        drops = self.dropouts
        if hidden is None:
            hidden = self.init_hidden(tokens.shape[1])
        embedded = embedded_dropout(self.embedding, tokens, drops.embedding_words, self.training)
        embedded = locked_dropout(embedded, drops.embedding, self.training)
        raw, hidden = self.cell(embedded, hidden, arch)
        dropped = locked_dropout(raw, drops.output, self.training)
        log_probs = F.log_softmax(F.linear(dropped, self.embedding, self.decoder_bias), dim=-1)
        return LmOutput(log_probs=log_probs, hidden=hidden, raw_outputs=raw, dropped_outputs=dropped)
