"""ScheduledDropPath during search, the regulariser of R-DARTS(DP) (Zela et al., ICLR 2020, Section 5).

The released code (automl/RobustDARTS, `src/search/train_search.py`) sets the drop probability of epoch
e (counted from 0) to p * e / (E - 1): 0 in the first epoch, p in the last. (Retraining ramps over E
instead, pipeline/train/loop.py: its last epoch stays below p.)
"""

from __future__ import annotations


def search_drop_path_prob(epoch: int, epochs: int, final: float) -> float:
    """The probability that each supernet edge's output is dropped in `epoch` of `epochs`."""
    return final * epoch / max(epochs - 1, 1)
