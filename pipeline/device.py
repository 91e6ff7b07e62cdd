"""Device choice, seeding and determinism: one code path for CPU and CUDA."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from pipeline.errors import ConfigError


def choose_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for `cuda` on a machine without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"runtime.device: '{name}' requested but no CUDA device is visible")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """A short human-readable device name for summaries and tables."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"


def pin_threads(threads: int) -> None:
    """Use exactly `threads` intra-op threads (params.yaml `runtime.threads`).

    Reductions split across threads sum in a different order, so the same search with 1 and 2 threads
    ends with alphas ~1e-6 apart and, on the tiny demo, other genotypes. Left to torch, the count is the
    machine's cores under DVC and by hand but OMP_NUM_THREADS (the rule's `threads`) under Snakemake;
    taken from the params, every engine computes the same bits.
    """
    torch.set_num_threads(threads)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed python, numpy and torch; with `deterministic`, make CPU/CUDA kernels reproducible."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated memory: CUDA allocator peak on GPU, process max RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
