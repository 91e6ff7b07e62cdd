"""Perplexity: exp of the mean negative log-likelihood per predicted token.

The released scripts weight each window's mean loss by its length and divide by the number of rows of
the batchified data, one more than the rows predicted; the exact mean over predicted tokens is used here.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from pipeline.data.text import evaluation_windows, window
from pipeline.space.base import ArchWeights
from pipeline.space.rnn.model import RNNLanguageModel


def perplexity(mean_nll: float) -> float:
    return math.exp(mean_nll)


def evaluate_nll(model: RNNLanguageModel, source: torch.Tensor, bptt: int,
                 arch: ArchWeights | None = None) -> float:
    """Mean NLL (nats per token) of `source [rows, batch]`, the hidden state carried across windows."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    hidden = model.init_hidden(source.shape[1]).to(source.device)
    with torch.no_grad():
        for where in evaluation_windows(len(source), bptt):
            inputs, targets = window(source, where)
            out = model(inputs, arch, hidden)
            total += F.nll_loss(out.log_probs.reshape(-1, out.log_probs.shape[-1]), targets.reshape(-1),
                                reduction="sum").item()
            tokens += targets.numel()
            hidden = out.hidden
    model.train(was_training)
    return total / tokens
