"""Deterministic, parallel evaluation of resampling replicates.

Replicate ``i`` draws its random numbers from its own stream, ``np.random.SeedSequence(seed).spawn(n)[i]``,
so its value does not depend on which worker runs it or in which order: the same seed gives the same
numbers at every ``n_jobs``. Workers are threads (no start-up cost; the measures spend their time in
torch / LAPACK calls) or processes (``backend="processes"``, joblib's loky pool, reused between calls;
each worker runs torch and BLAS single-threaded).
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from ._measure import check_option
from ._result import DegenerateInputError

BACKENDS = ("threads", "processes")


def replicate_streams(seed: int, n: int) -> list[np.random.SeedSequence]:
    """One independent seed sequence per replicate."""
    return np.random.SeedSequence(seed).spawn(n)


def resolve_jobs(n_jobs: int | None) -> int:
    """``None`` or 1: serial; -1: one per CPU; k > 1: k workers."""
    if n_jobs is None:
        return 1
    if n_jobs == -1:
        return max(1, os.cpu_count() or 1)
    if int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be >= 1 or -1 (all CPUs), got {n_jobs}")
    return int(n_jobs)


class _Chunk:
    """Picklable unit of work: ``fn`` on a contiguous run of replicate streams."""

    def __init__(self, fn: Callable[[np.random.Generator], float], streams: Sequence[np.random.SeedSequence]):
        self.fn, self.streams = fn, list(streams)

    def __call__(self) -> list[float | None]:
        out = []
        for stream in self.streams:
            try:
                out.append(float(self.fn(np.random.default_rng(stream))))
            except DegenerateInputError:
                out.append(None)
        return out


def _run_process_chunk(chunk: _Chunk) -> list[float | None]:
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return chunk()


def run_replicates(fn: Callable[[np.random.Generator], float], seed: int, n: int, *, n_jobs: int | None = 1,
                   backend: str = "threads") -> list[float | None]:
    """``[fn(rng_0), ..., fn(rng_{n-1})]``, None where the measure was undefined (DegenerateInputError)."""
    check_option("backend", backend, BACKENDS)
    jobs = resolve_jobs(n_jobs)
    streams = replicate_streams(seed, n)
    if jobs == 1 or n < 2:
        return _Chunk(fn, streams)()
    n_chunks = min(n, 4 * jobs if backend == "threads" else jobs)   # processes: pickle the inputs once per worker
    bounds = np.linspace(0, n, n_chunks + 1).astype(int)
    chunks = [_Chunk(fn, streams[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    if backend == "threads":
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            parts = list(pool.map(lambda c: c(), chunks))
    else:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=jobs, backend="loky")(delayed(_run_process_chunk)(c) for c in chunks)
    return [v for part in parts for v in part]


def kept_values(values: Sequence[Any], what: str, stacklevel: int = 3) -> np.ndarray:
    """Defined replicate values; too many undefined ones is an error, a few a warning (counted, not hidden)."""
    import warnings

    failed = sum(v is None for v in values)
    if failed > 0.1 * len(values):
        raise DegenerateInputError(f"the measure was undefined on {failed}/{len(values)} {what}; too few conditions "
                                   "or trials")
    if failed:
        warnings.warn(f"{failed}/{len(values)} {what} were degenerate and left out", RuntimeWarning,
                      stacklevel=stacklevel)
    return np.asarray([v for v in values if v is not None], dtype=float)
