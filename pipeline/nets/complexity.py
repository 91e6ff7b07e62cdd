"""Model size and cost as the papers report them: parameters and mult-adds, auxiliary head excluded.

The auxiliary head only exists during training, so the DARTS-family tables leave it out of both counts;
doing the same here keeps our numbers comparable with theirs.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.nets.auxiliary import AuxiliaryHead


def _auxiliary_parameters(model: nn.Module) -> set[int]:
    return {
        id(p) for module in model.modules() if isinstance(module, AuxiliaryHead) for p in module.parameters()
    }


def count_parameters_m(model: nn.Module) -> float:
    """Parameters in millions, excluding any auxiliary head."""
    excluded = _auxiliary_parameters(model)
    return sum(p.numel() for p in model.parameters() if id(p) not in excluded) / 1e6


def _conv_mult_adds(module: nn.Conv2d, output: torch.Tensor) -> int:
    kh, kw = module.kernel_size
    return output.numel() * (module.in_channels // module.groups) * kh * kw


def _linear_mult_adds(module: nn.Linear, output: torch.Tensor) -> int:
    return output.numel() * module.in_features


def mult_adds_m(model: nn.Module, input_size: int | tuple[int, int], in_channels: int = 3) -> float:
    """Multiply-adds in millions of one forward pass of a single image in eval mode.

    Counted on Conv2d (output elements x in/groups x kh x kw) and Linear (in x out) layers, the convention
    of the DARTS-family papers (BN, pooling and additions are not counted); auxiliary heads excluded.
    """
    height, width = (input_size, input_size) if isinstance(input_size, int) else input_size
    excluded = {id(m) for head in model.modules() if isinstance(head, AuxiliaryHead) for m in head.modules()}
    total = 0

    def count(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_mult_adds(module, output)
        elif isinstance(module, nn.Linear):
            total += _linear_mult_adds(module, output)

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and id(m) not in excluded
    ]
    was_training = model.training
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return total / 1e6
