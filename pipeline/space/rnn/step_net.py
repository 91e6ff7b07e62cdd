"""The search language model as the methods and the shared search step (pipeline/search/step.py) see a
supernet: `net(x, arch)` returns logits, `criterion(logits, y)` the loss.

`x` is a `TokenWindow`: tokens `[T, B]` plus the hidden state the window starts from, because a window
continues the text of the previous window of its stream (training and search-validation streams carry
separate states, as quark0/darts rnn/train_search.py does). The logits are the log-probabilities of every
predicted token, flattened to `[T * B, vocab]`, so `nn.NLLLoss()` on `flat_targets` is the
language-model loss. Each forward leaves the window's final state, detached, in `window.final`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.space.base import ArchWeights
from pipeline.space.rnn.model import RNNLanguageModel


@dataclass
class TokenWindow:
    tokens: torch.Tensor
    hidden: torch.Tensor | None = None
    final: torch.Tensor | None = None


class TokenWindowNet(nn.Module):
    def __init__(self, model: RNNLanguageModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, window: TokenWindow, arch: ArchWeights | None = None) -> torch.Tensor:
        out = self.model(window.tokens, arch, window.hidden)
        window.final = out.hidden.detach()
        return out.log_probs.reshape(-1, out.log_probs.shape[-1])


def flat_targets(targets: torch.Tensor) -> torch.Tensor:
    """`[T, B]` targets in the order of TokenWindowNet's logits."""
    return targets.reshape(-1)


def window_batch(rows: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[TokenWindow, torch.Tensor]:
    """The batch `(x, y)` of `rows [T + 1, B]` of text: rows 0..T-1 predict rows 1..T."""
    return TokenWindow(rows[:-1], hidden), flat_targets(rows[1:])
