"""Similarity flow: the change of a model–brain similarity score under one gradient step.

One step of gradient descent on the recurrent parameters θ at learning rate η moves the hidden
trajectory, to first order, by (kpflow-math §2.2)

    δz = −η · P K P* · Err.

A similarity score ``S(z)`` between the model's representation of ``z`` and a recording is a
differentiable function of ``z``, so the step changes it by

    δS = ⟨∇_z S, δz⟩ + O(η²).

Because ``Err = Σ_i Err_i`` over the sub-tasks of a mixed batch, ``δS = Σ_i δS_i`` with
``δS_i = −η ⟨∇_z S, P K P* Err_i⟩`` — the part of the change requested by task ``i``'s error.
``∇_z S`` is a sum over the conditions and time bins of the representation, which splits every
``δS_i`` further, exactly, by **where the change lands**: ``δS_i = Σ_{c,t} ⟨∂S/∂X[c,t], δX_i[c,t]⟩``
with ``X`` the model representation below and ``δX_i`` its first-order change.

Three versions of the step are reported side by side (all matrix-free, through the operators of
:mod:`neurokpflow.kpflow`; no Jacobian is ever formed):

* ``change`` — **as realised** by plain gradient descent: ``δz = −η P K P* Err``;
* ``change_direct`` — **direct**, functional gradient descent (``K`` replaced by the identity):
  ``δz = −η P P* Err``.  Its scale is not that of ``change`` (K carries units); compare signs and
  the scale-free ``cosine`` / ``cosine_direct`` = cos(∇_z S, δz): how well each step points up
  the similarity gradient, i.e. how much of the direct step's progress ``K`` turns aside;
* ``change_adam`` (``preconditioner="adam"``) — ``K`` replaced by ``J_θ D J_θ*`` with Adam's
  diagonal preconditioner at the checkpoint, ``D = 1 / (sqrt(v̂) + ε)``, ``v̂ = v / (1 − β₂^t)``
  read from the checkpoint's optimiser state.  **An approximation of Adam's step**: Adam's real
  update ``−η m̂' / (sqrt(v̂') + ε)`` is not linear in the gradient — the momentum ``m`` carries
  past gradients (β₁ = 0.9 of the numerator), ``v`` is updated with the new gradient before
  dividing, and the bias corrections change with t.  ``change_adam`` is the first-order change of
  an RMSProp-like step with the frozen ``v̂``;
* ``change_adam_step`` + ``change_adam_momentum`` — Adam's actual next step, written as
  ``−η (c D' ⊙ ∇L + β₁ D' ⊙ m / (1 − β₁^{t+1}))`` with ``c = (1 − β₁)/(1 − β₁^{t+1})`` and
  ``D'`` from ``v`` updated with this batch's gradient: the gradient part splits over sub-tasks
  (given ``D'``, which itself depends on the whole gradient, so the split is exact for the step
  but the step is not linear in the error), the momentum part (past batches) belongs to no task.
  Their sum predicts a real Adam step to first order (``check=True``); weight decay and AMSGrad
  are refused.

Model representation
--------------------
The model's trials are those of the evaluation batch (a task's test grid by default) whose task
is in ``representation_tasks`` (default: all).  Each trial's condition is ``batch.meta[condition]``
(mapped through ``condition_labels`` when given, e.g. angle index ``k`` → the recording's k-th
target label).  The state at step ``t`` is labelled by the time ``(t + time_offset)·dt`` (by
default the bin centre).  The representation ``X[c, t, h]`` is the **mean over the model's
trials of condition c** of the readout-visible state, at the recording's time bins, with
conditions and times matched by value exactly as :func:`neurokpflow.compare.align` does
(``conditions=``, ``time=`` options; ``time="resample"`` interpolates the model linearly).  The
recording is condition-averaged the same way.  ``X`` is a linear function of ``z``, so ∇_z S
flows back to every trial and step that enters it; trials of other tasks contribute through
``K`` only (their errors move the shared θ).

Sign convention: every ``change*`` and ``predicted*`` value is a **similarity gain**: positive =
the step makes the model more similar to the recording.  For CKA that is the change of CKA; for
the Procrustes angle (a distance) it is **minus** the change of the angle in radians.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..compare import align
from ..compare.differentiable import DIFFERENTIABLE
from ..kpflow.operators import _snapshot
from ..tasks import Task
from ..training.loss import MASK_MODES, masked_mse
from ._common import build_operators, dtype_name, json_attr, loss_function, resolve_dtype
from ._inputs import Checkpoint, check_batch, check_model, resolve_checkpoints
from ..errors import InputError

__all__ = ["similarity_flow", "cumulative_flow", "FlowOptions", "FlowError", "PRECONDITIONERS"]

PRECONDITIONERS = ("none", "adam")


class FlowError(InputError):
    """Bad input to :func:`similarity_flow`."""


@dataclass(frozen=True)
class FlowOptions:
    """Options of :func:`similarity_flow` (any of them may also be passed as a keyword).

    measure : ``"cka"`` (linear, biased), ``"cka_debiased"`` (Song's unbiased HSIC) or
        ``"procrustes"`` (angular, radians) — see :mod:`neurokpflow.compare.differentiable`.
    lr : the learning rate η of the step.
    preconditioner : ``"none"`` or ``"adam"`` (adds ``change_adam``, ``change_adam_step`` and
        ``change_adam_momentum``; needs checkpoint files with the optimiser state of an Adam run).
    condition : the ``batch.meta`` key that labels the model's trials.
    condition_labels : optional sequence; a trial's condition is ``condition_labels[meta value]``.
    recording_condition : the recording's per-trial condition coordinate (default ``"condition"``).
    var : the recording's variable when it is a Dataset.
    conditions, time : matching rules of :func:`neurokpflow.compare.align`.
    time_offset : the model's step ``t`` is labelled ``(t + time_offset)·dt`` seconds.
    representation_tasks : names of the tasks whose trials form the representation (None: all).
    grid : options of ``task.test_grid`` when a task (not a batch) is given.
    dtype, mask_mode, chunk_size : analysis precision, the loss's mask convention, probe chunking.
    """

    measure: str = "cka"
    lr: float = 1e-3
    preconditioner: str = "none"
    condition: str = "condition"
    condition_labels: tuple | None = None
    recording_condition: str | None = None
    var: str | None = None
    conditions: str = "exact"
    time: str = "exact"
    time_offset: float = 0.5
    representation_tasks: tuple | None = None
    grid: dict = field(default_factory=dict)
    dtype: str = "float64"
    mask_mode: str = "pre_square"
    chunk_size: int = 16

    def checked(self) -> "FlowOptions":
        if self.measure not in DIFFERENTIABLE:
            raise FlowError(f"measure={self.measure!r} has no differentiable form; choose one of "
                            f"{sorted(DIFFERENTIABLE)}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise FlowError(f"lr must be a positive number (the learning rate η), got {self.lr!r}")
        if self.preconditioner not in PRECONDITIONERS:
            raise FlowError(f"preconditioner must be one of {PRECONDITIONERS}, got {self.preconditioner!r}")
        if self.mask_mode not in MASK_MODES:
            raise FlowError(f"mask_mode must be one of {MASK_MODES}, got {self.mask_mode!r}")
        resolve_dtype(self.dtype)
        return self


# ------------------------------------------------------------------------------ the pairing
class _Pairing:
    """The evaluation batch, its task labels, and the linear map z -> X onto the recording's samples."""

    def __init__(self, batch, model, recording, opts: FlowOptions):
        inputs, targets, mask = check_batch(batch, model)
        if targets is None:
            raise FlowError("the batch has no .targets; the error Err needs them (use a task's test_grid)")
        meta = getattr(batch, "meta", None) or {}
        B, T = inputs.shape[:2]
        default = getattr(batch, "tasks", None)
        names = np.asarray(meta["task"]).astype(str) if "task" in meta else \
            np.full(B, str(default[0]) if default else "task")
        self.inputs, self.targets, self.mask = inputs, targets, mask
        self.labels = names
        self.tasks = list(dict.fromkeys(names.tolist()))
        if opts.representation_tasks is None:
            rep = np.arange(B)
        else:
            wanted = [str(t) for t in opts.representation_tasks]
            unknown = sorted(set(wanted) - set(self.tasks))
            if unknown:
                raise FlowError(f"representation_tasks names {unknown}, absent from the batch (tasks {self.tasks})")
            rep = np.flatnonzero(np.isin(names, wanted))
        if opts.condition not in meta:
            raise FlowError(f"the batch has no meta[{opts.condition!r}] labelling its trials; name the key with "
                            f"condition=... (meta keys: {sorted(meta)})")
        cond = np.asarray(meta[opts.condition])[rep]
        if opts.condition_labels is not None:
            table = np.asarray(opts.condition_labels)
            if cond.min() < 0 or cond.max() >= len(table):
                raise FlowError(f"meta[{opts.condition!r}] holds values {np.unique(cond).tolist()} but "
                                f"condition_labels has {len(table)} entries; give one label per value")
            cond = table[cond]
        dt = getattr(batch, "dt", None)
        if dt is None:
            raise FlowError("the batch has no dt, so its steps have no times to match the recording's; use a task batch")
        times = (np.arange(T) + float(opts.time_offset)) * float(dt)
        n = len(rep)

        def probe(values):
            return xr.DataArray(values, dims=("trial", "time", "unit"),
                                coords={"time": times, "condition": ("trial", cond)})

        kw: dict[str, Any] = dict(condition=("condition", opts.recording_condition), var=(None, opts.var),
                  conditions=opts.conditions, time=opts.time)
        # X is linear in z and separable: condition means (trials) then a time map; read both off
        # the alignment of identity probes, so that the matching is compare.align's own
        a, rec = align(probe(np.broadcast_to(np.eye(n)[:, None, :], (n, T, n))), recording, **kw)
        b, _ = align(probe(np.broadcast_to(np.eye(T)[None], (n, T, T))), recording, **kw)
        self.trial_map = a.means[:, 0, :]             # [C, n]
        self.time_map = b.means[0]                    # [T', T]
        self.Y = rec.means                            # [C, T', N]
        self.rep = torch.as_tensor(rep)
        self.conditions = rec.conditions
        self.times = rec.times if rec.times is not None else np.arange(rec.n_times)
        self.pairing = (f"model representation: mean over the batch's trials of each condition "
                        f"(meta[{opts.condition!r}]{' mapped by condition_labels' if opts.condition_labels is not None else ''}; "
                        f"tasks {'all' if opts.representation_tasks is None else list(opts.representation_tasks)}) "
                        f"of the readout-visible state, step t at (t + {opts.time_offset:g})*dt s; matched to the "
                        f"recording by compare.align(conditions={opts.conditions!r}, time={opts.time!r})")

    def represent(self, z, output_slice):
        zr = z[self.rep.to(z.device)][..., output_slice]
        M, Tm = self.trial_map.to(zr), self.time_map.to(zr)
        return torch.einsum("cb,st,bth->csh", M, Tm, zr)

    def task_masks(self, like):
        R = torch.zeros(len(self.tasks), like.shape[0], 1, 1, dtype=like.dtype, device=like.device)
        for j, name in enumerate(self.tasks):
            R[j, torch.as_tensor(np.flatnonzero(self.labels == name), device=like.device)] = 1
        return R


class _Score:
    """S(X) oriented so that larger = more similar, and the measure's own value."""

    def __init__(self, measure, Y):
        self.fn, self.convention = DIFFERENTIABLE[measure]
        self.sign = 1.0 if self.convention == "similarity" else -1.0
        self.Y = Y.reshape(-1, Y.shape[-1])

    def raw(self, X):
        return self.fn(X.reshape(-1, X.shape[-1]), self.Y.to(X))

    def __call__(self, X):
        return self.sign * self.raw(X)


# ---------------------------------------------------------------------------- preconditioner
def _adam_preconditioner(checkpoint, model, ops):
    """Adam's state over the recurrent parameters in J_theta's layout: the frozen preconditioner
    ``D = 1/(sqrt(v̂) + ε)``, the moments ``v``, ``m``, the step count ``t`` and the hyperparameters."""
    from ..training import read_checkpoint

    source = checkpoint.source if checkpoint is not None else ""
    if checkpoint is None or source.startswith("memory:"):
        raise FlowError("preconditioner='adam' reads the optimiser state from checkpoint files; pass a run "
                        "directory or checkpoint paths (or use preconditioner='none')")
    data = read_checkpoint(source)
    optimizer = data["config"]["train"].get("optimizer")
    if optimizer != "adam":
        raise FlowError(f"{source} was trained with optimizer={optimizer!r}; preconditioner='adam' needs an Adam run")
    state, groups = data["optimizer_state"]["state"], data["optimizer_state"]["param_groups"]
    if len(groups) != 1:
        raise FlowError(f"{source}: expected one Adam parameter group, found {len(groups)}")
    (beta1, beta2), eps = groups[0]["betas"], groups[0]["eps"]
    if groups[0].get("weight_decay", 0) or groups[0].get("amsgrad", False):
        raise FlowError(f"{source}: Adam with weight decay or AMSGrad is not modelled; the preconditioned flow "
                        "describes plain Adam")
    index = {name: k for k, (name, _) in enumerate(model.named_parameters())}
    v, m, t = [], [], set()
    for name in ops.param_names:
        k = groups[0]["params"][index["cell." + name]]
        if k not in state:
            raise FlowError(f"{source} holds no Adam state for cell.{name} (no step taken yet)")
        v.append(state[k]["exp_avg_sq"].reshape(-1))
        m.append(state[k]["exp_avg"].reshape(-1))
        t.add(float(state[k]["step"]))
    like = dict(dtype=ops.states.dtype, device=ops.states.device)
    v, m = torch.cat(v).to(**like), torch.cat(m).to(**like)
    t = t.pop()
    return {"D": 1.0 / ((v / (1.0 - beta2 ** t)).sqrt() + eps), "v": v, "m": m, "t": t, "beta1": beta1,
            "beta2": beta2, "eps": eps, "optimizer_state": data["optimizer_state"]}


def _adam_step(adam, gradient):
    """Adam's next step written as ``−η (c_g · D' ⊙ g + drift)``: with the new gradient ``g``,
    ``v' = β₂ v + (1 − β₂) g²`` and ``D' = 1/(sqrt(v'/(1 − β₂^{t+1})) + ε)``; the gradient enters the
    numerator with ``c_g = (1 − β₁)/(1 − β₁^{t+1})`` and the momentum of past gradients gives the drift
    ``β₁ D' ⊙ m / (1 − β₁^{t+1})``.  Exact for the step (no weight decay); linear in ``g`` only given ``D'``."""
    b1, b2, t = adam["beta1"], adam["beta2"], adam["t"] + 1
    v_new = b2 * adam["v"] + (1 - b2) * gradient ** 2
    D_new = 1.0 / ((v_new / (1 - b2 ** t)).sqrt() + adam["eps"])
    return D_new * (1 - b1) / (1 - b1 ** t), D_new * b1 * adam["m"] / (1 - b1 ** t)


# ---------------------------------------------------------------------------------- one model
def _one_step(model, pairing: _Pairing, opts: FlowOptions, dtype, checkpoint=None, check=False):
    ops = build_operators(model, pairing.inputs, dtype=dtype, inner="sum", chunk_size=opts.chunk_size)
    err = ops.error(loss_function(model, ops, pairing.targets, pairing.mask, opts.mask_mode))
    sl = ops.cell.output_slice
    score = _Score(opts.measure, pairing.Y)
    with torch.enable_grad():
        X = pairing.represent(ops.states, sl).detach().requires_grad_(True)
        S = score(X)
        (GX,) = torch.autograd.grad(S, X)
        z = ops.states.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(pairing.represent(z, sl), z, GX)   # ∇_z S = A* ∇_X S

    Rs = pairing.task_masks(err) * ops.P.T(err)                            # P* Err_j, one probe per task
    steps = {"change": -opts.lr * ops.P(ops.K(Rs)), "change_direct": -opts.lr * ops.P(Rs)}
    adam_state = None
    if opts.preconditioner == "adam":
        adam = _adam_preconditioner(checkpoint, model, ops)
        adam_state = adam["optimizer_state"]
        cotangents = ops.J_theta.T(Rs)                                   # ∇_θ L_j, one row per task
        steps["change_adam"] = -opts.lr * ops.P(ops.J_theta(adam["D"] * cotangents))
        scale, drift = _adam_step(adam, cotangents.sum(0))
        steps["change_adam_step"] = -opts.lr * ops.P(ops.J_theta(scale * cotangents))
        steps["change_adam_momentum"] = -opts.lr * ops.P(ops.J_theta(drift[None]))

    out: dict[str, tuple[tuple[str, ...], Any]] = {}
    dims = ("task", "condition", "time")
    for name, dz in steps.items():
        dX = torch.stack([pairing.represent(d, sl) for d in dz])          # [n_tasks, C, T', H]
        split = (GX[None] * dX).sum(-1)
        cos = [float((g * d).sum() / (g.norm() * d.norm())) if float(d.norm()) > 0 else np.nan for d in dz]
        if name == "change_adam_momentum":                                 # no task: past gradients
            out[name] = (dims[1:], split[0].cpu().numpy())
            out[name.replace("change", "cosine")] = ((), cos[0])
        else:
            out[name] = (dims, split.cpu().numpy())
            out[name.replace("change", "cosine")] = (("task",), np.asarray(cos))
    loss = float(loss_function(model, ops, pairing.targets, pairing.mask, opts.mask_mode)(ops.states))
    out.update(similarity=((), float(S.detach())), score=((), float(score.raw(X.detach()))), loss=((), loss))
    if check:
        measured = _measured_change(model, pairing, opts, dtype, score, sl, adam_state)
        out["measured"] = ((), measured)
    return out


def _measured_change(model, pairing, opts, dtype, score, sl, adam_state):
    """Take one real step on a copy (plain SGD, or Adam with the checkpoint's state) and return the
    measured change of the oriented score."""
    m = _snapshot(model).to(dtype)
    m.eval()
    inputs = pairing.inputs.to(dtype)
    targets, mask = pairing.targets.to(dtype), pairing.mask.to(dtype)

    def similarity():
        with torch.no_grad():
            _, states = m(inputs, noise=False)
            return float(score(pairing.represent(states, sl)))

    before = similarity()
    if adam_state is not None:
        optimizer = torch.optim.Adam(m.parameters(), lr=opts.lr)
        optimizer.load_state_dict(adam_state)
        for group in optimizer.param_groups:
            group["lr"] = opts.lr
        readout_frozen = [p for n, p in m.named_parameters() if not n.startswith("cell.")]
    else:
        optimizer = torch.optim.SGD(m.cell.parameters(), lr=opts.lr)
        readout_frozen = []
    with torch.enable_grad():
        outputs, _ = m(inputs, noise=False, full_state=False)
        loss = masked_mse(outputs, targets, mask, opts.mask_mode)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    for p in readout_frozen:      # parameters outside the cell (readout, learned h0) do not move z's operators
        p.grad = None
    optimizer.step()
    return similarity() - before


# ---------------------------------------------------------------------------------- public API
def similarity_flow(model_or_checkpoints, task_or_batch, recording, options: FlowOptions | None = None, *,
                    check: bool = False, progress: bool = False, **overrides) -> xr.Dataset:
    """Predicted first-order change of model–recording similarity under one gradient step (module docstring).

    Parameters
    ----------
    model_or_checkpoints
        One model (``.cell`` and a linear ``.readout``; reported as step 0), or a checkpoint
        sequence (a run directory, checkpoint paths, ``(step, model)`` pairs).
    task_or_batch
        A task or task mix (its ``test_grid(**options.grid)`` is used) or a task batch with
        ``.inputs``, ``.targets``, ``.mask``, ``.dt`` and ``meta`` (``task``, ``condition``).  The
        step is one full-batch step on this batch's training loss (masked MSE of the readout).
    recording
        xarray (trial, time, unit) with a per-trial condition coordinate, or (condition, time, unit).
    options : :class:`FlowOptions`; keywords override its fields (``lr=1e-4, measure="procrustes"``).
    check : also take one real optimiser step on a copy of every model (plain SGD at ``lr`` on the
        recurrent parameters; with ``preconditioner="adam"`` Adam with the checkpoint's state) and
        report ``measured`` next to the prediction, with ``relative_error``.

    Returns
    -------
    xarray.Dataset with dims ``(step, task, condition, time)``:

    * ``change``, ``change_direct`` [, ``change_adam``, ``change_adam_step``] (step, task, condition,
      time): the predicted similarity gain split by the sub-task whose error causes it and by the
      condition and time bin of the representation where it lands; [``change_adam_momentum``
      (step, condition, time): the part of Adam's next step driven by its momentum];
    * ``predicted*`` (same names, summed over condition and time); ``predicted_total`` (step):
      plain GD over all tasks — the full prediction; [``predicted_adam_step_total`` (step): Adam's
      next step, gradient parts plus momentum];
    * ``cosine*`` (step, task): cos(∇_z S, δz_task) for each version of the step;
    * ``similarity`` (step): the oriented score (larger = more similar), ``score`` (step): the
      measure's own value, ``loss`` (step): the batch loss;
    * with ``check``: ``measured`` (step) and ``relative_error`` = |predicted − measured| / |measured|
      (predicted: ``predicted_total``, or ``predicted_adam_step_total`` with ``preconditioner="adam"``).
    """
    opts = replace(options or FlowOptions(), **overrides).checked()
    dtype = resolve_dtype(opts.dtype)
    if hasattr(model_or_checkpoints, "cell"):
        check_model(model_or_checkpoints, "model_or_checkpoints")
        checkpoints: list[Checkpoint | None] = [None]
        models = [(0, model_or_checkpoints)]
    else:
        resolved = resolve_checkpoints(model_or_checkpoints, "model_or_checkpoints")
        checkpoints = resolved
        models = [(c.step, c.model) for c in resolved]
    first = models[0][1]
    if isinstance(task_or_batch, Task):
        batch = task_or_batch.test_grid(**opts.grid)
    else:
        batch = task_or_batch
    batch = batch.to(next(first.cell.parameters()).device) if hasattr(batch, "to") else batch
    pairing = _Pairing(batch, first, recording, opts)
    if opts.preconditioner == "adam" and checkpoints[0] is None:
        raise FlowError("preconditioner='adam' reads the optimiser state from checkpoint files; pass a run "
                        "directory or checkpoint paths (or use preconditioner='none')")

    parts = []
    iterator = zip(checkpoints, models)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(list(iterator), desc="similarity flow")
    for ckpt, (step, model) in iterator:
        parts.append(xr.Dataset(_one_step(model, pairing, opts, dtype, ckpt, check)).expand_dims(step=[step]))
    ds = xr.concat(parts, "step")
    ds = ds.assign_coords(task=pairing.tasks, condition=pairing.conditions,
                          time=("time", np.asarray(pairing.times, dtype=float), {"units": "s"}))
    variants = [v for v in ("change", "change_direct", "change_adam", "change_adam_step", "change_adam_momentum")
                if v in ds]
    for v in variants:
        ds[v.replace("change", "predicted")] = ds[v].sum(("condition", "time"))
    ds["predicted_total"] = ds["predicted"].sum("task")
    if "predicted_adam_step" in ds:
        ds["predicted_adam_step_total"] = ds["predicted_adam_step"].sum("task") + ds["predicted_adam_momentum"]
    if check:
        reference = ds["predicted_adam_step_total"] if "predicted_adam_step" in ds else ds["predicted_total"]
        ds["relative_error"] = abs(reference - ds["measured"]) / abs(ds["measured"])
    _describe(ds, opts, pairing)
    return ds


def cumulative_flow(result: xr.Dataset, variant: str = "predicted") -> xr.Dataset:
    """Predicted similarity gain accumulated over training, next to the gain measured along the run.

    ``predicted`` (step, task): the sum over optimiser steps of the per-step prediction
    ``result[variant]`` interpolated linearly between checkpoints (``"predicted"``, ``"predicted_direct"``,
    ``"predicted_adam"`` or ``"predicted_adam_step"``),
    0 at the first checkpoint; ``predicted_total`` (step): summed over tasks; ``measured`` (step):
    ``similarity − similarity`` at the first checkpoint.  The two agree only as far as the run's
    steps are the steps the prediction describes (full-batch steps on this batch at this ``lr``);
    for a run trained on random batches, or with Adam, they compare direction and proportion.
    """
    if not isinstance(result, xr.Dataset) or variant not in result or "similarity" not in result:
        raise FlowError(f"cumulative_flow needs a similarity_flow result holding {variant!r}")
    if result.sizes.get("step", 0) < 2:
        raise FlowError("cumulative_flow needs at least two checkpoints (a step dimension of length >= 2)")
    steps = xr.DataArray(result["step"].values.astype(float), dims="step", coords={"step": result["step"]})
    rate = result[variant]
    # optimiser steps s_i .. s_{i+1}-1, each predicted by the linear interpolation of the per-step
    # prediction between the two checkpoints: n p_i + (p_{i+1} - p_i)(n - 1)/2 with n = s_{i+1} - s_i
    # (n = 1: the left checkpoint's own prediction; large n: the trapezoidal rule)
    n = steps - steps.shift(step=1)
    previous = rate.shift(step=1)
    increment = n * previous + (rate - previous) * (n - 1) / 2
    predicted = increment.fillna(0.0).cumsum("step")
    measured = result["similarity"] - result["similarity"].isel(step=0)
    out = xr.Dataset({"predicted": predicted, "predicted_total": predicted.sum("task"), "measured": measured})
    out.attrs.update(variant=variant, sign=result.attrs.get("sign", ""), lr=result.attrs.get("lr", np.nan),
                     integration="sum over optimiser steps of the per-step prediction, linearly interpolated between checkpoints; 0 at the first checkpoint")
    return out


_LONG = {
    "change": "predicted similarity gain, plain GD as realised: <grad_z S, -lr P K P* Err_task>, at (condition, time)",
    "change_direct": "predicted similarity gain, direct / functional GD (K = I): <grad_z S, -lr P P* Err_task>",
    "change_adam": "predicted similarity gain, Adam-preconditioned (K -> J D J*, frozen D; an approximation)",
    "change_adam_step": "predicted similarity gain of Adam's next step, gradient part (updated v, bias-corrected)",
    "change_adam_momentum": "predicted similarity gain of Adam's next step, momentum part (past gradients)",
    "predicted_adam_step_total": "predicted similarity gain of Adam's next step (gradient parts + momentum)",
    "cosine": "cos(grad_z S, -lr P K P* Err_task)",
    "cosine_direct": "cos(grad_z S, -lr P P* Err_task)",
    "cosine_adam": "cos(grad_z S, -lr P J D J* P* Err_task)",
    "similarity": "oriented score S (larger = more similar)",
    "score": "the measure's own value",
    "loss": "batch loss (masked MSE of the readout)",
    "measured": "measured similarity gain after one real optimiser step on a copy",
    "relative_error": "|predicted - measured| / |measured|",
    "predicted_total": "predicted similarity gain of the whole step (sum over tasks)",
}


def _describe(ds, opts, pairing):
    convention = DIFFERENTIABLE[opts.measure][1]
    sign = ("positive = more similar (the change of the similarity)" if convention == "similarity" else
            "positive = more similar: the value is MINUS the change of the Procrustes angle (radians)")
    ds.attrs.update(
        measure=opts.measure, measure_convention=convention, sign=sign, lr=float(opts.lr),
        optimizer_step="plain gradient descent on the recurrent parameters, full batch, at lr",
        preconditioner=opts.preconditioner, pairing=pairing.pairing, dtype=dtype_name(resolve_dtype(opts.dtype)),
        mask_mode=opts.mask_mode, options=json_attr({k: v for k, v in asdict(opts).items()}),
        split="change[task, condition, time] sums exactly to predicted[task]; tasks sum to predicted_total",
        **({"adam_approximation": "Adam's step is not linear in the gradient (momentum, v updated with the new "
                                  "gradient, bias correction, epsilon); change_adam uses the frozen diagonal "
                                  "D = 1/(sqrt(v_hat)+eps) of the checkpoint; change_adam_step + "
                                  "change_adam_momentum is Adam's next step, linear in the error only given "
                                  "the updated v"}
           if opts.preconditioner == "adam" else {}))
    for name, text in _LONG.items():
        if name in ds:
            ds[name].attrs["long_name"] = text
    for v in ("predicted", "predicted_direct", "predicted_adam", "predicted_adam_step", "predicted_adam_momentum"):
        if v in ds:
            ds[v].attrs["long_name"] = _LONG[v.replace("predicted", "change")].split(", at")[0] + ", summed"

