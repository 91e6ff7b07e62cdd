"""The auxiliary classifier attached at 2/3 depth during retraining (weight 0.4 in the DARTS family)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# The head's 2x2 conv turns a 2x2 pooled map into one 768-vector for the Linear layer.
_POOLED_SIDE = 2


class AuxiliaryHead(nn.Module):
    """ReLU, AvgPool 5 (stride 3 for CIFAR, 2 for ImageNet), 1x1 conv to 128, BN, ReLU, 2x2 conv to 768,
    BN, ReLU, Linear.

    At the papers' input sizes (8x8 features on CIFAR at 32x32, 7x7 on ImageNet at 224x224) the pooling
    gives exactly 2x2. For any other feature size (the 16x16 digits demo has 4x4, smaller than the pool
    window) it is replaced by adaptive average pooling to 2x2, so tiny demo inputs train with the same
    head instead of failing; at the papers' sizes nothing changes. The BN after the 2x2 conv is kept on
    ImageNet too (the DARTS code lost it to a typo).
    """

    def __init__(self, channels: int, num_classes: int, *, pool_stride: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def _pooled_side(self, side: int) -> int:
        return (side - 5) // self.pool.stride + 1 if side >= 5 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        height, width = x.shape[-2:]
        if self._pooled_side(height) == self._pooled_side(width) == _POOLED_SIDE:
            x = self.pool(x)
        else:
            x = F.adaptive_avg_pool2d(x, _POOLED_SIDE)
        return self.classifier(self.features(x).flatten(1))
