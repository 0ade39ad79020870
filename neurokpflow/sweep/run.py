"""One sweep run: train-or-resume in its own folder, then collapse at the named checkpoints.

Everything here takes and returns plain picklable values (dicts, paths, xarray datasets), so a
run can be shipped to any dask worker.  Random state is per run: the model is initialised from
its own seed and the trainer draws every batch from ``SeedSequence([seed, step])``; nothing
process-global is seeded.  The torch thread count is set explicitly and recorded.
"""
from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import models, tasks, training
from ..training.checkpoint import checkpoint_path, list_checkpoints
from .spec import run_id

__all__ = ["train_or_resume", "execute_run", "remove_stale_temporaries"]


def remove_stale_temporaries(run_dir) -> list:
    """Delete ``.NAME.tmp-PID`` files left by a killed writer (atomic writes never leave them otherwise)."""
    run_dir = Path(run_dir)
    removed = []
    if run_dir.is_dir():
        for p in list(run_dir.rglob(".*.tmp-*")):
            if p.is_file():
                p.unlink()
                removed.append(p)
    return removed


def _task(run):
    name = run["task"]
    if isinstance(name, list):
        return tasks.make(name[0]) if len(name) == 1 else tasks.mix(name)
    return tasks.make(name)


def _model(run, task):
    options = {"g": float(run["g"]), "seed": int(run["seed"])}
    if run["cell"] == "rnn":
        options["alpha"] = float(run["alpha"])
    return models.make(run["cell"], task.n_inputs, int(run["hidden"]), task.n_outputs, **options)


def train_or_resume(run: dict, run_dir) -> training.TrainResult:
    """Train the run in ``run_dir``, or resume it from its last checkpoint (idempotent: a finished
    run is returned as it is).  Stale temporary files of a killed attempt are removed first."""
    run_dir = Path(run_dir)
    remove_stale_temporaries(run_dir)
    if list_checkpoints(run_dir):
        return training.resume(run_dir, progress=False)
    task = _task(run)
    model = _model(run, task)
    return training.train(model, task, int(run["steps"]), run_dir, progress=False, device="cpu",
                          optimizer=run["optimizer"], lr=float(run["lr"]), batch_size=int(run["batch_size"]),
                          checkpoint_every=int(run["checkpoint_every"]), seed=int(run["seed"]))


def _collapse(run, run_dir, compute):
    from ..analysis import collapse
    steps = compute.get("collapse_at", [])
    if not steps:
        return None
    task = _task(run)
    paths = [checkpoint_path(run_dir, s) for s in steps]
    return collapse(paths, task.test_grid(), definitions=tuple(compute.get("definitions", ["ER1"])),
                    progress=False, seed=int(run["seed"]))


def execute_run(run: dict, out_dir, compute: dict, threads: int = 1) -> xr.Dataset:
    """Run one sweep run and return its results as a Dataset (``status`` "done" or "failed",
    ``error``, ``threads``, training ``loss`` at every step, collapse variables when asked)."""
    rid = run_id(run)
    run_dir = Path(out_dir) / "runs" / rid
    torch.set_num_threads(int(threads))
    t0 = time.perf_counter()
    attrs = {"run_id": rid, "spec": json.dumps(run, sort_keys=True), "threads": torch.get_num_threads()}
    try:
        result = train_or_resume(run, run_dir)
        loss = np.asarray(result.log["loss"].values, dtype=float)
        if not np.all(np.isfinite(loss)):
            raise FloatingPointError(f"training loss diverged (non-finite at step "
                                     f"{int(np.argmin(np.isfinite(loss))) + 1})")
        ds = xr.Dataset({"loss": ("step", loss)}, coords={"step": np.arange(1, loss.size + 1)})
        col = _collapse(run, run_dir, compute)
        if col is not None:
            col = col.rename({d: f"collapse_{d}" for d in col.dims if d in ("step",)})
            col = col.drop_vars([v for v in col.data_vars if col[v].dtype.kind not in "fiub"])
            ds = xr.merge([ds, col], compat="override", combine_attrs="drop")
        status, error = "done", ""
    except Exception as err:  # a run's own failure is recorded, the sweep goes on
        ds = xr.Dataset()
        status = "failed"
        error = f"{type(err).__name__}: {err}"
        attrs["traceback"] = traceback.format_exc()[-4000:]
    attrs.update(status=status, error=error, seconds=time.perf_counter() - t0)
    ds.attrs = attrs
    return ds
