"""Small per-epoch measurements of the search: accuracy counts, the derived child, genotype statistics."""

from __future__ import annotations

import torch

from pipeline.analysis.cell_shape import genotype_shape
from pipeline.methods.base import SearchSpace
from pipeline.space.genotype import Genotype, edge_index, param_free_ratio
from pipeline.space.supernet import ArchWeights


def accuracy_counts(logits: torch.Tensor, targets: torch.Tensor) -> tuple[int, int]:
    """(correct top-1 predictions, samples)."""
    return int((logits.argmax(1) == targets).sum()), int(targets.numel())


def child_weights(genotype: Genotype, space: SearchSpace, device: torch.device) -> ArchWeights:
    """The supernet discretised to `genotype`: weight 1 on each kept (op, input) pair, 0 elsewhere.

    Evaluating the supernet under these weights, without fine-tuning, measures DATA's search-child gap.
    """
    cells = []
    for cell in (genotype.normal, genotype.reduce):
        weights = torch.zeros(space.shape, device=device)
        for node, pairs in enumerate(cell, start=2):
            for op, source in pairs:
                weights[edge_index(node, source), space.primitives.index(op)] = 1.0
        cells.append(weights)
    return ArchWeights(cells[0], cells[1])


def genotype_analyses(genotype: Genotype) -> dict[str, float]:
    """Per-epoch columns: share of parameter-free ops in the normal cell and cell depth/width."""
    return {"param_free_ratio": param_free_ratio(genotype), **genotype_shape(genotype)}
