"""Parameters and multiply-adds of an evaluation network, counted on the module itself.

The model is built on PyTorch's meta device, so counting the 23M-parameter PTB model allocates nothing.
Multiply-adds are those of one token's step: the matrix products of the cell (W0 and every W_i) and of the
decoder; the embedding is a lookup and the elementwise gates are not counted.
"""

from __future__ import annotations

import torch

from pipeline.space.rnn.build import build_network
from pipeline.space.rnn.genotype import RecurrentGenotype
from pipeline.space.rnn.model import Dropouts


def count(genotype: RecurrentGenotype, vocab_size: int, size: int) -> dict[str, int]:
    """`{"params", "mult_adds"}`; the tied decoder weight counts once."""
    with torch.device("meta"):
        model = build_network(genotype, vocab_size, size, Dropouts())
    params = sum(p.numel() for p in model.parameters())
    products = [model.cell.w0, *model.cell.ws, model.embedding]  # the decoder multiplies by the embedding
    return {"params": params, "mult_adds": sum(p.numel() for p in products)}
