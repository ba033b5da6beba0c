"""Benchmarks (``make bench`` / ``python -m lieq.bench``): costs in forward-pass equivalents, not timed tests.

A forward-pass equivalent (fpe) is the wall time of a computation divided by the wall time of one plain forward pass
(``torch.no_grad``) of the same model on the same batch, measured side by side in the same process.  Each benchmark
module has ``run(device) -> DataFrame``; ``python -m lieq.bench`` writes ``data/bench/<module>.csv``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["BENCHMARKS", "seconds"]

#: Benchmark modules run by ``python -m lieq.bench`` (each writes data/bench/<name>.csv).
BENCHMARKS: list[str] = ["e2e", "layerwise", "baselines"]


def seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, best: bool = False) -> float:
    """Median (``best``: minimum) wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs (CUDA
    synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times) if best else sorted(times)[len(times) // 2]
