"""The papers' direct ImageNet searches in configs/paper.yaml: their published global batch on their GPU count.

DrNAS Sec. 4.2: "We use 8 RTX 2080 Ti GPUs for both search and evaluation", following PC-DARTS' protocol
(lr 0.5, architecture lr 6e-3); DDSAS Sec. 4.3: "A total of 60 epochs are searched with a batch size 512".
"""

from __future__ import annotations

import pytest
from shipped_params import REPO

from pipeline.config import load_params

PAPER = load_params(REPO / "configs" / "paper.yaml")


def test_direct_imagenet_searches_ask_for_the_papers_eight_gpus() -> None:
    assert PAPER.resources.search_imagenet.gpu == 8


@pytest.mark.parametrize("method", PAPER.grid.imagenet_methods)
def test_direct_imagenet_search_runs_the_published_global_batch_split_over_the_gpus(method: str) -> None:
    settings = PAPER.search_settings(method)
    assert (settings.batch_size, settings.weights.lr, settings.arch.lr) == (512, 0.5, 6e-3)
    assert settings.batch_size % PAPER.resources.search_imagenet.gpu == 0
