"""The four simplified DARTS spaces S1-S4 of Zela et al. (ICLR 2020, "Understanding and Robustifying
Differentiable Architecture Search"), used by SDARTS (Table 4/5) and DrNAS (Table 6).

They keep the DARTS CNN cell (14 edges, 4 intermediate nodes, normal and reduction cells) and change only
the candidate operations on each edge, so each is a `CnnSpace` that names its candidates (S2-S4 offer the
same ones on every edge, of any cell size; S1's pairs exist for the 4-node cell only).

The SDARTS text lost its Figure 6 (S1's per-edge pairs), so the lists below are transcribed from the
authors' released code, automl/RobustDARTS `src/spaces.py`
(`primitives_1` .. `primitives_4`), in its edge order, which is ours too: node by node, inputs in order
(edge 0: c_{k-2} -> node 2, edge 1: c_{k-1} -> node 2, edge 2: c_{k-2} -> node 3, ...). The order of
the candidates within an edge is the code's as well: it fixes the columns of the architecture weights.
"""

from __future__ import annotations

from pipeline.space.base import register_space
from pipeline.space.cnn import CnnSpace
from pipeline.space.genotype import num_edges

EdgeOps = tuple[tuple[str, ...], ...]

_NODES = 4  # R-DARTS lists S1's pairs for the DARTS cell's 14 edges (2 + 3 + 4 + 5)

# S1: two operations per edge, a different pair on each edge (the pairs DARTS weighted highest in the
# authors' runs on the full space).
_S1_NORMAL: EdgeOps = (
    ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"),
    ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "sep_conv_3x3"),
    ("max_pool_3x3", "skip_connect"),
    ("skip_connect", "dil_conv_3x3"),
    ("dil_conv_3x3", "dil_conv_5x5"),
    ("dil_conv_3x3", "dil_conv_5x5"),
)
_S1_REDUCE: EdgeOps = (
    ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "dil_conv_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "sep_conv_3x3"),
    ("skip_connect", "dil_conv_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("max_pool_3x3", "avg_pool_3x3"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
    ("skip_connect", "dil_conv_5x5"),
)


_S1_EDGE_OPS: dict[str, EdgeOps] = {"normal": _S1_NORMAL, "reduce": _S1_REDUCE}


@register_space("s1")
class S1(CnnSpace):
    """S1: a different pair of operations on each of the 14 edges of each cell type."""

    def edge_ops(self, cell: str, nodes: int) -> EdgeOps:
        if nodes != _NODES:
            raise ValueError(f"space 's1' is defined for cells of {_NODES} intermediate nodes ({num_edges(_NODES)} "
                             f"edges, one operation pair each), but search.nodes is {nodes}")
        return _S1_EDGE_OPS[cell]


@register_space("s2")
class S2(CnnSpace):
    """S2: skip connection or 3x3 separable convolution on every edge."""

    primitives = ("skip_connect", "sep_conv_3x3")


@register_space("s3")
class S3(CnnSpace):
    """S3: S2 plus the zero operation (`none`) on every edge."""

    primitives = ("none", "skip_connect", "sep_conv_3x3")


@register_space("s4")
class S4(CnnSpace):
    """S4: the harmful `noise` operation (N(0, 1), pipeline/space/primitives.py) or a 3x3 separable
    convolution on every edge."""

    primitives = ("noise", "sep_conv_3x3")
