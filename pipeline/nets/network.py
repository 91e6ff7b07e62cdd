"""The body shared by the CIFAR and ImageNet evaluation networks: a stack of cells and the classifier.

The two networks differ only in their stem and in the auxiliary head's pooling stride, so the cell
stacking (reductions at 1/3 and 2/3 depth, channel doubling, auxiliary head after cell 2*layers//3) is
written once here.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.auxiliary import AuxiliaryHead
from pipeline.nets.cell import Cell
from pipeline.space.genotype import Genotype


class EvalNetwork(nn.Module):
    """`stem(x) -> (s0, s1)` feeding a stack of `layers` cells, global average pooling and a Linear layer.

    `forward` returns `(logits, aux_logits)`; `aux_logits` is None unless the network was built with
    `auxiliary=True` and is training (the head is a training-time regulariser, unused in evaluation).
    The trainer sets `drop_path_prob` each epoch.
    """

    def __init__(
        self,
        genotype: Genotype,
        stem: nn.Module,
        stem_channels: tuple[int, int],
        *,
        channels: int,
        num_classes: int,
        layers: int,
        auxiliary: bool,
        stem_reduced: bool,
        aux_pool_stride: int,
        pool_bn: bool,
    ) -> None:
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be >= 3 (two reduction cells and a normal one), got {layers}")
        self.drop_path_prob = 0.0
        self.stem = stem
        self.aux_index = 2 * layers // 3
        c_prev_prev, c_prev = stem_channels
        c_curr, reduction_prev = channels, stem_reduced
        cells = []
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c_curr = c_curr * 2 if reduction else c_curr
            cell = Cell(genotype, c_prev_prev, c_prev, c_curr, reduction=reduction,
                        reduction_prev=reduction_prev, pool_bn=pool_bn)
            cells.append(cell)
            c_prev_prev, c_prev, reduction_prev = c_prev, cell.out_channels, reduction
            if i == self.aux_index:
                c_aux = c_prev
        self.cells = nn.ModuleList(cells)
        self.auxiliary_head = (
            AuxiliaryHead(c_aux, num_classes, pool_stride=aux_pool_stride) if auxiliary else None
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0, s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux_logits
