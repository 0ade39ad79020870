"""A sweep of small runs (train + collapse + compare) on a 2-worker dask LocalCluster against serially in one process.

Printed side by side from one run: wall time of each engine and their ratio, the torch thread count
of each run, the mean per-run time inside a dask worker next to the same runs in this plain process,
and the engine's overhead per run (worker-seconds not spent inside runs, divided by the run count).
Each run is compared at 3 checkpoints with the real Chewie recording when ``../shared/data`` (or
``$NEUROKPFLOW_DATA``) holds it; otherwise the runs train and collapse only (said in the output).
Usage (from the repository root): python -m benchmarks.bench_sweep [--runs 8 --workers 2 --hidden 32 --steps 60]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from pathlib import Path

import numpy as np
import torch

from neurokpflow.sweep import Sweep, run_sweep


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = os.environ.get("NEUROKPFLOW_DATA")
    chewie = (Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data") \
        / "m1_center_out_chewie.nwb"
    compute = {"collapse_at": [args.steps // 2, args.steps]}
    recordings = {}
    if chewie.exists():
        compute.update(compare_at=[0, args.steps // 2, args.steps], measures=["cka", "procrustes"])
        recordings = {"chewie": {"path": str(chewie), "condition": "target"}}
    sweep = Sweep(grid={"task": "memory_pro", "hidden": args.hidden, "steps": args.steps,
                        "checkpoint_every": args.steps // 2, "batch_size": 32, "seed": list(range(args.runs))},
                  compute=compute, recordings=recordings, threads=1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        serial = run_sweep(sweep, os.path.join(tmp, "serial"), scheduler="inline", progress=False)
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        dask = run_sweep(sweep, os.path.join(tmp, "dask"), n_workers=args.workers, progress=False)
        t_dask = time.perf_counter() - t0
    same = all(np.array_equal(serial[v].values, dask[v].values, equal_nan=True) for v in serial.data_vars)
    in_worker = float(dask.seconds.mean())
    in_process = float(serial.seconds.mean())
    overhead = (t_dask * args.workers - float(dask.seconds.sum())) / args.runs
    compared = "compare with Chewie at 3 checkpoints" if recordings else "no recording found: no compare"
    print(f"{args.runs} runs (H={args.hidden}, {args.steps} steps, collapse at 2 checkpoints, {compared}), "
          f"{os.cpu_count()} CPU cores")
    print(f"torch threads per run: serial {sorted(set(serial.threads.values.tolist()))}, "
          f"dask {sorted(set(dask.threads.values.tolist()))}")
    print(f"serial, one process      : {t_serial:8.2f} s")
    print(f"dask, {args.workers} workers         : {t_dask:8.2f} s   speed-up x{t_serial / t_dask:.2f}")
    print(f"per run, plain process   : {in_process:8.3f} s")
    print(f"per run, in a dask worker: {in_worker:8.3f} s   ratio x{in_worker / in_process:.2f}")
    print(f"engine overhead per run  : {overhead:8.3f} s   (cluster start-up included)")
    print(f"numbers identical        : {same}")


if __name__ == "__main__":
    main()
