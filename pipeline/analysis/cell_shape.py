"""Cell depth and width as SDARTS (appendix 7.4) defines them, after Shu et al. (2020).

Depth: connections on the longest path from the input nodes to the output node (the edge into the
output concat counts: DARTS' cell has depth 3, PC-DARTS' 2). Width: the summed width of intermediate
nodes fed by the input nodes, each node having width c, reduced by the share of its incoming
connections that come from other intermediate nodes (DARTS: 3.5c, PC-DARTS: 4c). Returned in units of c.
DARTS-like searches drift to wide, shallow cells; these numbers make that visible per epoch.
"""

from __future__ import annotations

from pipeline.space.genotype import Genotype, Node


def cell_depth(cell: tuple[Node, ...]) -> int:
    """Longest input-to-output path, counting the final connection into the cell output."""
    depth = [0, 0]
    for pairs in cell:
        depth.append(1 + max(depth[source] for _, source in pairs))
    return max(depth[2:]) + 1


def cell_width(cell: tuple[Node, ...]) -> float:
    """Sum over nodes of the share of their incoming connections that come from the input nodes."""
    return sum(sum(source < 2 for _, source in pairs) / len(pairs) for pairs in cell)


def genotype_shape(g: Genotype) -> dict[str, float]:
    return {"normal_depth": cell_depth(g.normal), "normal_width": cell_width(g.normal),
            "reduce_depth": cell_depth(g.reduce), "reduce_width": cell_width(g.reduce)}
