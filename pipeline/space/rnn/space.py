"""The recurrent space registered as `rnn`: one cell type, "recurrent", of 1 + 2 + ... + nodes edges, each
offering the five activations; a text space (language modelling on PTB / WikiText-2).

Methods that only decide mixing weights per edge run here (DARTS 1st/2nd order, SDARTS RS/ADV, random
search); those that rely on the DARTS CNN cell's structure, and DATA, whose recurrent-cell derivation no
source states, are refused with the reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from pipeline.space.base import ArchWeights, CellSpec, SearchSpace, register_space
from pipeline.space.rnn.build import build_network, build_search_model
from pipeline.space.rnn.count import count
from pipeline.space.rnn.derive import derive_recurrent
from pipeline.space.rnn.genotype import SPACE_NAME, RecurrentGenotype
from pipeline.space.rnn.operations import CELL, PRIMITIVES, edge_index, num_edges
from pipeline.space.rnn.settings import RnnSettings

# Why each method that needs more than mixing weights per edge cannot search this space.
_REFUSED = {
    "pc_darts": "partial channels and edge normalisation act on the CNN cell's channels and two-input nodes",
    "drnas": "its progressive stages prune ops and widen the channels of the CNN supernet, and its paper "
             "never searched the recurrent cell",
    "ddsas": "its sampled subspace size L and shrink/expand schedule are defined on the 14-edge DARTS CNN cell",
    # DATA §4.2 (NeurIPS 2019) runs it on PTB (Tables 3, 4) but states no derivation for this cell, and the
    # released code (XinbangZhang/DATA-NAS: CNN files only; genotypes.py lists no recurrent cell) has none.
    "data": "no derivation of a recurrent cell from DATA's EGS codes can be sourced: the paper (Sec. 4.2) says "
            "only that the activations 'are learned with DATA' (12 nodes, M = 4 or 7), not how a code with "
            "several activations or inputs per node becomes a cell, its searched cells are in a supplement "
            "not at hand, and its released code (XinbangZhang/DATA-NAS) searches only the CNN cell",
}


def rnn_settings(settings: Any) -> RnnSettings:
    """The recurrent space's settings: given as such, or read off a search's settings, where `nodes` is the
    number of searched nodes and `channels` the embedding = hidden size (the width the CNN spaces call C).
    Dropouts and batch normalisation then take the DARTS search script's values."""
    if isinstance(settings, RnnSettings):
        return settings
    return RnnSettings(nodes=settings.nodes, size=settings.channels)


@register_space(SPACE_NAME)
class RecurrentSpace(SearchSpace):
    """DARTS' recurrent cell search space (Liu et al., ICLR 2019, §2.1, §3.2)."""

    data_kind = "text"
    subgrid = "rnn"
    genotype_type = RecurrentGenotype
    derive_rules = ("argmax_per_node",)

    def cells(self, settings: Any) -> tuple[CellSpec, ...]:
        return (CellSpec(CELL, (PRIMITIVES,) * num_edges(settings.nodes)),)

    def compatible(self, algorithm: str) -> str | None:
        return _REFUSED.get(algorithm)

    def build_supernet(self, settings: Any, *, num_classes: int, in_channels: int,
                       cells: tuple[CellSpec, ...], **method_options: Any) -> nn.Module:
        """The search language model over `num_classes` words; `forward(tokens, arch, hidden)`."""
        settings = rnn_settings(settings)
        if method_options:
            raise ValueError(f"space '{self.name}' takes no supernet options, got {sorted(method_options)}")
        if len(cells) != 1 or cells[0].shape != (num_edges(settings.nodes), len(PRIMITIVES)):
            raise ValueError(f"space '{self.name}': the supernet mixes all {len(PRIMITIVES)} activations on every "
                             f"edge; excluded ops are not supported")
        return build_search_model(num_classes, settings.size, settings.nodes, settings.dropouts, settings.batch_norm)

    def derive(self, probabilities: ArchWeights, cells: tuple[CellSpec, ...],
               rule: str = "argmax_per_node") -> RecurrentGenotype:
        if rule not in ("default", *self.derive_rules):
            raise ValueError(f"space '{self.name}': unknown derivation rule '{rule}'; known: {list(self.derive_rules)}")
        return derive_recurrent(probabilities[CELL])

    def discretise(self, genotype: Any, cells: tuple[CellSpec, ...]) -> ArchWeights:
        one_hot = torch.zeros(cells[0].shape)
        for node, (op, source) in enumerate(genotype.recurrent, start=1):
            one_hot[edge_index(node, source), PRIMITIVES.index(op)] = 1.0
        return ArchWeights({CELL: one_hot})

    def render(self, genotype: Any) -> str:
        return genotype.render()

    def build_network(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int,
                      auxiliary: bool, **options: Any) -> nn.Module:
        """The evaluation language model over `num_classes` words, `settings.size` units."""
        if auxiliary or options:
            raise ValueError(f"space '{self.name}': a language model has no auxiliary head or network options")
        settings = rnn_settings(settings)
        return build_network(genotype, num_classes, settings.size, settings.dropouts)

    def count(self, genotype: Any, settings: Any, *, num_classes: int, in_channels: int, input_size: int,
              **options: Any) -> dict[str, float]:
        """Millions of parameters and of multiply-adds per token, for a `num_classes`-word vocabulary."""
        counted = count(genotype, num_classes, rnn_settings(settings).size)
        return {key: value / 1e6 for key, value in counted.items()}
