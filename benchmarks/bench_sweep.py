"""A sweep of small runs (train + collapse + compare) on a 2-worker dask LocalCluster against serially in one process.

Printed side by side from one run: wall time of each engine and their ratio, the torch thread count
of each run, the mean per-run time inside a dask worker next to the same runs in this plain process,
and the engine's overhead per run (worker-seconds not spent inside runs, divided by the run count).

Then the same sweep on a cluster that is already running (``--scheduler``, as a cluster kept between
sweeps is used): the engine's own local cluster, started and its workers' run code imported before
the clock (``--no-running`` leaves it out).

Next to them, the same runs split over as many plain Python processes as workers, with no engine at
all (``--plain``, on by default): each process imports the run code, then waits for a common start
signal and runs its share (runs ``i, i + n, ...``) one after the other.  Its wall time from the
signal is what the machine allows for the runs themselves, two of them at a time; from the launch,
imports included, it is the best that any engine starting fresh processes could do with that
split.  Both bound the dask figure from above.
Each run is compared at 3 checkpoints with the real Chewie recording when ``../shared/data`` (or
``$NEUROKPFLOW_DATA``) holds it; otherwise the runs train and collapse only (said in the output).
Usage (from the repository root): python -m benchmarks.bench_sweep [--runs 8 --workers 2 --hidden 32 --steps 60]
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
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
    parser.add_argument("--no-running", dest="running", action="store_false",
                        help="leave out the sweep on an already running cluster")
    parser.add_argument("--no-plain", dest="plain", action="store_false",
                        help="leave out the engine-free baseline of plain processes")
    parser.add_argument("--plain-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sweep, recordings = make_sweep(args)
    if args.plain_child is not None:
        return plain_child(args, sweep)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        serial = run_sweep(sweep, os.path.join(tmp, "serial"), scheduler="inline", progress=False)
        t_serial = time.perf_counter() - t0
        t0 = time.perf_counter()
        dask = run_sweep(sweep, os.path.join(tmp, "dask"), n_workers=args.workers, progress=False)
        t_dask = time.perf_counter() - t0
        t_running = running_cluster(args, sweep, os.path.join(tmp, "running"), serial) if args.running else None
        plain = plain_processes(args, os.path.join(tmp, "plain")) if args.plain else None
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
    if t_running is not None:
        print(f"dask, cluster running    : {t_running:8.2f} s   speed-up x{t_serial / t_running:.2f}   (--scheduler: "
              f"{args.workers} workers started and their run code imported before the clock)")
    print(f"per run, plain process   : {in_process:8.3f} s")
    print(f"per run, in a dask worker: {in_worker:8.3f} s   ratio x{in_worker / in_process:.2f}")
    print(f"engine overhead per run  : {overhead:8.3f} s   (cluster start-up included)")
    print(f"numbers identical        : {same}")
    if plain is not None:
        from_launch, from_go, seconds = plain
        print(f"{args.workers} plain processes, no engine, runs split i::{args.workers}:")
        print(f"  from a common start, imports done: {from_go:8.2f} s   speed-up x{t_serial / from_go:.2f}"
              "   (what the machine allows)")
        print(f"  from launch, imports included    : {from_launch:8.2f} s   speed-up x{t_serial / from_launch:.2f}"
              "   (best for fresh processes)")
        print(f"  per run                          : {np.mean(seconds):8.3f} s   ratio x"
              f"{np.mean(seconds) / in_process:.2f} to the serial process")


def make_sweep(args):
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
    return sweep, recordings


def running_cluster(args, sweep, out, serial):
    """Seconds of the sweep on a cluster started beforehand (as ``--scheduler tcp://...`` uses one): the
    engine's own cluster, whose workers import the run code as they start, all before the clock; the
    results must equal the serial ones."""
    from dask.distributed import Client

    from neurokpflow.sweep.engine import local_cluster

    with local_cluster(args.workers) as cluster, Client(cluster) as client:
        client.wait_for_workers(args.workers)
        client.run(lambda: None)              # every worker up and its preload done
        t0 = time.perf_counter()
        ds = run_sweep(sweep, out, scheduler=cluster.scheduler_address, progress=False)
        seconds = time.perf_counter() - t0
    if not all(np.array_equal(serial[v].values, ds[v].values, equal_nan=True) for v in serial.data_vars):
        raise RuntimeError("the sweep on the running cluster gave other numbers than the serial one")
    return seconds


def plain_processes(args, out):
    """Launch ``args.workers`` fresh processes, let them import, start them together; returns
    (wall from launch, wall from the start signal, per-run seconds)."""
    common = [sys.executable, "-m", "benchmarks.bench_sweep", "--runs", str(args.runs), "--workers",
              str(args.workers), "--hidden", str(args.hidden), "--steps", str(args.steps), "--out", out]
    root = Path(__file__).resolve().parents[1]
    t_launch = time.perf_counter()
    children = [subprocess.Popen(common + ["--plain-child", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, cwd=root) for i in range(args.workers)]
    for child in children:
        if child.stdout.readline().strip() != "ready":
            raise RuntimeError("a plain benchmark process failed to start")
    t_go = time.perf_counter()
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    seconds = []
    for child in children:
        seconds += json.loads(child.stdout.readline())
        child.wait()
    t_end = time.perf_counter()
    return t_end - t_launch, t_end - t_go, seconds


def plain_child(args, sweep):
    """One plain process: everything imported before "ready"; after "go", read the recordings and
    run runs ``i, i + n, ...`` with the engine's own unit of work, one after the other."""
    from neurokpflow.sweep.engine import _run_and_store, check_recordings
    for module in ("neurokpflow.analysis", "neurokpflow.compare"):   # what a worker imports as it starts
        importlib.import_module(module)

    print("ready", flush=True)
    sys.stdin.readline()
    check_recordings(sweep)
    mine = list(sweep.runs())[args.plain_child::args.workers]
    seconds = []
    out = os.path.join(args.out, str(args.plain_child))
    for run in mine:
        t0 = time.perf_counter()
        _run_and_store(run, out, sweep.analysis(), sweep.threads)
        seconds.append(time.perf_counter() - t0)
    print(json.dumps(seconds), flush=True)


if __name__ == "__main__":
    main()
