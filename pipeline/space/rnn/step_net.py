"""The search language model as the shared search step (pipeline/search/step.py) and the methods see a
supernet: `net(x, arch)` returns logits, `criterion(logits, y)` the loss.

`x` is a window of tokens `[T, B]`; the logits are the log-probabilities of every predicted token,
flattened to `[T * B, vocab]`, so `nn.NLLLoss()` on the flattened targets is the language-model loss. A
window continues the text of the previous one, so the forward starts from `hidden` (set by the caller
for the stream the window comes from; None starts from zeros) and leaves its final state in
`last_hidden`, detached.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.space.base import ArchWeights
from pipeline.space.rnn.model import RNNLanguageModel


class TokenWindowNet(nn.Module):
    def __init__(self, model: RNNLanguageModel) -> None:
        super().__init__()
        self.model = model
        self.hidden: torch.Tensor | None = None
        self.last_hidden: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor, arch: ArchWeights | None = None) -> torch.Tensor:
        out = self.model(tokens, arch, self.hidden)
        self.last_hidden = out.hidden.detach()
        return out.log_probs.reshape(-1, out.log_probs.shape[-1])


def flat_targets(targets: torch.Tensor) -> torch.Tensor:
    """`[T, B]` targets in the order of TokenWindowNet's logits."""
    return targets.reshape(-1)
