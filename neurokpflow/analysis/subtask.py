"""Sub-task alignment: how one task's error moves another task's hidden states (kpflow-math §10).

Partition the trials of a mixed batch by task.  ``P = diag(P_i)`` (trials do not interact)
while ``K = [K_ij]`` has full blocks ``K_ij = J_θ,i J_θ,j*`` because the parameters are shared.
One gradient step on the mixed-batch loss moves task ``i``'s states by

    δz_i = Σ_j δz_{i←j},        δz_{i←j} = −η P_i K_ij P_j* Err_j,

the move of task ``i`` caused by the correction task ``j`` requests.  Computed matrix-free as
``δz_{·←j} = −η P K R_j P* Err`` with ``R_j`` the restriction to task ``j``'s trials (one
``P*``, then ``K`` and ``P`` on one probe per task), read on task ``i``'s trials.

Reported per task pair ``(task_i, task_j)``:

* ``alignment`` = cos(δz_{i←j}, δz_{i←i}) — does task ``j``'s correction move task ``i`` the way
  task ``i``'s own correction does (1 on the diagonal);
* ``alignment_to_total`` = cos(δz_{i←j}, δz_i);
* ``relative_magnitude`` = ‖δz_{i←j}‖ / ‖δz_{i←i}‖;
* ``loss_change`` = ⟨Err_i, δz_{i←j}⟩ = −η ⟨∇_θL_i, ∇_θL_j⟩, the first-order change of task
  ``i``'s part of the loss caused by task ``j``'s correction — **symmetric** in (i, j) because
  ``K`` is self-adjoint;
* ``gradient_alignment`` = cos(∇_θL_i, ∇_θL_j) over the recurrent parameters (symmetric);
* ``hidden_alignment`` = cosine between the task-averaged hidden activity of the two tasks
  (mean over the task's trials, then flattened over (time, unit); uncentred) — the poster's
  hidden-state alignment matrix, whose pooling the sources do not give [inferred];
* over checkpoints, ``cumulative_alignment``: the alignment accumulated over training
  (``normalisation`` picks cos against δz_{i←i} or δz_i; ``cumulate_over`` sums per checkpoint
  or integrates over optimiser steps).  The paper's normalisation of its "cumulative decomposed
  δz alignment" is not recoverable; this is the natural reading and is labelled **inferred**.

Norms and cosines are Euclidean over task ``i``'s trials × time × state.  The loss is the
training loss (masked MSE through the readout) of the combined batch, so ``Err_j`` is that
loss's error on task ``j``'s trials — the same as in a mixed-task training batch.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr

from ..training.loss import masked_mse
from ._common import (batch_coords, build_operators, cosine, dtype_name, json_attr, loss_function,
                      readout_outputs, resolve_dtype)
from ._inputs import architecture, batch_fingerprint, check_batch, check_model, resolve_checkpoints
from ._store import run_over_checkpoints, write_netcdf
from .._validation import Interval, Options, OptionsMixin, Rule, check_params
from ..errors import InputError, InputTypeError

__all__ = ["subtask_alignment", "SubtaskOptions", "interference_decomposition", "NORMALISATIONS", "CUMULATE_OVER"]

#: which reference direction the cumulative alignment uses
NORMALISATIONS = {"self": "cos(dz_{i<-j}, dz_{i<-i})", "total": "cos(dz_{i<-j}, dz_i)"}
#: how alignments are accumulated over checkpoints
CUMULATE_OVER = {"checkpoints": "sum over checkpoints",
                 "steps": "trapezoidal integral over optimiser steps (first checkpoint contributes 0)"}


class _TaskBatch:
    """The per-task batches joined into one: tensors, per-trial task labels and coordinates."""

    def __init__(self, inputs, targets, mask, labels, names, meta, dt):
        self.inputs, self.targets, self.mask = inputs, targets, mask
        self.labels, self.names = labels, names
        self.meta, self.dt = meta, dt

    def indices(self, name):
        return np.flatnonzero(self.labels == name)


def _join_batches(batches_by_task, tasks, model) -> _TaskBatch:
    if isinstance(batches_by_task, Mapping):
        if not batches_by_task:
            raise InputError("batches_by_task is empty; pass {task_name: batch, ...}")
        present = [str(k) for k in batches_by_task]
        parts = dict(zip(present, batches_by_task.values()))
    elif hasattr(batches_by_task, "inputs"):
        meta = getattr(batches_by_task, "meta", None) or {}
        if "task" not in meta:
            raise InputError("batches_by_task is a single batch without per-trial task labels (meta['task']); "
                             "pass a mapping {task_name: batch}")
        trial_tasks = np.asarray(meta["task"]).astype(str)
        present = list(dict.fromkeys(trial_tasks.tolist()))
        parts = {name: batches_by_task[np.flatnonzero(trial_tasks == name)] for name in present}
    else:
        raise InputTypeError(f"batches_by_task must be a mapping {{task: batch}} or a batch with meta['task'], got "
                        f"{type(batches_by_task).__name__}")
    names = present if tasks is None else [str(t) for t in tasks]
    missing = [t for t in names if t not in parts]
    if missing:
        raise InputError(f"task(s) {missing} are absent from batches_by_task; it holds {present}")
    if len(set(names)) != len(names):
        raise InputError(f"tasks names a task twice: {names}")
    if len(names) < 2:
        raise InputError(f"sub-task alignment needs at least two tasks, got {names}")
    tensors, labels, steps = [], [], set()
    for name in names:
        inputs, targets, mask = check_batch(parts[name], model, arg=f"batches_by_task[{name!r}]")
        if targets is None:
            raise InputTypeError(f"batches_by_task[{name!r}] has no .targets; the error Err needs them")
        if inputs.shape[0] == 0:
            raise InputError(f"batches_by_task[{name!r}] has no trials")
        steps.add(inputs.shape[1])
        tensors.append((inputs, targets, mask))
        labels += [name] * inputs.shape[0]
    if len(steps) > 1:
        raise InputError(f"the task batches have different numbers of time steps {sorted(steps)}; the "
                         "decomposition needs one time axis (pad the trials to a common length)")
    cat = [torch.cat([t[k] for t in tensors]) for k in range(3)]
    metas = [getattr(parts[n], "meta", None) or {} for n in names]
    meta = {"task": np.asarray(labels)}
    for key in ("condition", "stimulus_angle", "response_angle"):
        if all(key in m for m in metas):
            meta[key] = np.concatenate([np.asarray(m[key]) for m in metas])
    dts = {getattr(parts[n], "dt", None) for n in names}
    return _TaskBatch(cat[0], cat[1], cat[2], np.asarray(labels), names, meta, dts.pop() if len(dts) == 1 else None)


def _decompose(model, tb: _TaskBatch, lr, opts):
    """``D[j] = δz_{·←j}`` for every task ``j`` ([n_tasks, B, T, S]), with the operators and Err."""
    ops = build_operators(model, tb.inputs, dtype=opts["dtype"], inner=opts["inner"], chunk_size=opts["chunk_size"])
    err = ops.error(loss_function(model, ops, tb.targets, tb.mask, opts["mask_mode"]))
    adjoint = ops.P.T(err)
    R = torch.zeros(len(tb.names), ops.states.shape[0], 1, 1, dtype=err.dtype, device=err.device)
    for j, name in enumerate(tb.names):
        R[j, torch.as_tensor(tb.indices(name), device=err.device)] = 1
    D = -lr * ops.P(ops.K(R * adjoint))
    return D, err, ops


def _pair_statistics(model, D, err, ops, tb: _TaskBatch, mask_mode) -> dict:
    n = len(tb.names)
    align, to_total, magnitude, loss_change, hidden = (np.full((n, n), np.nan) for _ in range(5))
    hidden_states = ops.states[..., ops.cell.output_slice].double()
    means = [hidden_states[torch.as_tensor(tb.indices(name))].mean(0) for name in tb.names]
    for i, name in enumerate(tb.names):
        idx = torch.as_tensor(tb.indices(name), device=D.device)
        X = D[:, idx].reshape(n, -1).double()
        G = X @ X.T  # G[j, k] = <dz_{i<-j}, dz_{i<-k}>
        total = G.sum()
        for j in range(n):
            align[i, j] = float(G[j, i] / torch.sqrt(G[j, j] * G[i, i]))
            to_total[i, j] = float(G[j].sum() / torch.sqrt(G[j, j] * total))
            magnitude[i, j] = float(torch.sqrt(G[j, j] / G[i, i]))
            loss_change[i, j] = ops.weight * float((err[idx].double() * D[j, idx].double()).sum())
            hidden[i, j] = cosine(means[i], means[j])
    norm = np.sqrt(np.outer(np.diag(loss_change), np.diag(loss_change)))
    grad_align = -loss_change / np.where(norm > 0, norm, np.nan)
    task_loss = []
    for name in tb.names:
        idx = torch.as_tensor(tb.indices(name))
        outputs = readout_outputs(model, ops, ops.states[idx])
        task_loss.append(float(masked_mse(outputs, tb.targets[idx].to(outputs), tb.mask[idx].to(outputs), mask_mode)))
    pair = ("task_i", "task_j")
    return {"alignment": (pair, align), "alignment_to_total": (pair, to_total),
            "relative_magnitude": (pair, magnitude), "loss_change": (pair, loss_change),
            "gradient_alignment": (pair, grad_align), "hidden_alignment": (pair, hidden),
            "task_loss": (("task_i",), np.asarray(task_loss))}


_RULES = {
    "lr": Rule(Interval(low=0, closed="neither"), "the learning rate η, e.g. lr=1e-3"),
    "normalisation": Rule(Options(*sorted(NORMALISATIONS))),
    "cumulate_over": Rule(Options(*sorted(CUMULATE_OVER))),
}


def _check_options(lr, normalisation, cumulate_over, dtype):
    check_params(_RULES, lr=lr, normalisation=normalisation, cumulate_over=cumulate_over)
    return resolve_dtype(dtype)


def _options(lr, normalisation, cumulate_over, inner, dtype, mask_mode, chunk_size):
    return dict(lr=float(lr), normalisation=normalisation, cumulate_over=cumulate_over, inner=inner,
                dtype=_check_options(lr, normalisation, cumulate_over, dtype), mask_mode=mask_mode,
                chunk_size=chunk_size)


def _coords(tb: _TaskBatch, n_steps):
    coords = batch_coords(tb, len(tb.labels), n_steps)
    coords.update(task_i=list(tb.names), task_j=list(tb.names))
    return coords


def interference_decomposition(model, batches_by_task, *, tasks=None, lr=1e-3, inner="sum",
                               dtype=torch.float64, mask_mode="pre_square", chunk_size=16) -> xr.Dataset:
    """The first-order update of a mixed-task batch split by the task whose error causes it.

    Parameters are those of :func:`subtask_alignment` (one model).

    Returns
    -------
    xarray.Dataset with ``delta_z`` (task_j, trial, time, unit): on every trial ``b`` of task
    ``i``, ``δz_{i←j}(b)`` = the move of that trial's states caused by task ``j``'s error;
    ``delta_z_total`` (trial, time, unit) = ``−η P K P* Err`` (the full first-order update,
    equal to the sum of ``delta_z`` over ``task_j``); ``error`` (trial, time, unit) = ``Err``
    in the ``inner`` convention; per-trial coordinate ``task``.  ``unit`` runs over the cell's
    full state (``[h, c]`` for an LSTM).
    """
    check_model(model)
    opts = _options(lr, "self", "checkpoints", inner, dtype, mask_mode, chunk_size)
    tb = _join_batches(batches_by_task, tasks, model)
    D, err, ops = _decompose(model, tb, opts["lr"], opts)
    total = -opts["lr"] * ops.NTK(err)
    coords = _coords(tb, tb.inputs.shape[1])
    coords.pop("task_i")
    coords["unit"] = np.arange(D.shape[-1])
    dims = ("trial", "time", "unit")
    return xr.Dataset(
        {"delta_z": (("task_j",) + dims, D.cpu().numpy(), {"long_name": "dz_{i<-j} = -lr P_i K_ij P_j* Err_j"}),
         "delta_z_total": (dims, total.cpu().numpy(), {"long_name": "first-order update -lr P K P* Err"}),
         "error": (dims, err.cpu().numpy(), {"long_name": "Err = dL/dz (partial, per step)"})},
        coords=coords, attrs={"lr": opts["lr"], "inner": inner, "mask_mode": mask_mode,
                              "dtype": dtype_name(opts["dtype"])})


def _cumulative(ds, normalisation, cumulate_over):
    source = ds["alignment"] if normalisation == "self" else ds["alignment_to_total"]
    if cumulate_over == "checkpoints":
        cum = source.cumsum("step")
    else:
        steps = xr.DataArray(ds["step"].values.astype(float), dims="step")
        increment = (source + source.shift(step=1)) / 2 * (steps - steps.shift(step=1))
        cum = increment.fillna(0.0).cumsum("step")
    cum.attrs.update(long_name=f"cumulative alignment, {NORMALISATIONS[normalisation]}, {CUMULATE_OVER[cumulate_over]}",
                     provenance="inferred (kpflow-math §10: the paper's normalisation is not recoverable)")
    return cum


@dataclass(frozen=True)
class SubtaskOptions(OptionsMixin):
    """How :func:`subtask_alignment` splits and accumulates the update (fields described there)."""

    lr: float = 1e-3
    normalisation: str = "self"
    cumulate_over: str = "checkpoints"
    inner: str = "sum"
    dtype: Any = torch.float64
    mask_mode: str = "pre_square"
    chunk_size: int = 16

    RULES: ClassVar[dict] = {**_RULES, "chunk_size": Rule(Interval(numbers.Integral, 1, None))}


def subtask_alignment(model_or_checkpoints, batches_by_task, options: SubtaskOptions | None = None, *, tasks=None,
                      out=None, progress=True, **fields) -> xr.Dataset:
    """Task × task interference from the blocks ``K_ij`` of the parameter operator (module docstring).

    Parameters
    ----------
    model_or_checkpoints
        One model (anything with ``.cell`` and a linear ``.readout``): the result has dims
        ``(task_i, task_j)``.  Or a checkpoint sequence as for :func:`collapse` (run directory,
        checkpoint paths, ``(step, model)`` pairs): dims ``(step, task_i, task_j)`` plus
        ``cumulative_alignment``.
    batches_by_task
        ``{task_name: batch}`` (every batch with ``.inputs``, ``.targets``, optional ``.mask``, one
        common number of time steps), or one batch whose ``meta["task"]`` labels its trials.
    tasks : task names to analyse, in order (default: all, in order of appearance).  Names
        absent from ``batches_by_task`` are an error; with a single labelled batch, trials of
        tasks not named are left out of the analysis.
    lr : learning rate η of the first-order update (scales ``delta_z`` and ``loss_change``).
    normalisation : ``"self"`` (cos against δz_{i←i}) or ``"total"`` (against δz_i) for
        ``cumulative_alignment``.
    cumulate_over : ``"checkpoints"`` (sum over checkpoints) or ``"steps"`` (trapezoidal
        integral over optimiser steps).
    inner, dtype, mask_mode, chunk_size : as for :func:`collapse`.
    out : netCDF path (written atomically; resumable over checkpoints as in :func:`collapse`).
    options, fields : a :class:`SubtaskOptions` (``lr``, ``normalisation``, ``cumulate_over``,
        ``inner``, ``dtype``, ``mask_mode``, ``chunk_size``) or its fields as keywords.

    Returns
    -------
    xarray.Dataset with ``alignment``, ``alignment_to_total``, ``relative_magnitude``,
    ``loss_change``, ``gradient_alignment``, ``hidden_alignment`` (task_i, task_j), ``task_loss``
    (task_i), each with a ``step`` dimension over checkpoints, and ``cumulative_alignment``.
    """
    o = SubtaskOptions.resolve(options, fields, "subtask_alignment")
    normalisation, cumulate_over, inner, mask_mode = o.normalisation, o.cumulate_over, o.inner, o.mask_mode
    opts = _options(o.lr, normalisation, cumulate_over, inner, o.dtype, mask_mode, o.chunk_size)
    single = hasattr(model_or_checkpoints, "cell")
    checkpoints = None
    if single:
        first = check_model(model_or_checkpoints, "model_or_checkpoints")
    else:
        checkpoints = resolve_checkpoints(model_or_checkpoints, "model_or_checkpoints")
        first = checkpoints[0].model
    tb = _join_batches(batches_by_task, tasks, first)
    coords = _coords(tb, tb.inputs.shape[1])

    def compute(model):
        D, err, ops = _decompose(model, tb, opts["lr"], opts)
        return xr.Dataset(_pair_statistics(model, D, err, ops, tb, mask_mode), coords=coords)

    saved = {k: (dtype_name(v) if k == "dtype" else v) for k, v in opts.items() if k != "chunk_size"}

    def finalize(ds):
        ds.attrs.update(inner=inner, dtype=dtype_name(opts["dtype"]), lr=opts["lr"], mask_mode=mask_mode,
                        normalisation=normalisation, cumulate_over=cumulate_over,
                        tasks=json_attr(list(tb.names)))
        if "step" in ds.dims:
            ds["cumulative_alignment"] = _cumulative(ds, normalisation, cumulate_over)
        for name, attrs in _VARIABLE_ATTRS.items():
            if name in ds:
                ds[name].attrs.update(attrs)
        return ds

    if single:
        ds = finalize(compute(first))
        if out is not None:
            write_netcdf(ds, out)
        return ds
    signature = {"analysis": "subtask_alignment", "architecture": architecture(first),
                 "evaluation_data": batch_fingerprint(tb.inputs, tb.targets, tb.mask) + ":" + json_attr(tb.names),
                 "options": json_attr(saved)}
    return run_over_checkpoints(checkpoints, lambda c: compute(c.model), signature=signature, finalize=finalize,
                                derived=("cumulative_alignment",), out=out, progress=progress,
                                desc="subtask alignment")


_VARIABLE_ATTRS = {
    "alignment": {"long_name": "cos(dz_{i<-j}, dz_{i<-i})", "range": "[-1, 1]"},
    "alignment_to_total": {"long_name": "cos(dz_{i<-j}, dz_i)", "range": "[-1, 1]"},
    "relative_magnitude": {"long_name": "||dz_{i<-j}|| / ||dz_{i<-i}||"},
    "loss_change": {"long_name": "<Err_i, dz_{i<-j}> = -lr <grad L_i, grad L_j> (first-order change of task i's loss)",
                    "symmetry": "symmetric in (task_i, task_j)"},
    "gradient_alignment": {"long_name": "cos(grad_theta L_i, grad_theta L_j) over the recurrent parameters",
                           "symmetry": "symmetric in (task_i, task_j)"},
    "hidden_alignment": {"long_name": "cosine of task-averaged hidden activity (trial mean, flattened over time, "
                                      "unit; uncentred)", "provenance": "inferred pooling (kpflow-math §10)"},
    "task_loss": {"long_name": "masked MSE of the readout on the task's trials"},
}
