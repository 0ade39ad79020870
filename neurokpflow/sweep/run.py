"""One sweep run: train-or-resume in its own folder, then collapse and compare with the recordings
at the named checkpoints.

Everything here takes and returns plain picklable values (dicts, paths, xarray datasets), so a
run can be shipped to any dask worker.  Random state is per run: the model is initialised from
its own seed and the trainer draws every batch from ``SeedSequence([seed, step])``; nothing
process-global is seeded or restored.  The torch thread count is set explicitly and recorded.
Recordings travel as their path or URL and options; each worker process reads a recording once
(:func:`recording`) and keeps it for its next runs, unless the driver has already handed it the
array it read itself (:func:`share_recording`).
"""
from __future__ import annotations

import json
import time
import traceback
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from .. import models, tasks, training
from ..training.checkpoint import checkpoint_path, list_checkpoints
from .spec import run_id
from ..errors import InputTypeError

__all__ = ["train_or_resume", "execute_run", "remove_stale_temporaries", "recording", "share_recording",
           "compare_run"]


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


def train_or_resume(run: dict, run_dir, device: str = "cpu") -> training.TrainResult:
    """Train the run in ``run_dir``, or resume it from its last checkpoint (idempotent: a finished
    run is returned as it is).  Stale temporary files of a killed attempt are removed first."""
    run_dir = Path(run_dir)
    remove_stale_temporaries(run_dir)
    if list_checkpoints(run_dir):
        return training.resume(run_dir, progress=False, device=device)
    task = _task(run)
    model = _model(run, task)
    return training.train(model, task, int(run["steps"]), run_dir, progress=False, device=device,
                          optimizer=run["optimizer"], lr=float(run["lr"]), batch_size=int(run["batch_size"]),
                          checkpoint_every=int(run["checkpoint_every"]), seed=int(run["seed"]))


#: recordings handed over by the driver, by their reading options (see :func:`share_recording`)
_SHARED: dict = {}


def _recording_key(options: dict) -> tuple:
    return (options["path"], options["condition"], options["align_to"], float(options["bin_size"]),
            float(options["smooth"]))


def share_recording(options: dict, activity: xr.DataArray) -> None:
    """Make :func:`recording` return ``activity`` for ``options`` in this process, without reading
    the file: a sweep's driver has already read every recording (to check it) and sends the arrays
    to its workers, which then need neither the NWB reader nor the file."""
    if not isinstance(activity, xr.DataArray):
        raise InputTypeError(f"activity must be an xarray.DataArray, got {type(activity).__name__}")
    _SHARED[_recording_key(options)] = activity


@lru_cache(maxsize=8)
def _recording(path, condition, align_to, bin_size, smooth):
    from ..data.recordings import load_recording

    return load_recording(path, condition=condition, align_to=align_to, bin_size=bin_size,
                          smooth_sigma=smooth or None)


def recording(options: dict) -> xr.DataArray:
    """The trial-aligned activity of one ``[recordings.NAME]`` entry (options with defaults filled in),
    read once per process (the result is shared: treat it as read-only)."""
    key = _recording_key(options)
    shared = _SHARED.get(key)
    return shared if shared is not None else _recording(*key)


def _models_at(run_dir, steps):
    from ..training import load_checkpoint

    out, task = [], None
    for step in steps:
        if step == 0:
            continue
        model, info = load_checkpoint(checkpoint_path(run_dir, step))
        task = tasks.from_spec(info["task_spec"])
        out.append((step, model))
    if 0 in steps:
        _, info = load_checkpoint(list_checkpoints(run_dir)[0])
        task = tasks.from_spec(info["task_spec"])
        out.insert(0, (0, models.from_config(info["model_config"]).eval()))
    return out, task


def compare_run(run: dict, run_dir, analysis: dict) -> xr.Dataset | None:
    """Scores of the run's hidden activity at ``compare_at`` against every recording: variables
    (``session``, ``measure``, ``compare_step``) -- ``score`` and, with statistics, ``ci_low`` /
    ``ci_high`` / ``p_value`` / ... -- with ``measure`` labelled by the names in the specification
    (the full estimator names in the ``estimator`` coordinate).  The statistics use the run's seed."""
    from ..models.recording import model_activity
    from ..compare import compare

    compute, recordings = analysis["compute"], analysis["recordings"]
    steps = sorted(compute.get("compare_at", []))
    if not steps or not recordings:
        return None
    pairs, task = _models_at(run_dir, steps)
    sessions = []
    for name, options in recordings.items():
        rec = recording(options)
        labels = rec["condition"].values
        activity = {step: model_activity(model, task, labels) for step, model in pairs}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bias warnings: the numbers (bias, se) are stored instead
            result = compare(activity, rec, measures=list(compute["measures"]), stats=list(compute["stats"]),
                             time="resample", n_boot=int(compute["n_boot"]), n_perm=int(compute["n_perm"]),
                             seed=int(run["seed"]))
        result = result.rename({d: "compare_step" for d in ("checkpoint", "step") if d in result.dims})
        result = result.assign_coords(estimator=("measure", result["measure"].values.astype(str)),
                                      measure=list(compute["measures"]))
        keep = [v for v in result.data_vars if result[v].dtype.kind in "fiub"]
        sessions.append(result[keep].expand_dims(session=[name]))
    out = xr.concat(sessions, dim="session", join="outer", combine_attrs="drop")
    out.attrs = {}
    return out


def _subtask(run, run_dir, compute):
    from ..analysis import subtask_alignment

    steps = sorted(compute.get("subtask_at", []))
    if not steps:
        return None
    pairs, task = _models_at(run_dir, steps)
    result = subtask_alignment(pairs, task.test_grid(), lr=float(run["lr"]), progress=False)
    result = result.rename({"step": "subtask_step"})
    return result.drop_vars([v for v in result.data_vars if result[v].dtype.kind not in "fiub"])


def _collapse(run, run_dir, compute):
    from ..analysis import collapse
    steps = compute.get("collapse_at", [])
    if not steps:
        return None
    task = _task(run)
    paths = [checkpoint_path(run_dir, s) for s in steps]
    return collapse(paths, task.test_grid(), definitions=tuple(compute.get("definitions", ["ER1"])),
                    progress=False, seed=int(run["seed"]))


def execute_run(run: dict, out_dir, analysis: dict, threads: int = 1) -> xr.Dataset:
    """Run one sweep run and return its results as a Dataset (``status`` "done" or "failed",
    ``error``, ``threads``, training ``loss`` at every step, collapse and comparison variables when
    asked).  ``analysis`` is :meth:`Sweep.analysis`: plain values only."""
    from .._runtime import torch_threads

    with torch_threads(int(threads)):  # explicit for this run, restored afterwards
        return _execute(run, out_dir, analysis)


def _execute(run, out_dir, analysis):
    compute = analysis["compute"]
    rid = run_id(run)
    run_dir = Path(out_dir) / "runs" / rid
    t0 = time.perf_counter()
    attrs = {"run_id": rid, "spec": json.dumps(run, sort_keys=True), "threads": torch.get_num_threads()}
    try:
        result = train_or_resume(run, run_dir, analysis.get("device", "cpu"))
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
        alignment = _subtask(run, run_dir, compute)
        if alignment is not None:
            ds = xr.merge([ds, alignment], compat="override", combine_attrs="drop")
        scores = compare_run(run, run_dir, analysis)
        if scores is not None:
            ds = xr.merge([ds, scores], compat="override", combine_attrs="drop")
        status, error = "done", ""
    except Exception as err:  # a run's own failure is recorded, the sweep goes on
        ds = xr.Dataset()
        status = "failed"
        error = f"{type(err).__name__}: {err}"
        attrs["traceback"] = traceback.format_exc()[-4000:]
    attrs.update(status=status, error=error, seconds=time.perf_counter() - t0)
    ds.attrs = attrs
    return ds
