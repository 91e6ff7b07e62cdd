"""Which seed a selection protocol keeps: the one whose short retrain (the select stage) scored best on
validation data, where "best" depends on the score.

Zela et al. (and SDARTS Table 4 after them) keep the highest validation accuracy of an image cell; DARTS
(§3.2) keeps the recurrent cell with the lowest validation perplexity on PTB. This module is the one place
that says which metric of the select stage's metrics.json each kind of space is scored by, and in which
direction it is better; the robustness and perplexity tables both pick through it.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pipeline.layout import select_dir
from pipeline.tables.collect import read_json

Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True)
class SelectionScore:
    """A metric of the select stage's metrics.json and whether lower values are better."""

    metric: str
    lower_is_better: bool


# Keyed by `SearchSpace.data_kind` (pipeline/space/base.py; tests check every kind has one).
SELECTION_SCORES: dict[str, SelectionScore] = {
    "image": SelectionScore("valid_acc", lower_is_better=False),
    "text": SelectionScore("valid_ppl", lower_is_better=True),
}


def select_best(scores: Mapping[Key, float], score: SelectionScore) -> Key | None:
    """The key with the best score (ties: the smallest key; NaN never wins); None when there is none."""
    sign = 1.0 if score.lower_is_better else -1.0
    scored = [(sign * value, key) for key, value in scores.items() if not math.isnan(value)]
    return min(scored)[1] if scored else None


def selection_scores(results: Path, dataset: str, variants: list[str], seeds: tuple[int, ...],
                     score: SelectionScore) -> dict[tuple[int, int], float]:
    """The select stage's `score` of each (variant position, seed) that has one."""
    scores = {}
    for position, variant in enumerate(variants):
        for seed in seeds:
            metrics = read_json(select_dir(results, dataset, variant, seed) / "metrics.json")
            if metrics is not None:
                scores[(position, seed)] = float(metrics[score.metric])
    return scores
