"""``train.seed`` and ``train.cudnn``: the same spec gives the same run.

Each process seeds Python, NumPy and torch (CPU and CUDA) with
``seed + rank`` so data-parallel ranks draw different augmentations.  A seed
of -1 leaves the generators as they are.  ``cudnn.deterministic`` also asks
torch for deterministic algorithms (warning, not failing, where an op has
none, such as grid_sample's CUDA backward) and sets the cuBLAS workspace
that deterministic matmuls need.
"""
from __future__ import annotations

import os
import random
from typing import Tuple

import numpy as np
import torch


def seed_everything(seed: int, rank: int = 0) -> None:
    if seed is None or seed < 0:
        return
    value = int(seed) + int(rank)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)  # also seeds every CUDA device


def set_deterministic(deterministic: bool, benchmark: bool = False) -> None:
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cudnn.benchmark = bool(benchmark) and not deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(bool(deterministic), warn_only=True)


def determinism_state() -> Tuple[bool, bool, bool, bool]:
    """The process-wide flags :func:`set_deterministic` changes, for :func:`restore_determinism`."""
    return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)


def restore_determinism(state: Tuple[bool, bool, bool, bool]) -> None:
    algorithms, warn_only, cudnn_deterministic, cudnn_benchmark = state
    torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
    torch.backends.cudnn.deterministic = cudnn_deterministic
    torch.backends.cudnn.benchmark = cudnn_benchmark
