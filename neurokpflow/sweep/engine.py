"""Execute a :class:`Sweep` on dask.distributed (or inline) into one Zarr store.

Layout of ``OUT/sweep.zarr``: one group ``runs/<run_id>`` per run, written by the worker that ran
it (separate groups, so concurrent workers never write the same files), and the group
``combined`` written by the driver at the end and consolidated: the Dataset of every run along a
``run`` dimension with the hyperparameters, ``status``, ``error``, ``threads`` and ``seconds`` as
``run`` coordinates.  Run folders (checkpoints, ``log.nc``) are ``OUT/runs/<run_id>``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid
from importlib import metadata
from pathlib import Path

import numpy as np
import xarray as xr

from .._io import SWEEP_STORE, _zarr
from .._logging import get_logger
from .._io import read_zarr_group as read_group
from .._io import write_zarr_group as write_group
from .run import execute_run, recording
from .spec import RUN_FIELDS, Sweep, SweepSpecError, run_id
from ..errors import InputError, InputTypeError, MissingFileError, require_extra

__all__ = ["run_sweep", "open_sweep", "STORE"]

STORE = SWEEP_STORE
log = get_logger(__name__)


def _analysis_id(analysis: dict) -> str:
    return hashlib.sha256(json.dumps(analysis, sort_keys=True).encode()).hexdigest()[:12]


def _group_done(store, rid, analysis_id):
    """True when run ``rid`` finished with the same analyses (a changed [compute] or [recordings]
    recomputes them; the training itself is then resumed from its last checkpoint, i.e. not redone)."""
    try:
        zarr = _zarr()
        attrs = json.loads(zarr.open_group(str(store), mode="r")[f"runs/{rid}"].attrs.get("attrs", "{}"))
    except (FileNotFoundError, KeyError, ValueError, OSError):
        return False
    return attrs.get("status") == "done" and attrs.get("analysis") == analysis_id


def _run_and_store(run, out, analysis, threads):
    """The unit of work shipped to a worker: only plain values in, a small summary out."""
    ds = execute_run(run, out, analysis, threads)
    ds.attrs["analysis"] = _analysis_id(analysis)
    store = Path(out) / STORE
    write_group(ds, store, f"runs/{ds.attrs['run_id']}")
    return {k: ds.attrs[k] for k in ("run_id", "status", "error", "threads", "seconds")}


def _versions():
    out = {"python": sys.version.split()[0]}
    for pkg in ("neurokpflow", "torch", "numpy", "xarray", "zarr", "dask", "distributed"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _coord(value):
    return "+".join(value) if isinstance(value, list) else value


def _combine(sweep: Sweep, out: Path) -> xr.Dataset:
    store = out / STORE
    parts = []
    runs = sweep.runs()
    for run in runs:
        part = read_group(store, f"runs/{run_id(run)}")
        attrs = dict(part.attrs)
        part.attrs = {}
        part = part.expand_dims(run=[attrs["run_id"]])
        coords = {k: ("run", [_coord(run[k])]) for k in RUN_FIELDS}
        coords.update({k: ("run", [attrs[k]]) for k in ("status", "error", "threads", "seconds")})
        parts.append(part.assign_coords(coords))
    ds = xr.concat(parts, dim="run", join="outer", combine_attrs="drop", coords="different", compat="equals")
    ds.attrs = {"sweep": json.dumps(sweep.to_dict(), sort_keys=True), "versions": json.dumps(_versions())}
    write_group(ds, store, "combined")
    _zarr().consolidate_metadata(str(store))
    return ds


def run_sweep(sweep: Sweep, out, *, scheduler=None, n_workers=None, progress=True, retries=2, cluster=None,
              cluster_options=None) -> xr.Dataset:
    """Run every unfinished run of ``sweep`` and return the combined Dataset.

    ``scheduler``: ``None`` starts a ``LocalCluster`` (``n_workers`` processes, default one per
    core, one thread each); ``"tcp://host:port"`` uses that cluster; ``"inline"`` runs serially in
    this process.  ``cluster="slurm"`` or ``"pbs"`` (with ``scheduler=None``) submits ``n_workers``
    batch jobs of one single-threaded worker each through dask-jobqueue, with ``cluster_options``
    passed to :func:`neurokpflow.sweep.clusters.jobqueue_cluster`.  Runs whose group already says ``status == "done"`` are skipped; others are
    trained or resumed from their checkpoints.  A run failing for its own reason is recorded as
    failed (``status``/``error`` coordinates) and the sweep goes on.
    """
    if not isinstance(sweep, Sweep):
        raise InputTypeError(f"sweep must be a neurokpflow.sweep.Sweep (or load('spec.toml')), got {type(sweep).__name__}")
    if cluster is not None and scheduler is not None:
        raise InputError("give either scheduler= (an existing cluster, or 'inline') or cluster= (a batch system), "
                         "not both")
    if cluster_options and cluster is None:
        raise InputError("cluster_options apply to cluster='slurm' or 'pbs' only")
    analysis = sweep.analysis()
    out = Path(out)
    store = out / STORE
    aid = _analysis_id(analysis)
    todo = [r for r in sweep.runs() if not _group_done(store, run_id(r), aid)]   # reads only
    compute, threads = analysis, sweep.threads
    summaries = []
    started = None
    if todo and scheduler is None and cluster is None:
        # the default local cluster starts (its workers import the run code) while this process
        # reads and checks the recordings; nothing is written before the check has passed
        started = _start_while(lambda: check_recordings(sweep), n_workers)
    else:
        check_recordings(sweep)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _zarr().open_group(str(store), mode="a").require_group("runs")
    except BaseException:
        if started is not None:
            started.close()
        raise
    closing = None
    with Progress(todo, out, enabled=progress) as bar:
        if scheduler == "inline":
            for run in todo:
                summaries.append(_run_and_store(run, str(out), compute, threads))
                bar.run_done()
        else:
            summaries, closing = _run_distributed(todo, str(out), compute, threads, scheduler, n_workers, retries,
                                                  bar, cluster, cluster_options, started=started)
    try:
        ds = _combine(sweep, out)
    finally:
        if closing is not None:
            closing.join()
    failed = [(s["run_id"], s["error"]) for s in summaries if s["status"] != "done"]
    if failed and progress:
        print(f"{len(failed)} of {len(todo)} run(s) failed:", file=sys.stderr)
        for rid, err in failed:
            print(f"  {rid}: {err}", file=sys.stderr)
    return ds


def _start_while(prepare, n_workers):
    """Start :func:`local_cluster` in this thread while ``prepare()`` runs in another; return the
    cluster, or close it and raise when ``prepare`` fails."""
    result = {}

    def target():
        try:
            prepare()
        except BaseException as err:  # re-raised below, in the caller's thread
            result["error"] = err

    helper = threading.Thread(target=target, name="neurokpflow-sweep-prepare", daemon=True)
    helper.start()
    try:
        started = local_cluster(n_workers)
    finally:
        helper.join()
    if "error" in result:
        started.close()
        raise result["error"]
    return started


def _expected_checkpoints(run) -> int:
    every, steps = int(run["checkpoint_every"]), int(run["steps"])
    return len(set(range(every, steps + 1, every)) | {steps})


class Progress:
    """One progress bar over the checkpoints of every run to do plus one unit per run for its analyses,
    with tqdm's rate and ETA.  Checkpoints are counted from the run folders (written by whichever
    worker trains the run, on the shared filesystem) by a polling thread, so no message has to come
    back from the workers; a run's units are complete when its result group is stored."""

    def __init__(self, todo, out, enabled=True, interval=0.5):
        from tqdm.auto import tqdm

        self.folders = {run_id(r): Path(out) / "runs" / run_id(r) for r in todo}
        self.expected = {run_id(r): _expected_checkpoints(r) for r in todo}
        self.finished, self.interval = set(), interval
        total = sum(self.expected.values()) + len(todo)
        self.bar = tqdm(total=total, initial=self._count(), desc="sweep", unit="ckpt", disable=not enabled,
                        dynamic_ncols=True, postfix=f"runs 0/{len(todo)}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True) if enabled else None

    def _count(self) -> int:
        from ..training.checkpoint import list_checkpoints

        done = 0
        for rid, folder in self.folders.items():
            n = self.expected[rid] + 1 if rid in self.finished else len(list_checkpoints(folder))
            done += min(n, self.expected[rid] + 1)
        return done

    def refresh(self):
        self.bar.n = self._count()
        self.bar.set_postfix_str(f"runs {len(self.finished)}/{len(self.folders)}", refresh=False)
        self.bar.refresh()

    def run_done(self, rid=None):
        """Mark a run finished (its id; ``None``: the first unfinished one, for serial execution)."""
        if rid is None:
            rid = next(r for r in self.folders if r not in self.finished)
        self.finished.add(rid)
        self.refresh()

    def write(self, message: str):
        """A line on stderr above the bar (always printed, also without a bar)."""
        self.bar.write(message, file=sys.stderr)

    def _poll(self):
        while not self._stop.wait(self.interval):
            self.refresh()

    def __enter__(self):
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.refresh()
        self.bar.close()


def check_recordings(sweep: Sweep) -> None:
    """Read every recording of ``sweep`` once here, before any run starts; a recording that cannot be
    compared (unreadable, no trials table, no such condition column, one condition) raises
    :class:`SweepSpecError` naming it in one line.  Workers read them again by path or URL."""
    for name, options in sweep.recording_options().items():
        try:
            recording(options)
        except Exception as err:
            text = " ".join(str(err).split())
            raise SweepSpecError(f"sweep field recordings.{name}: {type(err).__name__}: {text}") from err


def local_cluster(n_workers=None):
    """The ``LocalCluster`` a sweep starts by default: ``n_workers`` processes (one per core), one
    thread each, which import the run code as they start (``PRELOAD_MODULES`` of
    ``neurokpflow.sweep._plugin``), and glibc's default malloc trimming in the workers.

    dask's nannies export ``MALLOC_TRIM_THRESHOLD_=65536`` to the workers they spawn; glibc then hands
    freed memory back to the OS on nearly every free, and a training run in such a worker took
    1.7-1.9x as long as in a plain process (``benchmarks/bench_sweep.py``).  The nannies read the
    setting when they are created, so workers restarted after a crash keep the default too.  Any
    earlier dask nanny in this process has also put dask's value into ``os.environ``; that copy is
    removed (a value of your own that differs from dask's is left alone).

    The workers' statistical profiler (it samples the running task's stack every 10 ms, for the
    dashboard's profile page) is off in the workers the cluster starts: a sweep's tasks are whole
    training runs, and the sampling thread competes with them for the worker's one core.  (A worker
    that its nanny restarts after a crash profiles again: dask does not hand it that setting.)
    """
    import dask
    from dask.distributed import LocalCluster

    from ._plugin import PRELOAD_MODULES

    # a nanny started earlier in this process (any dask cluster) has also exported dask's value into
    # this process's environment, which spawned workers inherit: take that copy back out
    dask_value = dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_", None)
    if dask_value is not None and os.environ.get("MALLOC_TRIM_THRESHOLD_") == str(dask_value):
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                            dashboard_address=":0", preload=list(PRELOAD_MODULES))


#: recordings up to this size travel from the driver to the workers; larger ones are read by each worker
SHIP_RECORDING_BYTES = 64 * 2**20


def _run_distributed(todo, out, compute, threads, scheduler, n_workers, retries, bar, kind=None, options=None,
                     work=None, started=None):
    """Submit one task per run (``work``: the unit of work, default :func:`_run_and_store`; the scale
    benchmark passes a no-op one) and collect the summaries.  ``started``: a local cluster already
    started by the caller, closed here.  Returns the summaries and, when a cluster was started for
    this sweep, the thread that is closing it (join it before returning to the user)."""
    work = _run_and_store if work is None else work
    distributed = require_extra("dask.distributed", "running sweeps on a cluster", "sweep")
    Client, as_completed = distributed.Client, distributed.as_completed
    cluster = None
    if kind is not None:
        from .clusters import jobqueue_cluster

        cluster = jobqueue_cluster(kind, **(options or {}))
        cluster.scale(jobs=n_workers or 1)
        client = Client(cluster)
    elif scheduler is None:
        cluster = started if started is not None else local_cluster(n_workers)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    log.info("sweep on %s (%s)", client.scheduler.address if client.scheduler else scheduler,
             kind or ("an existing scheduler" if scheduler is not None else "a local cluster"))
    summaries = []
    closing = None
    try:
        try:
            import bokeh  # noqa: F401  (the dashboard needs it)
            bar.write(f"dask dashboard: {client.dashboard_link}")
        except ImportError:
            bar.write(f"dask scheduler: {client.scheduler.address} (for the dashboard: pip install 'bokeh>=3.1')")
        from ._plugin import Preload

        recordings = compute.get("recordings", {})
        read = {name: recording(opts) for name, opts in recordings.items()}   # the driver's cached copies
        arrays = {name: da for name, da in read.items() if da.nbytes <= SHIP_RECORDING_BYTES}
        client.register_plugin(Preload(recordings, arrays))
        # keys name the run (dashboard) and this submission: a key still known to a long-lived scheduler
        # from an earlier sweep would otherwise return that sweep's result without running anything
        attempt = uuid.uuid4().hex[:8]
        futures = [client.submit(work, run, out, compute, threads, key=f"run-{run_id(run)}-{attempt}",
                                 pure=False, retries=retries) for run in todo]
        for fut in as_completed(futures):
            summaries.append(fut.result())
            bar.run_done(summaries[-1]["run_id"])
    except BaseException:
        # interrupted or failed: the cluster is closed before the error propagates
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    client.close()
    if cluster is not None:
        # the workers shut down while the caller combines the results
        closing = threading.Thread(target=cluster.close, name="neurokpflow-sweep-close", daemon=True)
        closing.start()
    return summaries, closing


def open_sweep(path, *, grid: bool = False) -> xr.Dataset:
    """The combined Dataset of a finished sweep in ``path`` (the ``--out`` folder or its ``sweep.zarr``).

    ``grid=False``: one ``run`` dimension with the hyperparameters as ``run`` coordinates.
    ``grid=True``: ``run`` unstacked into one dimension per grid axis that takes several values (first,
    in grid order)
    (e.g. ``ds.score.sel(measure="cka", session="chewie")`` over ``lr`` × ``seed`` × ``compare_step``);
    the run ids (``run_id``), ``status``, ``error``, ``threads`` and ``seconds`` then vary along those dims.
    """
    path = Path(path)
    store = path if path.name.endswith(".zarr") else path / STORE
    if not store.exists():
        raise MissingFileError(f"no sweep results at {store}; run `neurokpflow sweep SPEC --out {path}` first")
    ds = read_group(store, "combined")
    if not grid:
        return ds
    axes = [k for k in RUN_FIELDS if k in ds.coords and np.unique(ds[k].values).size > 1]
    if not axes:
        return ds.isel(run=0)
    ds = ds.assign_coords(run_id=("run", ds["run"].values)).drop_vars("run")
    if len(axes) == 1:
        return ds.swap_dims(run=axes[0])
    return ds.set_index(run=axes).unstack("run").transpose(*axes, ...)
