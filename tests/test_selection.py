"""The selection rule of the select stage's scores: validation accuracy keeps the highest (Zela et al.,
SDARTS Table 4), validation perplexity the lowest (DARTS §3.2 on PTB); one score per kind of space."""

from __future__ import annotations

import math
from typing import get_args

import pytest

from pipeline.space.base import DataKind
from pipeline.tables.selection import SELECTION_SCORES, select_best

ACCURACY, PERPLEXITY = SELECTION_SCORES["image"], SELECTION_SCORES["text"]


def test_accuracy_keeps_the_highest_and_perplexity_the_lowest() -> None:
    scores = {0: 70.0, 1: 80.0, 2: 75.0}
    assert select_best(scores, ACCURACY) == 1
    assert select_best(scores, PERPLEXITY) == 0
    assert (ACCURACY.metric, PERPLEXITY.metric) == ("valid_acc", "valid_ppl")


@pytest.mark.parametrize("score", [ACCURACY, PERPLEXITY])
def test_ties_go_to_the_smaller_key_nan_never_wins_and_nothing_selects_none(score) -> None:
    assert select_best({(1, 0): 50.0, (0, 3): 50.0}, score) == (0, 3)
    assert select_best({0: math.nan, 1: 90.0}, score) == 1
    assert select_best({0: math.nan}, score) is None
    assert select_best({}, score) is None


def test_every_kind_of_space_has_a_selection_score() -> None:
    assert set(SELECTION_SCORES) == set(get_args(DataKind))
