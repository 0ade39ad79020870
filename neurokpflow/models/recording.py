"""Run a model on a batch and return an ``xarray.Dataset`` in the shared recording layout."""
from __future__ import annotations

import inspect
import json

import numpy as np
import torch
import xarray as xr

from ..tasks.batch import PAD_EPOCH, Batch
from ..errors import InputTypeError

__all__ = ["record", "evaluation_batch", "model_activity"]


def bin_centres(batch) -> np.ndarray:
    """Time of step ``t`` as the package labels states: the centre ``(t + ½)·dt`` of its bin, in seconds."""
    return np.asarray(batch.times, dtype=float) + 0.5 * float(batch.dt)


def bin_bounds(batch) -> np.ndarray:
    """``[T, 2]`` CF bounds ``[t·dt, (t+1)·dt]`` of the bins whose centres :func:`bin_centres` gives."""
    start = np.asarray(batch.times, dtype=float)
    return np.stack([start, start + float(batch.dt)], axis=1)


@torch.no_grad()
def record(model, batch: Batch) -> xr.Dataset:
    """Run ``model`` on ``batch`` (noise off, no gradients) and label the result.

    Returns
    -------
    xarray.Dataset with

    * ``hidden`` (trial, time, unit): the readout-visible state (``h``);
    * ``output`` (trial, time, output_channel): the readout (a variable cannot share its name
      with a dimension in xarray, hence ``output_channel``);
    * ``state`` (trial, time, state_unit): the full state, only when it differs from ``hidden``
      (LSTM ``[h, c]``);
    * coordinates ``time`` (s, the bin centre ``(t + ½)·dt`` of step ``t``, whose state is the one
      after consuming input ``t``; CF ``bounds`` in ``time_bnds`` = ``[t·dt, (t+1)·dt)``, the package's
      one time convention, as the NWB readers use), ``trial``, ``unit``,
      ``output_channel`` (channel names), one per-trial coordinate per ``batch.meta`` entry (``task``,
      ``condition``, ``stimulus_angle``, epoch boundaries, ...) and the 2-D ("trial", "time")
      ``epoch`` label;
    * attrs ``dt``, ``model_kind``, ``model_config`` (JSON), ``state_convention``.

    Steps after a trial's end (padding, epoch ``"pad"``) are NaN in ``hidden``/``output``/``state``.
    """
    if not isinstance(batch, Batch):
        raise InputTypeError(f"batch must be a neurokpflow.tasks.Batch, got {type(batch).__name__}")
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        outputs, states = model(batch.inputs.to(p.device), noise=False)
    finally:
        model.train(was_training)
    cell = model.cell
    pad = torch.from_numpy(batch.epochs == PAD_EPOCH).to(states.device)[..., None]
    to_np = lambda a: a.masked_fill(pad, float("nan")).cpu().numpy()
    B = batch.n_trials
    coords = {
        "trial": np.arange(B),
        "time": ("time", bin_centres(batch), {"units": "s", "long_name": "bin centre", "bounds": "time_bnds"}),
        "unit": np.arange(cell.hidden_size),
        "output_channel": list(batch.output_names) if len(batch.output_names) == model.n_out
        else np.arange(model.n_out),
        "epoch": (("trial", "time"), batch.epochs),
    }
    for key, value in batch.meta.items():
        coords[key] = ("trial", np.asarray(value))
    data = {
        "hidden": (("trial", "time", "unit"), to_np(states[..., cell.output_slice])),
        "output": (("trial", "time", "output_channel"), to_np(outputs)),
        "time_bnds": (("time", "nv"), bin_bounds(batch)),
    }
    if cell.state_size != cell.hidden_size:
        data["state"] = (("trial", "time", "state_unit"), to_np(states))
        coords["state_unit"] = np.arange(cell.state_size)
    attrs = {
        "dt": float(batch.dt),
        "model_kind": model.kind,
        "model_config": json.dumps(model.config, sort_keys=True),
        "state_convention": "hidden[:, t] is the state after consuming inputs[:, t]",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def evaluation_batch(task, n_angles):
    """The noise-free test grid the analyses evaluate on: ``n_angles`` angles (one stimulus modality
    where the task has two), or ``n_angles`` fixed trials for tasks without angles (flip-flop)."""
    leaf = task.tasks[0] if hasattr(task, "tasks") else task
    params = inspect.signature(leaf.test_grid).parameters
    options = {}
    if "n_angles" in params:
        options["n_angles"] = n_angles
    elif "n_trials" in params:
        options["n_trials"] = n_angles
    if "modalities" in params:
        options["modalities"] = (1,)
    return task.test_grid(**options)


def model_activity(model, task, labels, *, batch=None) -> xr.DataArray:
    """Hidden activity (trial, time, unit) of ``model`` on the test grid whose angle ``k`` carries
    the ``k``-th sorted label of ``labels``; time = bin centres ``(t + ½)·dt``."""
    labels = np.unique(labels)
    if batch is None:
        batch = evaluation_batch(task, len(labels))
        first = batch.tasks[0]
        batch = batch[np.flatnonzero(batch.meta["task"] == first)]
    hidden = record(model, batch)["hidden"]
    hidden = hidden.dropna("time", how="any")  # time: bin centres already (record)
    k = np.asarray(batch.meta["condition"])
    return hidden.assign_coords(condition=("trial", labels[k]))
