"""Batchify a token stream and cut it into truncated-BPTT windows, as the AWD-LSTM / DARTS RNN code does.

`batchify` lays the stream out as `batch` parallel columns (column b holds the b-th contiguous chunk), so
the hidden state carried from one window to the next continues the same text. A window starting at row i
predicts rows i+1 .. i+L from rows i .. i+L-1.

Training windows of an epoch are a pure function of (rows, bptt, mode, seed, epoch): a resumed run
recomputes them and skips those already trained, instead of storing a generator's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from pipeline.errors import DataError

# How training draws each window's length (quark0/darts rnn/): `search` as train_search.py (bptt, or bptt/2
# with probability 0.05), `evaluation` as train.py (that base, then ~N(base, 5) clipped to
# [5, bptt + max_seq_len_delta]), `fixed` always bptt.
SequenceLength = Literal["fixed", "search", "evaluation"]
FULL_LENGTH_PROBABILITY = 0.95  # both scripts: `bptt if np.random.random() < 0.95 else bptt / 2`
LENGTH_STD = 5.0  # train.py: `np.random.normal(bptt, 5)`
MIN_LENGTH = 5  # train.py: `max(5, ...)`


@dataclass(frozen=True)
class Window:
    """Rows `start .. start + length - 1` predict the rows one below; `lr_scale` is drawn_length / bptt.

    The codes scale the learning rate of the step by the drawn length over bptt (a long window sums more
    tokens' gradients into one mean, so it gets a proportionally larger step), also when the last window of
    an epoch is cut short by the end of the data.
    """

    start: int
    length: int
    lr_scale: float = 1.0


def batchify(ids: torch.Tensor, batch_size: int, what: str = "corpus") -> torch.Tensor:
    """`[rows, batch_size]`: the stream cut into `batch_size` contiguous chunks side by side; the tail that
    does not fill a row is dropped."""
    rows = len(ids) // batch_size
    if rows < 2:
        raise DataError(f"{what}: {len(ids)} tokens give fewer than 2 rows at batch size {batch_size}; "
                        f"a window needs an input row and a target row")
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()


def window(source: torch.Tensor, where: Window) -> tuple[torch.Tensor, torch.Tensor]:
    """`(inputs, targets)`, each `[length, batch]`."""
    end = where.start + where.length
    if where.start < 0 or where.length < 1 or end >= len(source):
        raise ValueError(f"window {where} does not fit {len(source)} rows (targets need one row more)")
    return source[where.start:end], source[where.start + 1:end + 1]


def evaluation_windows(rows: int, bptt: int) -> list[Window]:
    """Consecutive windows of `bptt` rows covering every target once (the last one shorter)."""
    return [Window(start, min(bptt, rows - 1 - start)) for start in range(0, rows - 1, bptt)]


def epoch_windows(rows: int, bptt: int, mode: SequenceLength, seed: int, epoch: int,
                  max_seq_len_delta: int = 20) -> list[Window]:
    """The training windows of one epoch; lengths drawn from a generator seeded by (seed, epoch).

    Like the codes, the loop runs while at least two rows remain after the start
    (`while i < rows - 1 - 1`) and advances by the drawn length.
    """
    rng = np.random.default_rng([seed, epoch])
    windows: list[Window] = []
    start = 0
    while start < rows - 2:
        drawn = _draw_length(rng, bptt, mode, max_seq_len_delta)
        windows.append(Window(start, min(drawn, rows - 1 - start), drawn / bptt))
        start += drawn
    return windows


def _draw_length(rng: np.random.Generator, bptt: int, mode: SequenceLength, max_seq_len_delta: int) -> int:
    if mode == "fixed":
        return bptt
    base = bptt if rng.random() < FULL_LENGTH_PROBABILITY else bptt / 2
    if mode == "search":
        return max(1, int(base))
    return min(max(MIN_LENGTH, int(rng.normal(base, LENGTH_STD))), bptt + max_seq_len_delta)
