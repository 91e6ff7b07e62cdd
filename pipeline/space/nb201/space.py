"""The `nb201` search space: NAS-Bench-201's cell as a plugin of pipeline/space/base.py.

One searched cell type, "cell", with six edges of the five NB201 operations (fewer when a variant
excludes some). `settings.layers` counts the searched cells of the whole network, three stages of
layers / 3 (the benchmark's network is `layers: 15`, `channels: 16`); the cell is fixed, so the DARTS
cell's `nodes` and `stem_multiplier` and the CNN supernet choice (`supernet`) do not apply. The space
offers partial channels (PC-DARTS, DrNAS' K), the widening of DrNAS' progressive stages (its Table 1 on
NB201) and per-node edge weights (PC-DARTS' edge normalisation); it lacks what only the DARTS cell
has ("darts_cell": DATA's multi-pair genotypes, DDSAS' expanding space), so those variants are refused
at params validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline.errors import GenotypeError
from pipeline.space.base import ArchWeights, CellSpec, SearchSpace, register_space
from pipeline.space.nb201.arch import EDGES, NODES, Nb201Arch, derive_argmax, save_arch
from pipeline.space.nb201.macro import STAGES
from pipeline.space.nb201.network import Nb201Network, count
from pipeline.space.nb201.ops import NB201_OPS
from pipeline.space.nb201.supernet import CELL, Nb201Supernet

# How many consecutive edges (in EDGES order) feed node 1, 2, 3.
NODE_INPUTS = tuple(range(1, NODES))


def cells_per_stage(settings: Any) -> int:
    """N of the benchmark's network: `settings.layers` searched cells over three stages."""
    if settings.layers % STAGES:
        raise ValueError(f"nb201: layers = {settings.layers} must be a multiple of {STAGES} (three stages of "
                         f"N cells; the benchmark's network is layers: 15, channels: 16)")
    return settings.layers // STAGES


@register_space("nb201")
class Nb201Space(SearchSpace):
    """NAS-Bench-201 (Dong & Yang, ICLR 2020): 4 nodes, 6 edges, 5 operations, one cell type."""

    genotype_type = Nb201Arch
    subgrid = "nb201"
    derive_rules = ("argmax",)
    features = frozenset({"partial_channels", "widening", "node_inputs"})

    def cells(self, settings: Any) -> tuple[CellSpec, ...]:
        cells_per_stage(settings)
        return (CellSpec(CELL, (NB201_OPS,) * len(EDGES), NODE_INPUTS),)

    def build_supernet(self, settings: Any, *, num_classes: int, in_channels: int, cells: tuple[CellSpec, ...],
                       partial_k: int = 1) -> nn.Module:
        (spec,) = cells
        return Nb201Supernet(num_classes=num_classes, edge_ops=spec.edge_ops, channels=settings.channels,
                             cells_per_stage=cells_per_stage(settings), partial_k=partial_k, in_channels=in_channels)

    def derive(self, probabilities: ArchWeights, cells: tuple[CellSpec, ...], rule: str = "argmax") -> Nb201Arch:
        if rule not in ("default", *self.derive_rules):
            raise ValueError(f"space 'nb201': unknown derivation rule '{rule}'; known: {list(self.derive_rules)}")
        (spec,) = cells
        return derive_argmax(probabilities[CELL].detach().cpu(), spec.edge_ops)

    def discretise(self, genotype: Any, cells: tuple[CellSpec, ...]) -> ArchWeights:
        (spec,) = cells
        one_hot = torch.zeros(spec.shape)
        for edge, (op, candidates) in enumerate(zip(genotype.ops, spec.edge_ops, strict=True)):
            if op not in candidates:
                node, source = EDGES[edge]
                raise GenotypeError(f"node {node}, input {source}: '{op}' is not a candidate of this search "
                                    f"({', '.join(candidates)})")
            one_hot[edge, candidates.index(op)] = 1.0
        return ArchWeights({CELL: one_hot})

    def save_genotype(self, path: Path, genotype: Any) -> None:
        save_arch(path, genotype)

    def render(self, genotype: Any) -> str:
        return genotype.render()

    def build_network(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int,
                      auxiliary: bool, network: str = "cifar") -> nn.Module:
        """The benchmark's network of `genotype`; it has no auxiliary head, drop path or ImageNet variant."""
        if auxiliary:
            raise ValueError("nb201: the NAS-Bench-201 network has no auxiliary head; set auxiliary_weight: 0")
        if getattr(settings, "drop_path", 0.0):
            raise ValueError("nb201: the NAS-Bench-201 network is trained without drop path; set drop_path: 0")
        if network != "cifar":
            raise ValueError(f"nb201: no '{network}' network; NAS-Bench-201 trains one network on every dataset")
        return Nb201Network(genotype, num_classes=num_classes, channels=settings.channels,
                            cells_per_stage=cells_per_stage(settings), in_channels=in_channels)

    def count(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int, input_size: int,
              network: str = "cifar") -> dict[str, float]:
        self.build_network(genotype, settings, num_classes=num_classes, in_channels=in_channels, auxiliary=False,
                           network=network)  # the same refusals
        return count(genotype, num_classes=num_classes, input_size=input_size, channels=settings.channels,
                     cells_per_stage=cells_per_stage(settings), in_channels=in_channels)
