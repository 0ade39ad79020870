"""Fixed and slow points in the PCA space of trajectories."""
from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from matplotlib.figure import Figure
from ._axes import panels
from ..errors import InputError, InputTypeError

__all__ = ["plot_fixed_points"]

_STYLE = {"stable": ("o", "k", "black"), "marginal": ("s", "tab:blue", "tab:blue"),
          "saddle": ("X", "tab:red", "none"), "unstable": ("^", "tab:orange", "none")}


def _states(trajectories):
    if isinstance(trajectories, xr.DataArray):
        trajectories = trajectories.transpose(*[d for d in ("trial", "time", "unit") if d in trajectories.dims]).values
    if isinstance(trajectories, torch.Tensor):
        trajectories = trajectories.detach().cpu().numpy()
    z = np.asarray(trajectories, dtype=np.float64)
    if z.ndim != 3:
        raise InputError(f"trajectories must be [trial, time, unit], got shape {z.shape}")
    return z


def plot_fixed_points(points: xr.Dataset, trajectories, *, ax=None, dims=(0, 1)):
    """Trajectories (grey lines) and the points of :func:`~neurokpflow.analysis.fixed_points.find_fixed_points`
    (markers by stability: filled dot stable, square marginal, red cross saddle, triangle unstable)
    projected on two principal components of the trajectories' states.

    ``trajectories``: ``[trial, time, unit]`` states of the same cell (tensor, array or DataArray).
    ``ax``: an existing Axes to draw on (default: a new Figure).  Returns the Figure.
    """
    if not isinstance(points, xr.Dataset) or not {"state", "stability"} <= set(points.data_vars):
        raise InputTypeError("points must be the Dataset of analysis.fixed_points.find_fixed_points / slow_points")
    z = _states(trajectories)
    if z.shape[-1] != points.sizes["unit"]:
        raise InputError(f"trajectories have {z.shape[-1]} state units, the points {points.sizes['unit']}; "
                         "pass the full cell state (full_state=True for an LSTM)")
    flat = z.reshape(-1, z.shape[-1])
    mean = flat.mean(0)
    _, s, vt = np.linalg.svd(flat - mean, full_matrices=False)
    pcs = vt[list(dims)]
    explained = (s ** 2 / np.sum(s ** 2))[list(dims)]
    fig, (ax,) = panels(ax, 1, (4.5, 4), "plot_fixed_points")
    for trial in z:
        p = (trial - mean) @ pcs.T
        ax.plot(p[:, 0], p[:, 1], color="0.7", lw=0.7, zorder=1)
    proj = (points["state"].values - mean) @ pcs.T
    labels = points["stability"].values
    for label, (marker, edge, face) in _STYLE.items():
        sel = labels == label
        if sel.any():
            ax.scatter(proj[sel, 0], proj[sel, 1], marker=marker, edgecolors=edge, facecolors=face, s=36,
                       zorder=3, label=f"{label} ({int(sel.sum())})")
    ax.set(xlabel=f"PC{dims[0] + 1} ({explained[0]:.0%})", ylabel=f"PC{dims[1] + 1} ({explained[1]:.0%})",
           title="fixed points" if points.attrs.get("q_threshold", 0) <= points.attrs.get("tol_q", 0)
           else f"points with q <= {points.attrs['q_threshold']:g}")
    ax.legend(frameon=False, fontsize="small")
    return fig
