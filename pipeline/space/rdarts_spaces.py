"""The four simplified DARTS spaces S1-S4 of Zela et al. (ICLR 2020, "Understanding and Robustifying
Differentiable Architecture Search"), used by SDARTS (Table 4/5) and DrNAS (Table 6).

They keep the DARTS CNN cell (14 edges, 4 intermediate nodes, normal and reduction cells) and change only
the candidate operations on each edge. The SDARTS text lost its Figure 6 (S1's per-edge pairs), so the
lists below are transcribed from the authors' released code, automl/RobustDARTS `src/spaces.py`
(`primitives_1` .. `primitives_4`), in its edge order, which is ours too: node by node, inputs in order
(edge 0: c_{k-2} -> node 2, edge 1: c_{k-1} -> node 2, edge 2: c_{k-2} -> node 3, ...). The order of
the candidates within an edge is the code's as well: it fixes the columns of the architecture weights.
"""

from __future__ import annotations

EdgeOps = tuple[tuple[str, ...], ...]

_EDGES = 14  # 4 intermediate nodes: 2 + 3 + 4 + 5 edges

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


def _same_on_every_edge(ops: tuple[str, ...]) -> dict[str, EdgeOps]:
    return {"normal": (ops,) * _EDGES, "reduce": (ops,) * _EDGES}


# Space name -> cell type -> candidate operations of each edge.
RDARTS_EDGE_OPS: dict[str, dict[str, EdgeOps]] = {
    "s1": {"normal": _S1_NORMAL, "reduce": _S1_REDUCE},
    "s2": _same_on_every_edge(("skip_connect", "sep_conv_3x3")),
    "s3": _same_on_every_edge(("none", "skip_connect", "sep_conv_3x3")),
    "s4": _same_on_every_edge(("noise", "sep_conv_3x3")),
}
