"""DARTS-ES: stop a search when the curvature of the validation loss w.r.t. the architecture grows too fast.

Zela et al. (ICLR 2020, Section 4.3) observe that the dominant eigenvalue lambda of the Hessian of the
validation loss w.r.t. the architecture grows sharply before DARTS collapses to parameter-free cells.
Their rule: with lambda-bar(i) the average of lambda over a window of w epochs around epoch i, stop at the
first epoch i where lambda-bar(i - k) / lambda-bar(i) < T, and return the architecture of epoch i - k
(paper: w = 5, k = 5, T = 0.75). The released code (automl/RobustDARTS, `src/utils.py` `EVLocalAvg`)
centres the window on its epoch, so after epoch e the newest complete average is the one of epoch
e - w // 2; that is the i tested after epoch e here too. No decision is taken before lambda-bar(i - k)
exists, nor while i - k is earlier than `start_epoch` (the code's `es_start_epoch`).

Pure and torch-free: the loop passes the eigenvalue of every finished epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class EarlyStop:
    """Where a search stopped: after `stopped_after_epoch`, returning the architecture of `returned_epoch`."""

    stopped_after_epoch: int
    returned_epoch: int
    ratio: float  # lambda-bar(returned_epoch) / lambda-bar(returned_epoch + k), the value compared with T


def local_average(eigenvalues: Sequence[float], epoch: int, window: int) -> float:
    """Mean of the eigenvalues of the `window` epochs centred on `epoch` (window is odd)."""
    half = window // 2
    values = eigenvalues[epoch - half: epoch + half + 1]
    return sum(values) / len(values)


def eigenvalue_stop(eigenvalues: Sequence[float], *, window: int, lag: int, threshold: float,
                    start_epoch: int = 0) -> EarlyStop | None:
    """The decision after the last epoch of `eigenvalues` (one per epoch, epoch 0 first); None: go on."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"early_stop.window must be a positive odd number of epochs, got {window}")
    half = window // 2
    last = len(eigenvalues) - 1
    current = last - half  # the newest epoch whose centred window is complete
    earlier = current - lag
    if earlier < max(half, start_epoch):
        return None
    now = local_average(eigenvalues, current, window)
    if now <= 0:  # curvature that is not positive has not grown: nothing to stop for
        return None
    ratio = local_average(eigenvalues, earlier, window) / now
    if ratio < threshold:
        return EarlyStop(stopped_after_epoch=last, returned_epoch=earlier, ratio=ratio)
    return None
