"""Architecture weights -> recurrent genotype, as quark0/darts rnn/model_search.py `genotype()` parses them.

For each node: the incoming edge whose best non-`none` weight is largest (the first such edge on ties),
then that edge's best non-`none` activation. All searched nodes are averaged (concat 1..steps).
"""

from __future__ import annotations

import torch

from pipeline.space.rnn.genotype import RecurrentGenotype
from pipeline.space.rnn.operations import NONE, PRIMITIVES, edge_index, num_edges


def derive_recurrent(probabilities: torch.Tensor) -> RecurrentGenotype:
    """`probabilities [num_edges, len(PRIMITIVES)]` (any weights where larger means better)."""
    rows = probabilities.shape[0]
    steps = next((s for s in range(1, rows + 1) if num_edges(s) == rows), None)
    if steps is None or probabilities.shape[1] != len(PRIMITIVES):
        raise ValueError(f"recurrent architecture weights have shape [1+2+...+steps, {len(PRIMITIVES)}], "
                         f"got {tuple(probabilities.shape)}")
    candidates = [column for column, name in enumerate(PRIMITIVES) if name != NONE]
    scores = probabilities.detach().to("cpu", torch.float64)[:, candidates]
    recurrent = []
    for node in range(1, steps + 1):
        edges = scores[edge_index(node, 0):edge_index(node, 0) + node]
        best_per_edge = edges.max(dim=1).values
        source = int(torch.nonzero(best_per_edge == best_per_edge.max())[0])
        op = candidates[int(torch.nonzero(edges[source] == edges[source].max())[0])]
        recurrent.append((PRIMITIVES[op], source))
    return RecurrentGenotype(recurrent=tuple(recurrent), concat=tuple(range(1, steps + 1)))
