"""What a search space is: the one interface methods, stages and tables use to reach a space's specifics.

A space owns everything that depends on the shape of its cells: the candidate operations of every edge
(per cell type), the supernet that mixes them, the genotype (its JSON layout, validation and rendering),
the derivation rules, the evaluation network and how its parameters and mult-adds are counted. Methods
never see a cell: they keep one `[num_edges, num_candidates]` tensor per cell type (`CellSpec.shape`) and
hand them to the supernet as `ArchWeights`, so a method runs on every space whose edges it can handle, and
a space it cannot run on refuses it at params validation (`compatible`). docs/spaces.md is the guide.

A space is one module that subclasses `SearchSpace` and decorates it with `@register_space("name")`; the
package's own spaces are imported by `pipeline.space.builtin`, a user's own by the `plugins:` key of
params.yaml (`pipeline.plugins`).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self

import torch
from torch import nn

from pipeline.atomic import atomic_write_text
from pipeline.errors import GenotypeError
from pipeline.layout import RESULTS, prepared_dir

DataKind = Literal["image", "text"]


@dataclass(frozen=True)
class CellSpec:
    """One searched cell type: its name and the candidate operations of each of its edges, in edge order.

    Every edge of a cell type has the same number of candidates (so architecture parameters are one
    `[num_edges, num_candidates]` tensor), but not necessarily the same operations: S1 of Zela et al.
    has a different pair on every edge. `node_inputs[k]` is how many consecutive edges (in edge order) feed
    the k-th node whose inputs are mixed; methods that normalise over a node's inputs (PC-DARTS' edge
    normalisation) need it, and a space without such nodes leaves it empty.
    """

    name: str
    edge_ops: tuple[tuple[str, ...], ...]
    node_inputs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.edge_ops:
            raise ValueError(f"cell '{self.name}': no edges")
        widths = {len(ops) for ops in self.edge_ops}
        if len(widths) != 1:
            raise ValueError(f"cell '{self.name}': edges differ in candidate count {sorted(widths)}")
        for e, ops in enumerate(self.edge_ops):
            if len(set(ops)) != len(ops):
                raise ValueError(f"cell '{self.name}', edge {e}: repeated candidate in {list(ops)}")
        if self.node_inputs and sum(self.node_inputs) != len(self.edge_ops):
            raise ValueError(f"cell '{self.name}': node_inputs {list(self.node_inputs)} sum to "
                             f"{sum(self.node_inputs)}, but the cell has {len(self.edge_ops)} edges")

    @property
    def num_edges(self) -> int:
        return len(self.edge_ops)

    @property
    def num_candidates(self) -> int:
        return len(self.edge_ops[0])

    @property
    def shape(self) -> tuple[int, int]:
        """The shape of this cell type's architecture parameters and mixing weights."""
        return (self.num_edges, self.num_candidates)

    @property
    def ops(self) -> tuple[str, ...]:
        """Every operation some edge offers, in first-seen order."""
        return tuple(dict.fromkeys(op for ops in self.edge_ops for op in ops))

    def mask(self, keep: Callable[[str], bool]) -> torch.Tensor:
        """`[num_edges, num_candidates]` bools: True where `keep(op)` for that edge's candidate."""
        return torch.tensor([[keep(op) for op in ops] for ops in self.edge_ops], dtype=torch.bool)


@dataclass
class ArchWeights:
    """Mixing weights of one forward pass: a `[num_edges, num_candidates]` tensor per cell-type name.

    `edge_scales` (one `[num_edges]` vector per cell type) multiply each edge's output: PC-DARTS' edge
    normalisation. `compute_all` asks the supernet to run every op but `none`, zero weights included (the
    released codes of SDARTS and DATA do; see pipeline/space/supernet.py). An op whose weight is exactly 0
    is otherwise not computed.
    """

    cells: dict[str, torch.Tensor]
    edge_scales: dict[str, torch.Tensor] | None = None
    compute_all: bool = False

    def __getitem__(self, cell: str) -> torch.Tensor:
        if cell not in self.cells:
            raise KeyError(f"no mixing weights for cell type '{cell}'; have {sorted(self.cells)}")
        return self.cells[cell]

    def __iter__(self) -> Iterator[str]:
        return iter(self.cells)

    def edge_scale(self, cell: str) -> torch.Tensor | None:
        return None if self.edge_scales is None else self.edge_scales.get(cell)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> ArchWeights:
        """New weights `fn(w)` per cell type; edge scales and `compute_all` are kept."""
        return ArchWeights({name: fn(w) for name, w in self.cells.items()}, self.edge_scales, self.compute_all)

    def detached(self) -> ArchWeights:
        scales = None if self.edge_scales is None else {k: v.detach() for k, v in self.edge_scales.items()}
        return ArchWeights({k: v.detach() for k, v in self.cells.items()}, scales, self.compute_all)


class SpaceGenotype(Protocol):
    """What every space's genotype offers: JSON round trip with validation, its space name, provenance."""

    search_space: str
    provenance: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the genotype file (`search_space` and `provenance` included)."""
        ...

    @classmethod
    def from_json(cls, obj: Any, source: str = "genotype") -> Self:
        """Parse and validate; the first problem is a `GenotypeError` that names `source` and the key."""
        ...


class SearchSpace(abc.ABC):
    """Base class of a registered search space; one stateless instance per name (`get_space`).

    `settings` is the search's training settings (`pipeline.config.SearchTraining`: nodes, layers,
    channels, ...) for the search-time hooks, and the retrain/transfer section for the evaluation hooks.
    """

    name: ClassVar[str]
    data_kind: ClassVar[DataKind] = "image"
    genotype_type: ClassVar[type]
    # What the space offers beyond mixing weights per edge; a method variant names the features it needs
    # (`SearchMethod.required_features`) and is refused on a space without them. The CNN spaces offer
    # "darts_cell" (DATA's multi-pair genotypes, DDSAS' expanding space), "partial_channels" (PC-DARTS, DrNAS'
    # K), "widening" (DrNAS' progressive stages), "node_inputs" (PC-DARTS' edge normalisation; a space
    # offering it fills `CellSpec.node_inputs`), "drop_path" (`search.drop_path`, R-DARTS(DP): the
    # supernet has `set_drop_path(prob)`) and "recompute" (`search.recompute`: its `build_supernet` honours it).
    features: ClassVar[frozenset[str]] = frozenset()
    # The grid its variants run in: None for the main grid (grid.methods, retrained on the dataset and
    # transferred to ImageNet), else the key of its sub-grid under `grid` ("nb201", "rnn"), whose datasets
    # and evaluation stages fit the space (pipeline/config.py, GridConfig).
    subgrid: ClassVar[str | None] = None
    # Derivation rules `derive` accepts; the first is the default.
    derive_rules: ClassVar[tuple[str, ...]] = ("default",)

    # -- search -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def cells(self, settings: Any) -> tuple[CellSpec, ...]:
        """The searched cell types and the candidate operations of each edge."""

    @abc.abstractmethod
    def build_supernet(self, settings: Any, *, num_classes: int, in_channels: int,
                       cells: tuple[CellSpec, ...], **method_options: Any) -> nn.Module:
        """The one-shot network over `cells` (this space's `cells(settings)`, possibly with ops excluded by
        the method variant); `forward(x, arch: ArchWeights)` mixes each edge's candidates by the weights and
        does not compute an op whose weight is exactly 0. `method_options` come from
        `SearchMethod.supernet_options` (e.g. `partial_k`); refuse unknown ones."""

    @abc.abstractmethod
    def derive(self, probabilities: ArchWeights, cells: tuple[CellSpec, ...],
               rule: str = "default") -> SpaceGenotype:
        """The genotype of the deterministic per-edge probabilities (one tensor per cell type of `cells`)."""

    @abc.abstractmethod
    def discretise(self, genotype: Any, cells: tuple[CellSpec, ...]) -> ArchWeights:
        """The supernet's mixing weights of `genotype`: 1 on each kept candidate, exactly 0 elsewhere (the
        derived child's supernet accuracy, random search's candidates)."""

    def compatible(self, algorithm: str) -> str | None:
        """None when method `algorithm` can run on this space, else the reason it cannot (shown at params
        validation beside both names)."""
        return None

    # -- genotypes ------------------------------------------------------------------------------------
    def genotype_from_json(self, obj: Any, source: str = "genotype") -> SpaceGenotype:
        return self.genotype_type.from_json(obj, source)  # type: ignore[attr-defined]

    def genotype_to_json(self, genotype: Any) -> dict[str, Any]:
        return genotype.to_json()

    def save_genotype(self, path: Path, genotype: Any) -> None:
        """Write the genotype file (and anything the space keeps beside it), atomically."""
        atomic_write_text(path, json.dumps(self.genotype_to_json(genotype), indent=2, sort_keys=True) + "\n")

    @abc.abstractmethod
    def render(self, genotype: Any) -> str:
        """Readable text of the genotype for `python -m pipeline inspect`."""

    # -- evaluation -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_network(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int,
                      auxiliary: bool, **options: Any) -> nn.Module:
        """The evaluation network of `genotype` (retrain/transfer settings give its size); `options` are
        space-specific (the CNN spaces take `network="cifar" | "imagenet"`)."""

    @abc.abstractmethod
    def count(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int,
              input_size: int, **options: Any) -> dict[str, float]:
        """`{"params": millions, "mult_adds": millions}` of the evaluation network, as the papers count."""

    def analyses(self, genotype: Any) -> dict[str, float]:
        """Per-epoch columns of history.csv about the derived genotype (the CNN spaces: share of
        parameter-free ops, cell depth and width); none by default."""
        return {}

    # -- description ----------------------------------------------------------------------------------
    def describe(self, settings: Any) -> dict[str, Any]:
        """What `python -m pipeline spaces show NAME --json` prints."""
        return {
            "name": self.name,
            "data_kind": self.data_kind,
            "derive_rules": list(self.derive_rules),
            "cells": [{"name": c.name, "edges": [list(ops) for ops in c.edge_ops]} for c in self.cells(settings)],
        }


# ------------------------------------------------------------------------------------------- registry

_SPACES: dict[str, SearchSpace] = {}


def register_space(name: str) -> Callable[[type[SearchSpace]], type[SearchSpace]]:
    """Class decorator: make `name` (the space's name in params.yaml and genotype files) this space."""

    def decorate(cls: type[SearchSpace]) -> type[SearchSpace]:
        if name in _SPACES:
            raise ValueError(f"search space '{name}' registered twice")
        cls.name = name
        _SPACES[name] = cls()
        return cls

    return decorate


def get_space(name: str) -> SearchSpace:
    """The registered space `name`; a `KeyError` lists the known ones."""
    _load_builtin()
    if name not in _SPACES:
        raise KeyError(f"unknown search space '{name}'; registered: {', '.join(list_spaces())}")
    return _SPACES[name]


def list_spaces() -> list[str]:
    _load_builtin()
    return sorted(_SPACES)


def _load_builtin() -> None:
    import pipeline.space.builtin  # noqa: F401  (registers the package's own spaces)


def genotype_from_json(obj: Any, source: str = "genotype") -> SpaceGenotype:
    """Any space's genotype: its `search_space` picks the space that parses and validates the rest."""
    if not isinstance(obj, Mapping):
        raise GenotypeError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    if "search_space" not in obj:
        raise GenotypeError(f"{source}: missing key(s) ['search_space']; registered: {', '.join(list_spaces())}")
    name = obj["search_space"]
    try:
        space = get_space(name) if isinstance(name, str) else None
    except KeyError:
        space = None
    if space is None:
        raise GenotypeError(f"{source}: search_space: {name!r} is unknown; registered: {', '.join(list_spaces())}")
    return space.genotype_from_json(obj, source)


@dataclass(frozen=True)
class BoundSpace:
    """A space bound to one search: its cell types for these settings.

    This is what a method sees of the space: the cell types it keeps weights for, and derivation.
    """

    space: SearchSpace
    cells: tuple[CellSpec, ...]

    @classmethod
    def of(cls, space: SearchSpace | str, settings: Any) -> BoundSpace:
        space = get_space(space) if isinstance(space, str) else space
        return cls(space, space.cells(settings))

    @property
    def name(self) -> str:
        return self.space.name

    @property
    def cell_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.cells)

    def cell(self, name: str) -> CellSpec:
        for spec in self.cells:
            if spec.name == name:
                return spec
        raise KeyError(f"space '{self.space.name}' has no cell type '{name}'; it has {list(self.cell_names)}")

    def derive(self, probabilities: ArchWeights, rule: str = "default") -> SpaceGenotype:
        return self.space.derive(probabilities, self.cells, rule)


def data_dir_of(params: Any, method: str, dataset: str, results: Path = Path(RESULTS)) -> Path:
    """prepare's output of `dataset` for variant `method`: that of the (sub-)grid its space runs in
    (`SearchSpace.subgrid`; NAS-Bench-201's data apart, pipeline/layout.py), the stages' default --prepared."""
    return prepared_dir(dataset, results, subgrid=get_space(params.method(method).space).subgrid)
