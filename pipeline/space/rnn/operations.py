"""The candidate operations of every edge of the recurrent cell: activations applied inside a highway node.

Names and order as quark0/darts rnn/genotypes.py PRIMITIVES, so an architecture-weight column means the
same activation as in the released code. `none` drops the edge; it never appears in a genotype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NONE = "none"
PRIMITIVES: tuple[str, ...] = (NONE, "tanh", "relu", "sigmoid", "identity")
CELL = "recurrent"  # the one searched cell type; its architecture weights are ArchWeights["recurrent"]
STEPS = 8  # DARTS: 8 searched nodes after the first (rnn/genotypes.py STEPS)

Activation = Callable[[torch.Tensor], torch.Tensor]
ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def edge_index(node: int, source: int) -> int:
    """Row of the architecture weights of the edge `source -> node` (nodes numbered from 1; node 0 is the
    first, unsearched state). Node i has i incoming edges, from nodes 0 .. i-1, listed node by node."""
    if not 0 <= source < node:
        raise ValueError(f"node {node} has inputs 0..{node - 1}, not {source}")
    return node * (node - 1) // 2 + source


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` searched nodes: 1 + 2 + ... + steps (36 for DARTS' 8)."""
    return steps * (steps + 1) // 2
