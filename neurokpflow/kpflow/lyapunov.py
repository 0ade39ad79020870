"""Lyapunov spectra and finite-time Lyapunov exponents of recorded trajectories.

Benettin's method: with orthonormal ``Q_0`` (``k`` columns per trial),
``(Q_t, R_t) = qr(J(t) Q_{t−1})`` and ``λ_i ≈ (1/n) Σ_t log |R_t[i, i]|``.  Raw Jacobian products
are never formed, so the computation stays finite for long trajectories and chaotic gains
where ``J(T)⋯J(1)`` overflows.  Everything runs in float64 on a float64 copy of the cell (the
cell passed in is not modified).  ``J(t) = ∂f/∂z`` at ``(z(t−1), x(t))``, applied with the
cell's hand-derived linearisation (built-in and torch cells) or ``torch.func.jvp`` (any other
cell with ``forward(x, h) -> h'``).
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import xarray as xr

from .cells import as_state_cell
from ._probes import make_generator
from ..errors import InputError

__all__ = ["lyapunov_spectrum", "kaplan_yorke_dimension"]


def kaplan_yorke_dimension(exponents) -> float:
    """``D_KY = j + Σ_{i≤j} λ_i / |λ_{j+1}|`` with ``j`` the largest index whose partial sum is ≥ 0.

    Exponents are sorted in decreasing order first.  Returns 0 when ``λ_1 < 0`` and the number of
    exponents when every partial sum is non-negative (the dimension is then not resolved).
    """
    lam = np.sort(np.asarray(exponents, dtype=float))[::-1]
    csum = np.cumsum(lam)
    nonneg = np.nonzero(csum >= 0)[0]
    if nonneg.size == 0:
        return 0.0
    j = int(nonneg[-1]) + 1
    if j == lam.size:
        return float(j)
    return j + float(csum[j - 1]) / abs(float(lam[j]))


def lyapunov_spectrum(cell, inputs: torch.Tensor, hidden: torch.Tensor, h0: torch.Tensor | None = None, *,
                      n_exponents: int | None = None, warmup: int = 0, seed=0, dt: float | None = None) -> xr.Dataset:
    """Lyapunov exponents and finite-time exponents of each trial's trajectory.

    Parameters
    ----------
    cell : the recurrent cell ``z(t) = f(z(t−1), x(t))`` (neurokpflow, torch, or any module).
    inputs : [B, T, I] with ``inputs[:, t] = x(t+1)``.
    hidden : [B, T, S] with ``hidden[:, t] = z(t+1)``.
    h0 : [S] or [B, S], optional — ``z(0)``; zeros when omitted.
    n_exponents : int, optional — leading exponents to compute (default: all ``S``).
    warmup : int — steps used only to align ``Q`` with the leading directions; the exponents
        average the remaining ``T − warmup`` steps (removes the O(1/T) transient).
    seed : seed of the random initial frame ``Q_0`` (drawn on the CPU, so a seed gives the same
        exponents on every device), or a ``torch.Generator``.
    dt : float, optional — step duration in seconds: time coordinates in seconds and exponents
        per second; otherwise per step.

    Returns
    -------
    xarray.Dataset with
        ``exponents`` (trial, exponent): Benettin estimates, descending;
        ``ftle`` (trial, time, exponent): running averages ``(1/t) Σ_{s≤t} log|R_s[i,i]|``
        (the finite-time exponents up to each time);
        ``kaplan_yorke`` (trial): Kaplan–Yorke dimension of ``exponents``.
    """
    for name, v in (("inputs", inputs), ("hidden", hidden)):
        if not isinstance(v, torch.Tensor) or v.dim() != 3:
            raise InputError(f"{name} must be a tensor of shape [B, T, ·]")
    if inputs.shape[:2] != hidden.shape[:2]:
        raise InputError(f"inputs {tuple(inputs.shape)} and hidden {tuple(hidden.shape)} must share B and T")
    B, T, S = hidden.shape
    if not 0 <= warmup < T:
        raise InputError(f"warmup must lie in [0, T) = [0, {T}), got {warmup}")
    k = S if n_exponents is None else int(n_exponents)
    if not 1 <= k <= S:
        raise InputError(f"n_exponents must lie in [1, {S}], got {n_exponents}")
    f64 = torch.float64
    cell64 = as_state_cell(copy.deepcopy(cell).to(f64), input_size=inputs.shape[-1], state_size=S)
    x = inputs.detach().to(f64)
    z = hidden.detach().to(f64)
    z0 = torch.zeros(B, S, dtype=f64, device=z.device) if h0 is None else h0.detach().to(z).expand(B, S)
    z_prev = torch.cat([z0[:, None], z[:, :-1]], dim=1)
    lin = cell64.linearize(x, z_prev)
    # the initial frame is drawn on the CPU and moved: a seed gives the same exponents on every device
    # (finite-time exponents depend on the frame, and CPU and CUDA generators give different streams)
    gen = make_generator(seed, "cpu")                     # a torch.Generator passed in keeps its device
    Q = torch.linalg.qr(torch.randn(B, S, k, generator=gen, device=gen.device, dtype=f64)).Q.to(z.device)
    logs = torch.empty(B, T, k, dtype=f64, device=z.device)
    with torch.no_grad():
        for t in range(T):
            Y = lin.jvp(Q.permute(2, 0, 1), t).permute(1, 2, 0)  # J(t) Q, [B, S, k]
            Q, R = torch.linalg.qr(Y)
            logs[:, t] = torch.log(torch.diagonal(R, dim1=-2, dim2=-1).abs())
    steps = torch.arange(1, T + 1, dtype=f64, device=z.device)
    ftle = torch.cumsum(logs, dim=1) / steps[None, :, None]
    exps = logs[:, warmup:].mean(dim=1)
    exps, order = exps.sort(dim=1, descending=True)
    ftle = torch.gather(ftle, 2, order[:, None, :].expand(B, T, k))
    scale = 1.0 if dt is None else 1.0 / float(dt)
    time = np.arange(1, T + 1) * (1.0 if dt is None else float(dt))
    exps_np = exps.cpu().numpy() * scale
    ds = xr.Dataset(
        {"exponents": (("trial", "exponent"), exps_np),
         "ftle": (("trial", "time", "exponent"), ftle.cpu().numpy() * scale),
         "kaplan_yorke": ("trial", np.array([kaplan_yorke_dimension(e) for e in exps_np]))},
        coords={"trial": np.arange(B), "time": time, "exponent": np.arange(k)},
        attrs={"method": "Benettin QR, float64", "warmup_steps": warmup,
               "units": "1/step" if dt is None else "1/s"})
    ds["time"].attrs["units"] = "step" if dt is None else "s"
    return ds
