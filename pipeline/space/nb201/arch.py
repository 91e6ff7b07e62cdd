"""NAS-Bench-201 genotypes: the benchmark's own architecture string, parsed, validated and written.

A cell has nodes 0..3; node i >= 1 sums one op applied to every earlier node, so there are six edges.
The string lists node 1, 2, 3 separated by `+`, each as `|op~j|` for inputs j = 0..i-1
(NAS-Bench-201 Sec. 2.1; `Structure.tostr` in D-X-Y/AutoDL-Projects), e.g.
`|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|`.
The benchmark indexes architectures by exactly this canonical form, so a string whose inputs are out of
order or missing is refused rather than reordered: a query with it would miss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.atomic import atomic_write_text
from pipeline.errors import GenotypeError

if TYPE_CHECKING:  # torch only where weights are read: the tables stage parses strings without it
    import torch

# The order of the benchmark's `NAS_BENCH_201` list: architecture weights are indexed by it.
NB201_OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

SPACE_NAME = "nb201"
NODES = 4  # node 0 is the cell input, node 3 its output
# (node, input) of every edge, node by node, inputs in order: the row order of architecture weights.
EDGES: tuple[tuple[int, int], ...] = tuple((i, j) for i in range(1, NODES) for j in range(i))
_JSON_KEYS = ("arch", "search_space")
_OPTIONAL_KEYS = ("provenance",)


@dataclass(frozen=True)
class Nb201Arch:
    """One op per edge in `EDGES` order; construction fails with `GenotypeError` unless every op is known."""

    ops: tuple[str, ...]
    provenance: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.ops) != len(EDGES):
            raise GenotypeError(f"expected {len(EDGES)} edge operations, got {len(self.ops)}")
        for (node, source), op in zip(EDGES, self.ops, strict=True):
            if op not in NB201_OPS:
                raise GenotypeError(f"node {node}, input {source}: unknown operation {op!r}; "
                                    f"known: {', '.join(NB201_OPS)}")

    @property
    def search_space(self) -> str:
        return SPACE_NAME

    def op(self, node: int, source: int) -> str:
        return self.ops[EDGES.index((node, source))]

    def to_string(self) -> str:
        groups = []
        for node in range(1, NODES):
            groups.append("|" + "|".join(f"{self.op(node, j)}~{j}" for j in range(node)) + "|")
        return "+".join(groups)

    @classmethod
    def from_string(cls, text: Any, provenance: dict[str, Any] | None = None) -> Nb201Arch:
        """Parse the canonical architecture string; the first problem is raised naming the node and input."""
        if not isinstance(text, str):
            raise GenotypeError(f"architecture string: expected a string, got {type(text).__name__}")
        groups = text.split("+")
        if len(groups) != NODES - 1:
            raise GenotypeError(f"architecture string {text!r}: expected {NODES - 1} nodes separated by '+', "
                                f"got {len(groups)}")
        ops = []
        for node, group in enumerate(groups, start=1):
            if len(group) < 2 or not (group.startswith("|") and group.endswith("|")):
                raise GenotypeError(f"node {node} {group!r}: expected '|op~input|...|' (starts and ends with '|')")
            entries = group[1:-1].split("|")
            if len(entries) != node:
                raise GenotypeError(f"node {node} {group!r}: expected {node} inputs (0..{node - 1}), "
                                    f"got {len(entries)}")
            for source, entry in enumerate(entries):
                op, sep, index = entry.partition("~")
                if not sep:
                    raise GenotypeError(f"node {node}, entry {entry!r}: expected 'op~input'")
                if index != str(source):
                    raise GenotypeError(f"node {node}, entry {entry!r}: expected input {source} here "
                                        f"(inputs 0..{node - 1}, each once, in order)")
                ops.append(op)
        return cls(tuple(ops), provenance or {})

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"arch": self.to_string(), "search_space": SPACE_NAME}
        if self.provenance:
            obj["provenance"] = dict(self.provenance)
        return obj

    @classmethod
    def from_json(cls, obj: Any, source: str = "genotype") -> Nb201Arch:
        """Validate a genotype JSON object; errors start with `source` (the file) and name the key."""
        if not isinstance(obj, dict):
            raise GenotypeError(f"{source}: expected a JSON object, got {type(obj).__name__}")
        extra = sorted(set(obj) - set(_JSON_KEYS + _OPTIONAL_KEYS))
        if extra:
            raise GenotypeError(f"{source}: unknown key(s) {extra}; allowed: {list(_JSON_KEYS + _OPTIONAL_KEYS)}")
        missing = [key for key in _JSON_KEYS if key not in obj]
        if missing:
            raise GenotypeError(f"{source}: missing key(s) {missing}")
        if obj["search_space"] != SPACE_NAME:
            raise GenotypeError(f"{source}: search_space: expected '{SPACE_NAME}', got {obj['search_space']!r}")
        provenance = obj.get("provenance", {})
        if not isinstance(provenance, dict):
            raise GenotypeError(f"{source}: provenance: expected an object, got {type(provenance).__name__}")
        try:
            return cls.from_string(obj["arch"], provenance)
        except GenotypeError as exc:
            raise GenotypeError(f"{source}: arch: {exc}") from None

    def render(self) -> str:
        """One line per node, for `inspect`: `node 2 <- nor_conv_3x3(node 0) + skip_connect(node 1)`."""
        lines = [self.to_string()]
        for node in range(1, NODES):
            terms = " + ".join(f"{self.op(node, j)}(node {j})" for j in range(node))
            lines.append(f"node {node} <- {terms}")
        return "\n".join(lines)


def save_arch(path: Path | str, arch: Nb201Arch) -> None:
    """Write the genotype JSON at `path` and the bare architecture string beside it (`.txt`), atomically.

    The `.txt` is what the benchmark APIs and other NAS code take as input, so users can paste it.
    """
    path = Path(path)
    atomic_write_text(path, json.dumps(arch.to_json(), indent=2, sort_keys=True) + "\n")
    atomic_write_text(path.with_suffix(".txt"), arch.to_string() + "\n")


def derive_argmax(probabilities: torch.Tensor, edge_ops: tuple[tuple[str, ...], ...]) -> Nb201Arch:
    """The candidate of largest weight on every edge (`edge_ops[e]` names the columns), `none` included.

    NAS-Bench-201 keeps `none` as a candidate like any other: the benchmark's own DARTS/GDAS genotypes
    (`genotype()` in AutoDL-Projects' search models) and DrNAS' NB201 code take the plain argmax per
    edge, so a cell may lose edges, or even disconnect its output, and the benchmark scores it as such.
    """
    import torch

    expected = (len(edge_ops), len(edge_ops[0]))
    if len(edge_ops) != len(EDGES) or tuple(probabilities.shape) != expected:
        raise GenotypeError(f"architecture weights: shape {tuple(probabilities.shape)}, expected "
                            f"({len(EDGES)}, candidates per edge) matching the cell's {expected}")
    if not torch.isfinite(probabilities).all():
        raise GenotypeError("architecture weights contain NaN or Inf; the search diverged")
    return Nb201Arch(tuple(ops[int(i)] for ops, i in zip(edge_ops, probabilities.argmax(-1), strict=True)))
