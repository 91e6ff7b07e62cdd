"""Genotypes: the discrete cell architectures a search hands to retraining.

A genotype is the only thing that crosses from search to evaluation, so every one is validated when it is
made (`Genotype.__post_init__`) and every file is checked when it is read: a typo in a hand-written
genotype or a truncated file must fail at load time with its location, not as a shape error deep inside a
network. The JSON layout is the contract of `shared/design.md`.

Node numbering follows DARTS: nodes 0 and 1 are the outputs of the two previous cells, `normal[k]` lists
the (operation, input node) pairs summed into intermediate node `k + 2`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.atomic import atomic_write_text
from pipeline.errors import GenotypeError
from pipeline.space.primitives import PARAMETER_FREE

Pair = tuple[str, int]
Node = tuple[Pair, ...]

CELLS = ("normal", "reduce")
_REQUIRED_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat", "search_space")
# Hand-written genotypes (a published cell typed in from a paper) have no run to point to.
_OPTIONAL_KEYS = ("provenance",)


@dataclass(frozen=True)
class Genotype:
    """Both cells of an architecture; construction fails with `GenotypeError` unless it is well formed."""

    normal: tuple[Node, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Node, ...]
    reduce_concat: tuple[int, ...]
    search_space: str = "darts"
    # Where the genotype came from; compared (round trips keep it) but not hashed (a dict is unhashable).
    provenance: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def nodes(self) -> int:
        """Number of intermediate nodes per cell."""
        return len(self.normal)

    def to_json(self) -> dict[str, Any]:
        return genotype_to_dict(self)

    @classmethod
    def from_json(cls, obj: Any, source: str = "genotype") -> Genotype:
        try:
            return genotype_from_dict(obj)
        except GenotypeError as exc:
            raise GenotypeError(f"{source}: {exc}") from None


def _cnn_space(name: Any) -> Any:
    """The registered DARTS-cell space `name` (imported here: the spaces import this module)."""
    from pipeline.space.base import get_space, list_spaces
    from pipeline.space.cnn import CnnSpace

    try:
        space = get_space(name) if isinstance(name, str) else None
    except KeyError:
        space = None
    if not isinstance(space, CnnSpace):
        known = [n for n in list_spaces() if isinstance(get_space(n), CnnSpace)]
        raise GenotypeError(f"search_space: {name!r} is not a registered DARTS-cell space; expected one of {known}")
    return space


def _validate(g: Genotype) -> None:
    space = _cnn_space(g.search_space)
    if not isinstance(g.provenance, dict):
        raise GenotypeError(f"provenance: expected an object, got {type(g.provenance).__name__}")
    for cell in CELLS:
        nodes = getattr(g, cell)
        if not isinstance(nodes, tuple) or not nodes:
            raise GenotypeError(f"{cell}: expected a non-empty list of nodes")
    if len(g.normal) != len(g.reduce):
        raise GenotypeError(
            f"reduce: has {len(g.reduce)} nodes but normal has {len(g.normal)}; both cells of a search space "
            "have the same node count"
        )
    for cell in CELLS:
        for k, node in enumerate(getattr(g, cell)):
            _validate_node(cell, k + 2, node, lambda source, c=cell, n=k + 2: space.candidates(c, n, source, g.nodes),
                           g.search_space)
    for cell in CELLS:
        _validate_concat(f"{cell}_concat", getattr(g, f"{cell}_concat"), len(g.normal))


def _validate_node(cell: str, node: int, pairs: Node, candidates: Any, space: str) -> None:
    """`candidates(source)`: the operations the edge (source -> node) offers in `space`."""
    where = f"{cell} cell, node {node}"
    if not isinstance(pairs, tuple) or not pairs:
        raise GenotypeError(f"{where}: expected a non-empty list of [operation, input] pairs")
    for p, pair in enumerate(pairs):
        at = f"{where}, pair {p}"
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise GenotypeError(f"{at}: expected [operation, input], got {pair!r}")
        op, source = pair
        if op == "none":
            raise GenotypeError(f"{at}: 'none' is not allowed in a derived genotype (it contributes nothing)")
        if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < node:
            raise GenotypeError(
                f"{at} ({op}): input {source!r} is out of range; node {node} reads nodes 0..{node - 1}"
            )
        known = candidates(source)
        if not isinstance(op, str) or op not in known:
            raise GenotypeError(
                f"{at}: unknown operation {op!r} for search space '{space}' on the edge from node {source}; "
                f"expected one of {', '.join(o for o in known if o != 'none')}"
            )


def _validate_concat(key: str, concat: tuple[int, ...], nodes: int) -> None:
    last = nodes + 1
    if not isinstance(concat, tuple) or not concat:
        raise GenotypeError(f"{key}: expected a non-empty list of node indices")
    for i, index in enumerate(concat):
        if isinstance(index, bool) or not isinstance(index, int) or not 2 <= index <= last:
            raise GenotypeError(f"{key}[{i}]: {index!r} is not an intermediate node; expected 2..{last}")
    if list(concat) != sorted(set(concat)):
        raise GenotypeError(f"{key}: {list(concat)} must be strictly increasing (no repeats)")


def genotype_to_dict(g: Genotype) -> dict[str, Any]:
    """The design.md JSON object of `g`."""
    return {
        "normal": [[[op, source] for op, source in node] for node in g.normal],
        "normal_concat": list(g.normal_concat),
        "reduce": [[[op, source] for op, source in node] for node in g.reduce],
        "reduce_concat": list(g.reduce_concat),
        "search_space": g.search_space,
        "provenance": dict(g.provenance),
    }


def genotype_from_dict(obj: Any) -> Genotype:
    """Parse and validate a design.md JSON object; the first problem is raised as `GenotypeError`."""
    if not isinstance(obj, Mapping):
        raise GenotypeError(f"expected a JSON object, got {type(obj).__name__}")
    extra = sorted(set(obj) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if extra:
        raise GenotypeError(f"unknown key(s) {extra}; allowed: {list(_REQUIRED_KEYS + _OPTIONAL_KEYS)}")
    missing = [key for key in _REQUIRED_KEYS if key not in obj]
    if missing:
        raise GenotypeError(f"missing key(s) {missing}")
    return Genotype(
        normal=_parse_cell("normal", obj["normal"]),
        normal_concat=_parse_list("normal_concat", obj["normal_concat"]),
        reduce=_parse_cell("reduce", obj["reduce"]),
        reduce_concat=_parse_list("reduce_concat", obj["reduce_concat"]),
        search_space=obj["search_space"],
        provenance=obj.get("provenance", {}),
    )


def _parse_list(key: str, value: Any) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise GenotypeError(f"{key}: expected a list, got {type(value).__name__}")
    return tuple(value)


def _parse_cell(cell: str, value: Any) -> tuple[Node, ...]:
    nodes = _parse_list(cell, value)
    parsed = []
    for k, node in enumerate(nodes):
        pairs = _parse_list(f"{cell} cell, node {k + 2}", node)
        parsed.append(tuple(tuple(pair) if isinstance(pair, list) else pair for pair in pairs))
    return tuple(parsed)


def _genotype_json(obj: dict[str, Any]) -> str:
    # One node per line: a genotype file is read (and diffed) by people comparing cells.
    members = []
    for key in sorted(obj):
        if key in CELLS:
            nodes = ",\n".join(f"    {json.dumps(node)}" for node in obj[key])
            members.append(f'  "{key}": [\n{nodes}\n  ]')
        else:
            members.append(f"  {json.dumps(key)}: {json.dumps(obj[key], sort_keys=True)}")
    return "{\n" + ",\n".join(members) + "\n}\n"


def save_genotype(path: Path | str, g: Genotype) -> None:
    """Write `g` as design.md JSON, atomically."""
    atomic_write_text(path, _genotype_json(genotype_to_dict(g)))


def load_genotype(path: Path | str) -> Any:
    """Read and validate a genotype file of any registered space (its `search_space` picks the parser);
    every failure names the file."""
    from pipeline.space.base import genotype_from_json

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GenotypeError(f"{path}: genotype file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GenotypeError(f"{path}: cannot read genotype file: {exc}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise GenotypeError(f"{path}: not valid JSON ({where}: {exc.msg})") from None
    return genotype_from_json(obj, str(path))


def _node_name(index: int) -> str:
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else f"node {index}"


def render_genotype(g: Genotype) -> str:
    """Readable text of both cells, one line per node (`node 2 <- sep_conv_3x3(c_{k-2}) + ...`)."""
    lines = []
    for cell, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        lines.append(f"{title} (output: concat of nodes {', '.join(map(str, getattr(g, f'{cell}_concat')))})")
        for k, node in enumerate(getattr(g, cell)):
            terms = " + ".join(f"{op}({_node_name(source)})" for op, source in node)
            lines.append(f"  node {k + 2} <- {terms}")
    return "\n".join(lines)


def num_edges(nodes: int) -> int:
    """Edges of a cell with `nodes` intermediate nodes (node i has i inputs): 14 for 4 nodes."""
    return sum(k + 2 for k in range(nodes))


def edge_index(node: int, source: int) -> int:
    """Row of the edge (source -> node) in the `[num_edges, num_ops]` weights (docs/architecture.md order)."""
    if node < 2 or not 0 <= source < node:
        raise ValueError(f"no edge from node {source} to node {node}")
    return num_edges(node - 2) + source


def _as_matrix(name: str, weights: Any, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().to("cpu", torch.float64).numpy()
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != shape:
        raise GenotypeError(f"{name}: shape {tuple(array.shape)}, expected {shape}")
    if not np.isfinite(array).all():
        raise GenotypeError(f"{name}: contains NaN or Inf; the search diverged")
    return array


def _top2_cell(weights: np.ndarray, edge_ops: Sequence[Sequence[str]], nodes: int) -> tuple[Node, ...]:
    cell = []
    for node in range(2, nodes + 2):
        best: list[tuple[float, str]] = []
        for source in range(node):
            edge = edge_index(node, source)
            scored = [(weights[edge, i], op) for i, op in enumerate(edge_ops[edge]) if op != "none"]
            # max keeps the first of equal weights: the lower candidate index wins, as numpy's argmax.
            best.append(max(scored, key=lambda pair: pair[0]) if scored else (-np.inf, "none"))
        # Stable sort: on a tie the lower input wins, as in DARTS' own `sorted`.
        ranked = sorted(range(node), key=lambda source: -best[source][0])[:2]
        if any(best[s][1] == "none" for s in ranked):
            raise GenotypeError(f"node {node}: fewer than two inputs offer an operation other than 'none'")
        cell.append(tuple((best[s][1], s) for s in ranked))
    return tuple(cell)


def derive_top2(
    weights: Mapping[str, Any],
    edge_ops: Mapping[str, Sequence[Sequence[str]]],
    search_space: str,
    *,
    edge_scores: Mapping[str, Any] | None = None,
) -> Genotype:
    """The DARTS rule: per node keep the 2 inputs whose best non-`none` weight is largest, each with its
    argmax non-`none` op.

    `weights[cell]` is a `[num_edges, num_candidates]` array or tensor (docs/architecture.md edge order)
    whose column i on edge e weighs `edge_ops[cell][e][i]`, for both cell types. `edge_scores[cell]`, a
    `[num_edges]` vector, multiplies each edge's weights before ranking (PC-DARTS edge normalisation).
    Pairs are listed best edge first, as DARTS prints them.
    """
    cells = []
    for cell in CELLS:
        ops = edge_ops[cell]
        nodes = _nodes_of(len(ops))
        shape = (len(ops), len(ops[0]))
        matrix = _as_matrix(f"{cell} weights", weights[cell], shape)
        if edge_scores is not None:
            matrix = matrix * _as_matrix(f"{cell} edge scores", edge_scores[cell], shape[:1])[:, None]
        cells.append(_top2_cell(matrix, ops, nodes))
    concat = tuple(range(2, len(cells[0]) + 2))
    return Genotype(cells[0], concat, cells[1], concat, search_space=search_space)


def _nodes_of(edges: int) -> int:
    """The node count of a DARTS cell with `edges` edges."""
    nodes = 0
    while num_edges(nodes) < edges:
        nodes += 1
    if num_edges(nodes) != edges:
        raise GenotypeError(f"{edges} edges do not make a DARTS cell (2, 5, 9, 14, ... edges)")
    return nodes


def param_free_ratio(g: Genotype) -> float:
    """Share of parameter-free ops among the normal cell's pairs: the skip-collapse signal of history.csv."""
    pairs = [op for node in g.normal for op, _ in node]
    return sum(op in PARAMETER_FREE for op in pairs) / len(pairs)
