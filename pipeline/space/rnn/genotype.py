"""The derived recurrent cell: `recurrent[k] = (activation, input)` makes node k+1, `concat` lists the nodes
averaged into the cell's output. JSON: `{"recurrent": [[op, input], ...], "concat": [...],
"search_space": "rnn"}`; loading validates names and indices and reports the first problem precisely.

The released cells load exactly as quark0/darts rnn/genotypes.py publishes them: DARTS_V1 (first order),
DARTS_V2 (second order, DARTS Table 2's 23M-parameter cell) and ENAS (Pham et al.'s PTB cell written in
DARTS' notation: 11 nodes, 6 of them averaged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import GenotypeError
from pipeline.space.rnn.operations import ACTIVATIONS

SPACE_NAME = "rnn"
_KEYS = ("recurrent", "concat", "search_space", "provenance")


@dataclass(frozen=True)
class RecurrentGenotype:
    recurrent: tuple[tuple[str, int], ...]
    concat: tuple[int, ...]
    provenance: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def search_space(self) -> str:
        return SPACE_NAME

    @property
    def steps(self) -> int:
        return len(self.recurrent)

    def to_json(self) -> dict[str, Any]:
        return {"recurrent": [[op, source] for op, source in self.recurrent], "concat": list(self.concat),
                "search_space": SPACE_NAME, "provenance": dict(self.provenance)}

    @classmethod
    def from_json(cls, obj: Any, source: str = "genotype") -> RecurrentGenotype:
        """Validate `obj` (parsed JSON) and build the genotype; `source` names the file in errors."""
        if not isinstance(obj, dict):
            raise GenotypeError(f"{source}: a recurrent genotype is a JSON object, got {type(obj).__name__}")
        space = obj.get("search_space", SPACE_NAME)
        if space != SPACE_NAME:
            raise GenotypeError(f"{source}: search_space is {space!r}, not the recurrent space {SPACE_NAME!r}")
        missing = [key for key in ("recurrent", "concat") if key not in obj]
        if missing:
            raise GenotypeError(f"{source}: missing key(s) {', '.join(missing)}")
        unknown = sorted(set(obj) - set(_KEYS))
        if unknown:
            raise GenotypeError(f"{source}: unknown key(s) {', '.join(unknown)}; a recurrent genotype has "
                                f"{', '.join(_KEYS)}")
        provenance = obj.get("provenance", {})
        if not isinstance(provenance, dict):
            raise GenotypeError(f"{source}: provenance must be an object, got {type(provenance).__name__}")
        recurrent = obj["recurrent"]
        if not isinstance(recurrent, list) or not recurrent:
            raise GenotypeError(f"{source}: recurrent must be a non-empty list of [op, input] pairs")
        pairs = tuple(_pair(item, node, source) for node, item in enumerate(recurrent, start=1))
        concat = _concat(obj["concat"], len(pairs), source)
        return cls(recurrent=pairs, concat=concat, provenance=provenance)

    def render(self) -> str:
        """One line per node, then the averaged nodes (for `inspect`)."""
        lines = [f"node {node}: {op}(node {source})" for node, (op, source) in enumerate(self.recurrent, start=1)]
        return "\n".join([*lines, f"output: mean of nodes {list(self.concat)}"])


def _pair(item: Any, node: int, source: str) -> tuple[str, int]:
    where = f"{source}: recurrent[{node - 1}] (node {node})"
    if not (isinstance(item, list | tuple) and len(item) == 2):
        raise GenotypeError(f"{where}: expected [op, input], got {item!r}")
    op, input_node = item
    if op not in ACTIVATIONS:
        raise GenotypeError(f"{where}: unknown op {op!r}; expected one of {', '.join(ACTIVATIONS)}")
    if type(input_node) is not int or not 0 <= input_node < node:
        raise GenotypeError(f"{where}: input {input_node!r} must be an earlier node, an integer in 0..{node - 1}")
    return op, input_node


def _concat(value: Any, steps: int, source: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple | range) or not value:
        raise GenotypeError(f"{source}: concat must be a non-empty list of node numbers")
    nodes = tuple(value)
    for node in nodes:
        if type(node) is not int or not 1 <= node <= steps:
            raise GenotypeError(f"{source}: concat entry {node!r} must be a node in 1..{steps}")
    if len(set(nodes)) != len(nodes):
        raise GenotypeError(f"{source}: concat {list(nodes)} lists a node twice")
    return nodes


def _released(recurrent: list[tuple[str, int]], concat: range | list[int], name: str) -> RecurrentGenotype:
    return RecurrentGenotype.from_json({"recurrent": [list(pair) for pair in recurrent], "concat": list(concat)}, name)


# quark0/darts rnn/genotypes.py, as published (DARTS = DARTS_V2 there).
RELEASED: dict[str, RecurrentGenotype] = {
    "DARTS_V1": _released([("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3), ("relu", 4), ("identity", 1),
                           ("relu", 5), ("relu", 1)], range(1, 9), "DARTS_V1"),
    "DARTS_V2": _released([("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1), ("tanh", 2), ("sigmoid", 5),
                           ("tanh", 3), ("relu", 5)], range(1, 9), "DARTS_V2"),
    "ENAS": _released([("tanh", 0), ("tanh", 1), ("relu", 1), ("tanh", 3), ("tanh", 3), ("relu", 3), ("relu", 4),
                       ("relu", 7), ("relu", 8), ("relu", 8), ("relu", 8)], [2, 5, 6, 9, 10, 11], "ENAS"),
}
