"""Comparison benchmarks, each printing its numbers side by side from one run.

  pairwise  : all pairwise Procrustes (angular + Euclidean) and linear CKA among many representations
  coverage  : calibration of the bootstrap intervals on simulated populations with a known noise-free score
  parallel  : a 1000-replicate bootstrap of debiased CKA on the M1 recording at n_jobs=1 and 2 (threads, a cold
              and a warm process pool, backend "auto"), repeated, with the load average before and after:
  python -m benchmarks.bench_compare parallel [--n-boot-parallel 1000]
  dsa       : one DSA score on the M1 recording, default rank rule vs the old full numerical rank
Usage (from the repository root): python -m benchmarks.bench_compare [pairwise|coverage|parallel|dsa|all] [options]

pairwise:

Batched ``neurokpflow.compare.pairwise`` against computing one pair at a time with scipy/numpy,
timed in the same run. Baselines (timed on a subset of pairs and extrapolated, as printed):
  scipy   : scipy.spatial.procrustes (disparity -> angle, with norms -> Euclidean) + numpy CKA per pair
  numpy   : the same formulas written tightly per pair (centre, svd(X^T Y) values, Frobenius norms)
  python -m benchmarks.bench_compare pairwise [--n-reps 50 --samples 2000 --units 256 --baseline-pairs 40]
coverage (noise-corrected estimators with their default interval over trials: BCa for CKA, the bootstrap
bias-corrected estimate with the basic interval for the Procrustes angle (bias measured against the plug-in
target) and for crossnobis RSA; next to the percentile interval over conditions of the plain estimators, the
method before BCa):
  python -m benchmarks.bench_compare coverage [--datasets 200 --n-boot 200 --n-jobs 2]   (n-jobs: data sets in parallel)
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from pathlib import Path

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


def bench_pairwise(args) -> None:
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



def _coverage_measures():
    import neurokpflow.compare as nc

    truth = {"linear CKA": nc.CKA(), "Procrustes angle": nc.Procrustes(), "RSA Spearman": nc.RSA("sqeuclidean")}
    new = {"linear CKA": nc.CKA(cross_validated=True), "Procrustes angle": nc.Procrustes(cross_validated=True),
           "RSA Spearman": nc.RSA("crossnobis")}
    old = {"linear CKA": nc.CKA(), "Procrustes angle": nc.Procrustes(), "RSA Spearman": nc.RSA()}
    return truth, new, old


def coverage_one(i: int, pair, n_boot: int) -> dict:
    """Data set i: per (kind, estimator) (truth, estimate, low, high, se, method), new defaults and old method."""
    import neurokpflow.compare as nc

    torch.set_num_threads(1)
    truth_measures, new, old = _coverage_measures()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in new:
            truth = float(truth_measures[name](pair.first_means, pair.second_means))
            b = nc.bootstrap(new[name], pair.first, pair.second, n_boot=n_boot, seed=i)
            out["new", name] = (truth, b.estimate, b.low, b.high, b.se, b.method)
            b = nc.bootstrap(old[name], pair.first, pair.second, over="conditions", interval="percentile",
                             n_boot=n_boot, seed=i)
            out["old", name] = (truth, b.estimate, b.low, b.high, b.se, b.method)
    return out


def coverage_rows(n_datasets: int, n_boot: int, seed: int = 0, n_jobs: int = 1):
    """Per data set and estimator: (truth, estimate, low, high, se) of the new defaults and of the old method.
    The data sets are drawn in order from one generator; ``n_jobs`` > 1 spreads whole data sets over processes
    (the numbers do not change)."""
    from concurrent.futures import ProcessPoolExecutor

    from neurokpflow.compare.simulate import simulate_pair

    rng = np.random.default_rng(seed)
    pairs = [simulate_pair(rng) for _ in range(n_datasets)]
    if n_jobs > 1:
        with ProcessPoolExecutor(n_jobs) as pool:
            results = list(pool.map(coverage_one, range(n_datasets), pairs, [n_boot] * n_datasets))
    else:
        results = []
        for i, pair in enumerate(pairs):
            if i % 20 == 0:
                print(f"  data set {i}/{n_datasets}", file=sys.stderr, flush=True)
            results.append(coverage_one(i, pair, n_boot))
    rows = {key: np.asarray([r[key][:5] for r in results]) for key in results[0]}
    methods = {name: [r["new", name][5] for r in results] for kind, name in results[0] if kind == "new"}
    return rows, methods


def bench_coverage(args) -> None:
    start = time.perf_counter()
    rows, methods = coverage_rows(args.datasets, args.n_boot, n_jobs=args.n_jobs)
    print(f"{args.datasets} simulated data sets (8 conditions x 10 time bins x 16 trials, noise SD 1.5, simulate_pair defaults), "
          f"{args.n_boot} replicates, nominal 95 %; {time.perf_counter() - start:.0f} s")
    print("mean SE: mean bootstrap SE; RMSE: root mean square of estimate - truth (calibrated: RMSE ~ mean SE)")
    print(f"{'estimator':<17} {'interval':<48} {'covers truth':>13} {'estimate inside':>16} {'mean bias':>10} "
          f"{'RMSE':>7} {'mean SE':>8}")
    _, new, _ = _coverage_measures()
    fallbacks = {name: sum(m != new[name].interval for m in methods[name]) for name in methods}
    for name in ("linear CKA", "Procrustes angle", "RSA Spearman"):
        labels = {"new": f"noise-corrected, {new[name].interval} over trials", "old": "plain, percentile over conditions (old)"}
        for kind in ("new", "old"):
            r = rows[kind, name]
            cover = np.sum((r[:, 2] <= r[:, 0]) & (r[:, 0] <= r[:, 3]))
            inside = np.sum((r[:, 2] <= r[:, 1]) & (r[:, 1] <= r[:, 3]))
            error = r[:, 1] - r[:, 0]
            print(f"{name:<17} {labels[kind]:<48} {cover:>5}/{len(r)} {100 * cover / len(r):4.0f}% "
                  f"{inside:>8}/{len(r)} {np.mean(error):>+10.4f} {np.sqrt(np.mean(error ** 2)):>7.4f} "
                  f"{np.mean(r[:, 4]):>8.4f}")
    for name, count in fallbacks.items():
        if count:
            print(f"{name}: {count}/{len(methods[name])} data sets fell back to the basic interval (every replicate on "
                  "one side of the estimate, BCa undefined)")


def _m1_pair():
    import xarray as xr

    from neurokpflow.data import load_recording

    path = Path(os.environ.get("NEUROKPFLOW_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    recording = load_recording(path / "m1_center_out_chewie.nwb", condition="target")
    means = recording.groupby("condition").mean("trial").transpose("condition", "time", "unit")
    rng = np.random.default_rng(0)
    model = xr.DataArray(np.tanh(means.values @ rng.standard_normal((means.sizes["unit"], 64)) / 8),
                         dims=("condition", "time", "unit"),
                         coords={"condition": means["condition"].values, "time": means["time"].values})
    return model, recording


def bench_parallel(args) -> None:
    import neurokpflow.compare as nc
    from neurokpflow.compare import _replicates

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", nc.BootstrapBiasWarning)
    model, recording = _m1_pair()
    m = nc.CKA(debiased=True)
    print(f"{args.n_boot_parallel}-replicate bootstrap (over trials) of {m.estimator}: model (64 units) vs the M1 "
          f"recording ({recording.sizes['trial']} trials, {recording.sizes['unit']} units); {os.cpu_count()} CPUs, "
          f"load average before {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    times, bounds, chosen = {}, {}, {}
    original = _replicates.choose_backend
    _replicates.choose_backend = lambda *a: chosen.setdefault("auto", original(*a))
    runs = [("1 worker", 1, "threads"), ("2 threads", 2, "threads"), ("2 processes (cold pool)", 2, "processes"),
            ("2 processes (warm pool)", 2, "processes"), ("2 workers, backend auto", 2, "auto"),
            ("1 worker (again)", 1, "threads"), ("2 threads (again)", 2, "threads"),
            ("2 processes (warm, again)", 2, "processes")]
    for label, jobs, backend in runs:
        chosen.pop("auto", None)
        start = time.perf_counter()
        b = nc.bootstrap(m, model, recording, over="trials", n_boot=args.n_boot_parallel, n_jobs=jobs,
                         backend=backend)
        times[label], bounds[label] = time.perf_counter() - start, (b.low, b.high)
        note = f" (auto chose {chosen['auto']})" if "auto" in chosen else ""
        print(f"{label:>27}: {times[label]:6.2f} s  interval [{b.low:.6f}, {b.high:.6f}]{note}", flush=True)
    _replicates.choose_backend = original
    print(f"load average after {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"identical intervals at every n_jobs and backend: {len(set(bounds.values())) == 1}")
    serial = min(times["1 worker"], times["1 worker (again)"])
    best = {"threads": min(times["2 threads"], times["2 threads (again)"]),
            "processes (warm)": min(times["2 processes (warm pool)"], times["2 processes (warm, again)"]),
            "processes (cold)": times["2 processes (cold pool)"], "auto": times["2 workers, backend auto"]}
    for label, seconds in best.items():
        print(f"speed-up 2 workers, {label} vs 1 worker (best of the repeated runs): {serial / seconds:.2f}x")


def bench_dsa(args) -> None:
    import neurokpflow.compare as nc

    torch.set_num_threads(1)
    model, recording = _m1_pair()
    print(f"DSA between a model (64 units) and the M1 recording (condition means, {recording.sizes['unit']} units), "
          "one thread")
    for label, m in (("default (rank rule: 99 % energy)", nc.DSA()), ("old default (numerical rank)", nc.DSA(rank=None))):
        a, b = nc.align(model, recording)
        start = time.perf_counter()
        score = m.score(a, b)
        seconds = time.perf_counter() - start
        print(f"{label:>34}: {seconds:6.2f} s  rank {score.details['rank']}, energy kept "
              f"{tuple(round(e, 4) for e in score.details['energy_kept'])}, value {float(score):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="pairwise", choices=("pairwise", "coverage", "parallel", "dsa", "all"))
    parser.add_argument("--n-reps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--baseline-pairs", type=int, default=40)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--n-boot-parallel", type=int, default=1000)
    args = parser.parse_args()
    benches = {"pairwise": bench_pairwise, "coverage": bench_coverage, "parallel": bench_parallel, "dsa": bench_dsa}
    for name in (benches if args.which == "all" else [args.which]):
        benches[name](args)
        sys.stdout.flush()


if __name__ == "__main__":
    main()
