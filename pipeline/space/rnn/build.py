"""The two language models of the space: the search supernet and the evaluation network of a genotype."""

from __future__ import annotations

from pipeline.space.rnn.cell import RecurrentCell
from pipeline.space.rnn.genotype import RecurrentGenotype
from pipeline.space.rnn.model import Dropouts, RNNLanguageModel
from pipeline.space.rnn.search_cell import SearchRecurrentCell


def build_network(genotype: RecurrentGenotype, vocab_size: int, size: int, dropouts: Dropouts) -> RNNLanguageModel:
    """The evaluation model: embedding = hidden = `size` (DARTS: 850 on PTB, 700 on WikiText-2)."""
    return RNNLanguageModel(vocab_size, size, RecurrentCell(size, size, genotype, dropouts.input, dropouts.hidden),
                            dropouts)


def build_search_model(vocab_size: int, size: int, steps: int, dropouts: Dropouts,
                       batch_norm: bool = True) -> RNNLanguageModel:
    """The supernet: `forward(tokens, hidden, weights)` mixes activations by `weights [num_edges, 5]`."""
    cell = SearchRecurrentCell(size, size, steps, dropouts.input, dropouts.hidden, batch_norm)
    return RNNLanguageModel(vocab_size, size, cell, dropouts)
