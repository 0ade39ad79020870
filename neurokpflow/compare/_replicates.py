"""Deterministic, parallel evaluation of resampling replicates.

Replicate ``i`` draws its random numbers from its own stream, ``np.random.SeedSequence(seed).spawn(n)[i]``,
so its value does not depend on which worker runs it or in which order: the same seed gives the same
numbers at every ``n_jobs`` and with either backend.

Backends
--------
``"threads"``: a thread pool; no start-up cost, but a replicate's Python work holds the GIL, so two
threads gain only where the replicates spend their time inside large torch / LAPACK calls.

``"processes"``: one persistent pool of worker processes (loky, kept alive between calls for
``POOL_IDLE_SECONDS``), every worker running torch and BLAS on one thread. The replicate function and
its data are pickled once per call into a file in shared memory (``/dev/shm`` where it exists); each
worker loads it once per call and caches it, and the tasks sent to the workers are only replicate
ranges. The replicates are cut into ``CHUNKS_PER_WORKER`` chunks per worker, handed out as workers
become free, so a worker slowed down by other load takes fewer of them.

``"auto"`` (the default): the first replicate is computed in the calling process and timed; the rest
run in processes when their estimated serial time exceeds ``PROCESS_MIN_SECONDS[warm]`` (the pool's
start-up: measured about 4 s for two workers importing torch when cold, on a 2-core machine; a few
milliseconds of messages and the call's pickled data when warm), and in threads otherwise. Replicate 0 is computed from its own stream either way, so ``"auto"``
gives the same numbers as the other backends.
"""
from __future__ import annotations

import os
import pickle
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

from ._measure import check_option
from ._result import DegenerateInputError
from ..errors import InputError

BACKENDS = ("auto", "threads", "processes")
#: work (estimated serial seconds for the remaining replicates) above which "auto" uses processes,
#: for a cold and a warm pool
PROCESS_MIN_SECONDS = {False: 8.0, True: 0.5}
CHUNKS_PER_WORKER = 4
POOL_IDLE_SECONDS = 300
_THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
_last_pool_use: dict[int, float] = {}


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
        raise InputError(f"n_jobs must be >= 1 or -1 (all CPUs), got {n_jobs}")
    return int(n_jobs)


def _evaluate(fn: Callable[[np.random.Generator], float], streams: Sequence[np.random.SeedSequence]) -> list:
    out: list[float | None] = []
    for stream in streams:
        try:
            out.append(float(fn(np.random.default_rng(stream))))
        except DegenerateInputError:
            out.append(None)
    return out


def _evaluate_indexed(fn: Callable[[int], float | None], indices) -> list:
    return [fn(int(i)) for i in indices]


def _pin_threads() -> None:
    """Worker initializer: torch and every BLAS/OpenMP pool on one thread."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


_worker_cache: dict[str, Any] = {}


def _process_chunk(path: str, key: str, seed: int | None, n: int, lo: int, hi: int) -> list:
    """Runs in a worker: the call's function, loaded from ``path`` once per call, on replicates lo..hi-1
    (``seed`` None: on the indices lo..hi-1, see :func:`run_indexed`)."""
    if key not in _worker_cache:
        _worker_cache.clear()                   # one call's data at a time
        with open(path, "rb") as f:
            _worker_cache[key] = pickle.load(f)
    if seed is None:
        return _evaluate_indexed(_worker_cache[key], range(lo, hi))
    return _evaluate(_worker_cache[key], replicate_streams(seed, n)[lo:hi])


def _pool(jobs: int):
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=jobs, timeout=POOL_IDLE_SECONDS, initializer=_pin_threads,
                                 env=_THREAD_ENV)


def pool_is_warm(jobs: int) -> bool:
    """Whether a process pool of ``jobs`` workers was used within its idle timeout (its workers live)."""
    last = _last_pool_use.get(jobs)
    return last is not None and time.monotonic() - last < 0.9 * POOL_IDLE_SECONDS


def _shared_dir() -> str | None:
    """/dev/shm (memory-backed) where writable, else the default temporary directory."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _run_processes(fn, seed: int | None, n: int, lo: int, jobs: int) -> list:
    fd, path = tempfile.mkstemp(prefix="neurokpflow-replicates-", suffix=".pkl", dir=_shared_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(fn, f, protocol=pickle.HIGHEST_PROTOCOL)
        key = uuid.uuid4().hex
        bounds = np.linspace(lo, n, min(n - lo, CHUNKS_PER_WORKER * jobs) + 1).astype(int)
        executor = _pool(jobs)
        futures = [executor.submit(_process_chunk, path, key, seed, n, int(a), int(b))
                   for a, b in zip(bounds[:-1], bounds[1:])]
        parts = [future.result() for future in futures]
        _last_pool_use[jobs] = time.monotonic()
    finally:
        os.unlink(path)
    return [v for part in parts for v in part]


def _run_threads(evaluate, items: Sequence, jobs: int) -> list:
    bounds = np.linspace(0, len(items), min(len(items), CHUNKS_PER_WORKER * jobs) + 1).astype(int)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        parts = list(pool.map(lambda ab: evaluate(items[ab[0]:ab[1]]), zip(bounds[:-1], bounds[1:])))
    return [v for part in parts for v in part]


def choose_backend(seconds_per_replicate: float, remaining: int, jobs: int) -> str:
    """The ``"auto"`` rule (see the module docstring)."""
    warm = pool_is_warm(jobs)
    return "processes" if seconds_per_replicate * remaining > PROCESS_MIN_SECONDS[warm] else "threads"


def run_replicates(fn: Callable[[np.random.Generator], float], seed: int, n: int, *, n_jobs: int | None = 1,
                   backend: str = "auto") -> list[float | None]:
    """``[fn(rng_0), ..., fn(rng_{n-1})]``, None where the measure was undefined (DegenerateInputError)."""
    check_option("backend", backend, BACKENDS)
    jobs = resolve_jobs(n_jobs)
    streams = replicate_streams(seed, n)
    if jobs == 1 or n < 2:
        return _evaluate(fn, streams)
    head: list = []
    if backend == "auto":
        start = time.perf_counter()
        head = _evaluate(fn, streams[:1])
        backend = choose_backend(time.perf_counter() - start, n - 1, jobs)
    if backend == "threads":
        return head + _run_threads(lambda part: _evaluate(fn, part), streams[len(head):], jobs)
    return head + _run_processes(fn, seed, n, len(head), jobs)


def run_indexed(fn: Callable[[int], float | None], n: int, *, n_jobs: int | None = 1,
                backend: str = "auto") -> list[float | None]:
    """``[fn(0), ..., fn(n-1)]`` for deterministic work (jackknife values), on the same workers and by the
    same rule as :func:`run_replicates`."""
    check_option("backend", backend, BACKENDS)
    jobs = resolve_jobs(n_jobs)
    if jobs == 1 or n < 2:
        return _evaluate_indexed(fn, range(n))
    head: list = []
    if backend == "auto":
        start = time.perf_counter()
        head = _evaluate_indexed(fn, range(1))
        backend = choose_backend(time.perf_counter() - start, n - 1, jobs)
    if backend == "threads":
        return head + _run_threads(lambda part: _evaluate_indexed(fn, part), range(len(head), n), jobs)
    return head + _run_processes(fn, None, n, len(head), jobs)


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
