"""All pairwise Procrustes (angular + Euclidean) and linear CKA among many representations.

Batched ``neurokpflow.compare.pairwise`` against computing one pair at a time with scipy/numpy,
timed in the same run. Baselines (timed on a subset of pairs and extrapolated, as printed):
  scipy   : scipy.spatial.procrustes (disparity -> angle, with norms -> Euclidean) + numpy CKA per pair
  numpy   : the same formulas written tightly per pair (centre, svd(X^T Y) values, Frobenius norms)
Usage (from the repository root): python -m benchmarks.bench_compare [--n-reps 50 --samples 2000 --units 256 --baseline-pairs 40]
"""
from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import scipy.spatial
import torch

from neurokpflow.compare import pairwise


def make_representations(n_reps: int, samples: int, units: int, seed: int = 0) -> list[np.ndarray]:
    """Model-like representations: a shared 20-dim latent mapped to units, plus private noise."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((samples, 20))
    return [np.tanh(latent @ rng.standard_normal((20, units)) / 3) + 0.3 * rng.standard_normal((samples, units))
            for _ in range(n_reps)]


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(0), y - y.mean(0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def pair_scipy(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    disparity = scipy.spatial.procrustes(x, y)[2]
    cosine = np.sqrt(max(1.0 - disparity, 0.0))
    nx, ny = np.linalg.norm(x - x.mean(0)), np.linalg.norm(y - y.mean(0))
    euclid = np.sqrt(max(nx ** 2 + ny ** 2 - 2 * cosine * nx * ny, 0.0))
    return float(np.arccos(min(cosine, 1.0))), float(euclid), cka_numpy(x, y)


def pair_numpy(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    x, y = x - x.mean(0), y - y.mean(0)
    cross = x.T @ y
    nuclear = np.linalg.svd(cross, compute_uv=False).sum()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    cka = np.linalg.norm(cross) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    return (float(np.arccos(min(nuclear / (nx * ny), 1.0))), float(np.sqrt(max(nx ** 2 + ny ** 2 - 2 * nuclear, 0))),
            float(cka))


def time_baseline(fn, reps, pairs) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    values = np.array([fn(reps[i], reps[j]) for i, j in pairs])
    return time.perf_counter() - start, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-reps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--baseline-pairs", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    reps = make_representations(args.n_reps, args.samples, args.units)
    all_pairs = list(itertools.combinations(range(args.n_reps), 2))
    subset = [all_pairs[k] for k in np.linspace(0, len(all_pairs) - 1, min(args.baseline_pairs, len(all_pairs))).astype(int)]
    scale = len(all_pairs) / len(subset)
    measures = ["procrustes", "procrustes_euclidean", "cka"]
    print(f"{args.n_reps} representations of {args.samples} x {args.units}: {len(all_pairs)} pairs, "
          f"measures {measures}; torch threads {torch.get_num_threads()}, device {args.device}")

    timings = {}
    for name, dtype in (("batched float64", torch.float64), ("batched float32", torch.float32)):
        pairwise(reps[:3], measures, device=args.device, dtype=dtype)  # warm-up
        start = time.perf_counter()
        result = pairwise(reps, measures, device=args.device, dtype=dtype)
        timings[name] = time.perf_counter() - start
        ours = np.stack([result.values[:, i, j] for i, j in subset])
        if dtype == torch.float64:
            ours64 = ours
        print(f"{name:>16}: {timings[name]:8.2f} s for all {len(all_pairs)} pairs")

    for name, fn in (("scipy per pair", pair_scipy), ("numpy per pair", pair_numpy)):
        seconds, values = time_baseline(fn, reps, subset)
        timings[name] = seconds * scale
        err = np.abs(values - ours64).max()
        print(f"{name:>16}: {seconds:8.2f} s for {len(subset)} pairs -> {timings[name]:8.2f} s extrapolated to "
              f"{len(all_pairs)} pairs (max |difference| vs batched float64: {err:.1e})")
    err32 = np.abs(ours - ours64).max()
    print(f"batched float32 vs float64 max |difference| on the subset: {err32:.1e}")
    for base in ("scipy per pair", "numpy per pair"):
        for ours_name in ("batched float64", "batched float32"):
            print(f"ratio {base} / {ours_name}: {timings[base] / timings[ours_name]:6.1f}x")


if __name__ == "__main__":
    main()
