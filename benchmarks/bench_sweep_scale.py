"""Where does a sweep stop scaling?  Storage per run, and the engine and store on many no-op runs.

1. One real run (train + collapse at 2 checkpoints + comparison with a recording when the real
   data are available) gives the storage per run: its folder (checkpoints, log) and its group in
   ``sweep.zarr``.
2. Simulated sweeps of N runs (default 100, 300, 1000) push a no-op unit of work through the
   engine's dask path (2-worker LocalCluster, start-up excluded): each task writes a copy of the
   real run's result group under its own run id, so the store sees the real load and the
   scheduler sees N tasks.  Timed separately: the dask round (submit -> all results back), the
   same N group writes serially in one process, the rerun scan (is each run done?), and the final
   combine (read every group, concatenate along ``run``, write and consolidate).
3. Each phase is fitted as a + b*N (least squares over the Ns) and extrapolated to 10^4 runs.

``--empty-only`` times just the scheduler: N tasks that do nothing, submitted and gathered the way
the engine does (one future per run, ``as_completed``), for the default sizes 1000, 3000, 10000.

Usage (from the repository root): python -m benchmarks.bench_sweep_scale [--sizes 100 300 1000]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _size(path: Path):
    files = [p for p in Path(path).rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def noop_run_and_store(run, out, template_store, threads):
    """The no-op unit of work: the real run's result group written under this run's id."""
    from neurokpflow._io import read_zarr_group as read_group, write_zarr_group as write_group
    from neurokpflow.sweep.spec import run_id

    ds = read_group(template_store, "template")
    rid = run_id(run)
    ds.attrs.update(run_id=rid, status="done", error="", threads=1, seconds=0.0, analysis="")
    write_group(ds, Path(out) / "sweep.zarr", f"runs/{rid}")
    return {k: ds.attrs[k] for k in ("run_id", "status", "error", "threads", "seconds")}


def real_run(tmp: Path, data: Path | None):
    from neurokpflow.sweep import Sweep, run_id, run_sweep
    from neurokpflow._io import read_zarr_group as read_group, write_zarr_group as write_group

    compute = {"collapse_at": [50, 100]}  # noqa
    recordings = {}
    chewie = data / "m1_center_out_chewie.nwb" if data else None
    if chewie is not None and chewie.exists():
        compute.update(compare_at=[0, 25, 50, 75, 100], measures=["cka", "procrustes"])
        recordings = {"chewie": {"path": str(chewie), "condition": "target"}}
    sweep = Sweep(grid={"task": "memory_pro", "hidden": 32, "steps": 100, "checkpoint_every": 25, "batch_size": 32},
                  compute=compute, recordings=recordings)
    out = tmp / "real"
    t0 = time.perf_counter()
    run_sweep(sweep, out, scheduler="inline", progress=False)
    seconds = time.perf_counter() - t0
    rid = run_id(sweep.runs()[0])
    folder_bytes, folder_files = _size(out / "runs" / rid)
    ckpt_bytes, n_ckpt = _size(out / "runs" / rid / "checkpoints")
    group_bytes, group_files = _size(out / "sweep.zarr" / "runs" / rid)
    template = tmp / "template.zarr"
    write_group(read_group(out / "sweep.zarr", f"runs/{rid}"), template, "template")
    print(f"one real run (H=32, 100 steps, checkpoint every 25, collapse at 2 checkpoints"
          f"{', compared with 1 recording at 5 checkpoints x 2 measures' if recordings else ''}): {seconds:.1f} s")
    print(f"  run folder      : {folder_bytes / 1e3:8.1f} kB in {folder_files} files "
          f"({n_ckpt} checkpoints: {ckpt_bytes / 1e3:.1f} kB)")
    print(f"  result group    : {group_bytes / 1e3:8.1f} kB in {group_files} files of sweep.zarr")
    return template


def simulated(n: int, tmp: Path, template: Path, client):
    from dask.distributed import as_completed

    from neurokpflow.sweep import Sweep, run_id
    from neurokpflow.sweep.engine import _analysis_id, _combine, _group_done, _zarr

    sweep = Sweep(grid={"task": "memory_pro", "hidden": 8, "steps": 2, "checkpoint_every": 2,
                        "seed": list(range(n))})
    runs = sweep.runs()
    out = tmp / f"sim{n}"
    _zarr().open_group(str(out / "sweep.zarr"), mode="a").require_group("runs")
    t0 = time.perf_counter()
    futures = [client.submit(noop_run_and_store, r, str(out), str(template), 1, key=f"run-{run_id(r)}-{n}", pure=False)
               for r in runs]
    for fut in as_completed(futures):
        fut.result()
    t_dask = time.perf_counter() - t0
    serial = tmp / f"serial{n}"
    _zarr().open_group(str(serial / "sweep.zarr"), mode="a").require_group("runs")
    t0 = time.perf_counter()
    for r in runs:
        noop_run_and_store(r, str(serial), str(template), 1)
    t_write = time.perf_counter() - t0
    shutil.rmtree(serial)
    t0 = time.perf_counter()
    done = sum(_group_done(out / "sweep.zarr", run_id(r), "") for r in runs)
    t_scan = time.perf_counter() - t0
    if done != n:
        bad = next(r for r in runs if not _group_done(out / "sweep.zarr", run_id(r), ""))
        group = _zarr().open_group(str(out / "sweep.zarr"), mode="r")["runs"]
        raise RuntimeError(f"{n - done} of {n} runs not done; e.g. {run_id(bad)}: "
                           f"{dict(group[run_id(bad)].attrs) if run_id(bad) in group else 'absent'}")
    t0 = time.perf_counter()
    ds = _combine(sweep, out)
    t_combine = time.perf_counter() - t0
    assert ds.sizes["run"] == n
    store_bytes, store_files = _size(out / "sweep.zarr")
    shutil.rmtree(out)
    return {"dask round": t_dask, "serial writes": t_write, "rerun scan": t_scan, "combine": t_combine,
            "store MB": store_bytes / 1e6, "store files": store_files}


def _nothing(i):
    return None


def empty_tasks(sizes, workers):
    from dask.distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.gather([client.submit(_nothing, i, pure=False) for i in range(10)])  # warm
        print(f"empty tasks through a {workers}-worker LocalCluster ({os.cpu_count()} CPU cores)")
        for n in sizes:
            t0 = time.perf_counter()
            futures = [client.submit(_nothing, i, key=f"empty-{n}-{i}", pure=False) for i in range(n)]
            for fut in as_completed(futures):
                fut.result()
            seconds = time.perf_counter() - t0
            print(f"{n:>8} tasks: {seconds:7.2f} s   {1e3 * seconds / n:6.2f} ms per task")
            del futures


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--target", type=int, default=10_000)
    parser.add_argument("--empty-only", action="store_true", help="time N empty tasks through the scheduler only")
    args = parser.parse_args()
    if args.empty_only:
        return empty_tasks(args.sizes if args.sizes != [100, 300, 1000] else [1000, 3000, 10_000], args.workers)
    import torch
    from dask.distributed import Client, LocalCluster

    torch.set_num_threads(1)
    env = os.environ.get("NEUROKPFLOW_DATA")
    data = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        template = real_run(tmp, data if data.is_dir() else None)
        rows = {}
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            warm = simulated(4, tmp, template, client)  # workers import the package before anything is timed
            assert warm["store files"] > 0
            for n in args.sizes:
                rows[n] = simulated(n, tmp, template, client)
    keys = list(next(iter(rows.values())))
    print(f"\nsimulated sweeps of no-op runs ({args.workers}-worker LocalCluster, {os.cpu_count()} CPU cores); "
          "seconds unless stated")
    print(f"{'runs':>8} " + " ".join(f"{k:>14}" for k in keys))
    for n, row in rows.items():
        print(f"{n:>8} " + " ".join(f"{row[k]:14.2f}" if isinstance(row[k], float) else f"{row[k]:14d}"
                                    for k in keys))
    sizes = np.array(list(rows), dtype=float)
    print(f"{'per run':>8} " + " ".join(f"{np.polyfit(sizes, [rows[n][k] for n in rows], 1)[0]:14.4f}"
                                        for k in keys) + "   (slope of a + b*N)")
    print(f"{args.target:>8} " + " ".join(f"{np.polyval(np.polyfit(sizes, [rows[n][k] for n in rows], 1), args.target):14.1f}"
                                        for k in keys) + "   (extrapolated)")


if __name__ == "__main__":
    main()
