"""A user's own search space, as a plugin module: a DARTS cell whose every edge offers its own pair of ops.

Used by tests/test_spaces.py, which names it under `plugins:` in a params file (copied next to it) and runs
the stage commands on it with no edit to the package. The pairs make S1's shape (a different pair per
edge) without copying S1's lists: edge e offers the e-th and (e+1)-th of the seven non-`none` ops.
"""

from __future__ import annotations

from pipeline.space.base import register_space
from pipeline.space.cnn import CnnSpace
from pipeline.space.genotype import num_edges
from pipeline.space.primitives import PRIMITIVES_NO_NONE


def edge_pair(edge: int) -> tuple[str, str]:
    ops = PRIMITIVES_NO_NONE
    return ops[edge % len(ops)], ops[(edge + 1) % len(ops)]


@register_space("toy_pairs")
class ToyPairs(CnnSpace):
    """A toy S1-shaped space: a different pair of candidates on every edge, the same in both cell types."""

    def edge_ops(self, cell: str, nodes: int) -> tuple[tuple[str, ...], ...]:
        return tuple(edge_pair(edge) for edge in range(num_edges(nodes)))

    def compatible(self, algorithm: str) -> str | None:
        return "the toy space refuses random search, to test the refusal" if algorithm == "random" else None
