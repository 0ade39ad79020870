"""Pieces shared by :func:`collapse` and :func:`subtask_alignment`: trajectories, loss, coordinates."""
from __future__ import annotations

import json

import numpy as np
import torch

from .._validation import DTYPES as _DTYPE_NAMES
from .._validation import dtype_name, resolve_dtype
from ..kpflow import operators_from_model
from ..training.loss import masked_mse
from ..errors import InputError, InputTypeError

__all__ = ["build_operators", "readout_outputs", "loss_function", "batch_coords", "resolve_dtype", "dtype_name",
           "json_attr", "cosine"]

DTYPES = {name: resolve_dtype(name) for name in _DTYPE_NAMES}


def build_operators(model, inputs, *, dtype, inner, chunk_size):
    """KPFlow operators of ``model`` along the noise-free trajectory of ``inputs`` (analysis dtype)."""
    if getattr(model, "readout", None) is None:
        raise InputTypeError("the model has no .readout; the loss (and the error Err) need the linear readout")
    return operators_from_model(model, inputs, dtype=dtype, inner=inner, chunk_size=chunk_size)


def readout_outputs(model, ops, states=None) -> torch.Tensor:
    """Readout of a state trajectory ``[B, T, S]`` (default: the operators' own) in the analysis dtype."""
    states = ops.states if states is None else states
    readout = model.readout
    W = readout.weight.detach().to(device=states.device, dtype=states.dtype)
    b = getattr(readout, "bias", None)
    b = None if b is None else b.detach().to(device=states.device, dtype=states.dtype)
    return torch.nn.functional.linear(states[..., ops.cell.output_slice], W, b)


def loss_function(model, ops, targets, mask, mask_mode):
    """``states -> masked MSE of the readout`` (the training loss) in the analysis dtype."""
    t = targets.to(device=ops.states.device, dtype=ops.states.dtype)
    m = mask.to(device=ops.states.device, dtype=ops.states.dtype)
    return lambda states: masked_mse(readout_outputs(model, ops, states), t, m, mask_mode)


def batch_coords(batch, n_trials, n_steps) -> dict:
    """``trial`` and ``time`` coordinates (time in seconds when the batch knows ``dt``) plus per-trial
    metadata coordinates (task, condition, angles) of a task batch."""
    dt = getattr(batch, "dt", None)
    if dt is not None:  # the package's one time convention: bin centres (t + 1/2) dt, as record() labels states
        time = ("time", (np.arange(n_steps) + 0.5) * float(dt), {"units": "s", "long_name": "bin centre"})
    else:
        time = ("time", np.arange(n_steps), {"units": "step", "long_name": "time step index"})
    coords = {"trial": np.arange(n_trials), "time": time}
    meta = getattr(batch, "meta", None) or {}
    for key in ("task", "condition", "stimulus_angle", "response_angle"):
        if key in meta:
            coords[key] = ("trial", np.asarray(meta[key]))
    return coords


def json_attr(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine of two tensors flattened (float64); NaN when either is zero."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else float("nan")
