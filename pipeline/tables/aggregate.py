"""Summaries over the seeds of one (dataset, method): mean, std, counts, cost unit, status text.

Every table reduces its per-seed rows the same way, so "n", "±" and "status" mean the same thing in all
of them: statistics over the seeds that finished, and a status that names every seed that did not.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

CPU_DAYS = "CPU-days"
GPU_DAYS = "GPU-days"
COUNT_KEYS = ("n_finished", "n_planned")


def seed_stats(runs: pd.DataFrame, key: str) -> tuple[float, float]:
    """Mean and sample std (n - 1) of `key` over the seeds where it exists; std is NaN for one seed."""
    values = runs[key].dropna()
    if values.empty:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1))


def seed_mean(runs: pd.DataFrame, key: str) -> float:
    """Mean of `key` over the seeds where it exists (NaN when none)."""
    return seed_stats(runs, key)[0]


def counts(runs: pd.DataFrame) -> dict[str, int]:
    """Finished and planned seeds."""
    return {"n_finished": int((runs["status"] == "ok").sum()), "n_planned": len(runs)}


def cost_unit(runs: pd.DataFrame) -> str | None:
    """CPU-days or GPU-days, from where the searches with a known cost ran (None when no cost is known)."""
    on_cpu = {bool(flag) for flag, cost in zip(runs["search_on_cpu"], runs["search_cost_days"], strict=True)
              if not pd.isna(cost)}
    if not on_cpu:
        return None
    if on_cpu == {True}:
        return CPU_DAYS
    if on_cpu == {False}:
        return GPU_DAYS
    return f"{GPU_DAYS} and {CPU_DAYS}"


def status_text(runs: pd.DataFrame) -> str:
    """"ok", or the reason of every seed that did not finish, in seed order."""
    reasons = [reason for status, reason in zip(runs["status"], runs["reason"], strict=True)
               if status != "ok"]
    return "; ".join(reasons) if reasons else "ok"


def our_summary(runs: pd.DataFrame, prefix: str, key: str) -> dict[str, Any]:
    """`{prefix}_mean` and `{prefix}_std` of one metric."""
    mean, std = seed_stats(runs, key)
    return {f"{prefix}_mean": mean, f"{prefix}_std": std}
