"""The run grid the tables stage reports on, as plain data.

The tables are a pure function of (grid, files on disk). Keeping the grid a small frozen dataclass, rather
than the pydantic `Params`, lets tests build any grid in one line and keeps the table code independent of
how params.yaml is validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IMAGENET = "imagenet"


@dataclass(frozen=True)
class SubGrid:
    """A sub-grid of one space family (params grid.nb201, grid.rnn): its datasets and variants, with the
    main grid's seeds; `retrain` whether its cells were trained on their dataset, `transfer_to` the dataset
    they were transferred to (None: not transferred), `select` whether the select stage ran on it (the
    tables then report one selected seed per variant)."""

    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    retrain: bool = True
    transfer_to: str | None = None
    select: bool = False

    def pairs(self) -> list[tuple[str, str]]:
        """(dataset, method) of every search of the sub-grid."""
        return [(dataset, method) for dataset in self.datasets for method in self.methods]


@dataclass(frozen=True)
class Grid:
    """Datasets x method variants x seeds, whether transfer ran, each variant's options, direct ImageNet searches."""

    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    transfer: bool
    # name -> the variant's options as in params.yaml (`{"algorithm": "data", "samples": 4, ...}`); the
    # ablation tables read M and K from here.
    method_specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Variants searched directly on ImageNet; the transfer stage is their evaluation.
    imagenet_methods: tuple[str, ...] = ()
    # Whether the select stage ran: the S1-S4 tables then report one selected seed per variant.
    select: bool = False
    # The sub-grids of the NAS-Bench-201 and recurrent spaces (empty: not run).
    nb201: SubGrid = SubGrid()
    rnn: SubGrid = SubGrid()

    def retrain_pairs(self) -> list[tuple[str, str]]:
        """(dataset, method) of every search that is retrained on its dataset."""
        return [(dataset, method) for dataset in self.datasets for method in self.methods]

    def transfer_pairs(self) -> list[tuple[str, str]]:
        """(searched-on dataset, method) of every genotype trained on ImageNet, direct searches last."""
        pairs = self.retrain_pairs() if self.transfer else []
        return pairs + [(IMAGENET, method) for method in self.imagenet_methods]

    def search_pairs(self) -> list[tuple[str, str]]:
        """(dataset, method) of every search of the main grid and the sub-grids."""
        return (self.retrain_pairs() + [(IMAGENET, method) for method in self.imagenet_methods]
                + self.nb201.pairs() + self.rnn.pairs())

    def algorithm(self, method: str) -> str:
        """The algorithm of a variant; a variant without a spec is taken to be named after its algorithm."""
        return str(self.method_specs.get(method, {}).get("algorithm", method))

    def option(self, method: str, key: str) -> Any:
        """One option of a variant, or None when the spec does not set it."""
        return self.method_specs.get(method, {}).get(key)
