"""The DARTS CNN cell family: spaces that share the DARTS cell and differ only in each edge's candidates.

A cell has two inputs (the two previous cells), `nodes` intermediate nodes each fed by every earlier node,
and the concatenation of the intermediate nodes as output; a network stacks normal cells with reduction
cells at 1/3 and 2/3 depth. `CnnSpace` implements the whole `SearchSpace` interface for this family, so
a new CNN space (S1-S4 of Zela et al.) is a subclass that only says which candidates each edge offers:
set `primitives` when every edge offers the same ones, or override `edge_ops`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from pipeline.analysis.cell_shape import genotype_shape
from pipeline.nets import NetworkCIFAR, NetworkImageNet, count_parameters_m, mult_adds_m
from pipeline.space.base import ArchWeights, CellSpec, SearchSpace, register_space
from pipeline.space.fast_supernet import supernet_class
from pipeline.space.genotype import (
    CELLS,
    Genotype,
    derive_top2,
    edge_index,
    num_edges,
    param_free_ratio,
    render_genotype,
    save_genotype,
)
from pipeline.space.primitives import PRIMITIVES, PRIMITIVES_NO_NONE

NETWORKS = ("cifar", "imagenet")


class CnnSpace(SearchSpace):
    """A space of DARTS cells; subclasses give the candidate operations of each edge."""

    genotype_type = Genotype
    derive_rules = ("top2",)
    features = frozenset({"darts_cell", "partial_channels", "widening", "node_inputs", "drop_path", "recompute"})
    # The candidates of every edge of both cell types, unless `edge_ops` is overridden.
    primitives: ClassVar[tuple[str, ...]] = ()

    def edge_ops(self, cell: str, nodes: int) -> tuple[tuple[str, ...], ...]:
        """The candidates of each edge of `cell` (edge order of docs/architecture.md)."""
        return (self.primitives,) * num_edges(nodes)

    def cells(self, settings: Any) -> tuple[CellSpec, ...]:
        nodes = settings.nodes
        node_inputs = tuple(range(2, nodes + 2))
        return tuple(CellSpec(cell, self.edge_ops(cell, nodes), node_inputs) for cell in CELLS)

    def candidates(self, cell: str, node: int, source: int, nodes: int) -> tuple[str, ...]:
        """The operations edge (source -> node) of `cell` offers: what a genotype may put there."""
        return self.edge_ops(cell, nodes)[num_edges(node - 2) + source]

    def build_supernet(self, settings: Any, *, num_classes: int, in_channels: int,
                       cells: tuple[CellSpec, ...], stem: str = "cifar", partial_k: int = 1) -> nn.Module:
        return supernet_class(settings.supernet)(
            channels=settings.channels, num_classes=num_classes, layers=settings.layers, cells=cells,
            stem_multiplier=settings.stem_multiplier, in_channels=in_channels, partial_k=partial_k, stem=stem,
            recompute=settings.recompute)

    def derive(self, probabilities: ArchWeights, cells: tuple[CellSpec, ...], rule: str = "top2") -> Genotype:
        if rule not in ("default", *self.derive_rules):
            raise ValueError(f"space '{self.name}': unknown derivation rule '{rule}'; known: {list(self.derive_rules)}")
        specs = {spec.name: spec for spec in cells}
        scales = None
        if all(probabilities.edge_scale(cell) is not None for cell in CELLS):
            scales = {cell: probabilities.edge_scale(cell) for cell in CELLS}
        return derive_top2({cell: probabilities[cell] for cell in CELLS},
                           {cell: specs[cell].edge_ops for cell in CELLS}, self.name, edge_scores=scales)

    def discretise(self, genotype: Any, cells: tuple[CellSpec, ...]) -> ArchWeights:
        weights = {}
        for spec in cells:
            one_hot = torch.zeros(spec.shape)
            for node, pairs in enumerate(getattr(genotype, spec.name), start=2):
                for op, source in pairs:
                    edge = edge_index(node, source)
                    one_hot[edge, spec.edge_ops[edge].index(op)] = 1.0
            weights[spec.name] = one_hot
        return ArchWeights(weights)

    def analyses(self, genotype: Any) -> dict[str, float]:
        return {"param_free_ratio": param_free_ratio(genotype), **genotype_shape(genotype)}

    def save_genotype(self, path: Any, genotype: Any) -> None:
        save_genotype(path, genotype)

    def render(self, genotype: Any) -> str:
        return render_genotype(genotype)

    def build_network(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int,
                      auxiliary: bool, network: str = "cifar") -> nn.Module:
        """NetworkCIFAR (retrain) or NetworkImageNet (transfer) of `genotype`, sized by `settings`."""
        if network not in NETWORKS:
            raise ValueError(f"space '{self.name}': unknown network '{network}'; known: {list(NETWORKS)}")
        network_class = NetworkImageNet if network == "imagenet" else NetworkCIFAR
        return network_class(genotype, channels=settings.channels, num_classes=num_classes, layers=settings.layers,
                             auxiliary=auxiliary, in_channels=in_channels, pool_bn=settings.pool_bn)

    def count(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int, input_size: int,
              network: str = "cifar") -> dict[str, float]:
        model = self.build_network(genotype, settings, num_classes=num_classes, in_channels=in_channels,
                                   auxiliary=False, network=network)
        return {"params": count_parameters_m(model), "mult_adds": mult_adds_m(model, input_size, in_channels)}


@register_space("darts")
class DartsSpace(CnnSpace):
    """The DARTS CNN space (Liu et al., ICLR 2019): the 8 operations on every edge."""

    primitives = PRIMITIVES


@register_space("darts_no_none")
class DartsNoNoneSpace(CnnSpace):
    """The DARTS space without `none`: SDARTS' "s5" and DrNAS' DARTS-space search."""

    primitives = PRIMITIVES_NO_NONE


# The DARTS paper's CIFAR-10 cell (second order, "DARTS_V2"; Liu et al., ICLR 2019, Figure 4 and 5).
GENOTYPE_DARTS_V2 = Genotype(
    normal=(
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 1)),
        (("sep_conv_3x3", 0), ("sep_conv_3x3", 1)),
        (("sep_conv_3x3", 1), ("skip_connect", 0)),
        (("skip_connect", 0), ("dil_conv_3x3", 2)),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        (("max_pool_3x3", 0), ("max_pool_3x3", 1)),
        (("skip_connect", 2), ("max_pool_3x3", 1)),
        (("max_pool_3x3", 0), ("skip_connect", 2)),
        (("skip_connect", 2), ("max_pool_3x3", 1)),
    ),
    reduce_concat=(2, 3, 4, 5),
    search_space="darts",
    provenance={"source": "Liu, Simonyan, Yang. DARTS: Differentiable Architecture Search. ICLR 2019"},
)
