"""Plots of comparisons: the Dataset of :func:`neurokpflow.compare.compare`, and trajectories side by side."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import xarray as xr
from matplotlib import colormaps

from ..compare import measure_label
from ..errors import InputError
from ._axes import panels

__all__ = ["plot_comparison", "plot_trajectories"]


def plot_comparison(ds: xr.Dataset, *, measures: Any = None, ax: Any = None, axes: Any = None):
    """One panel per measure (conventions differ, so no shared y axis), titled with the measure's label.

    overall scores: point with bootstrap CI bar, permutation-null mean (x) and noise ceiling (dashed);
    a ``time`` or training (``step``) dim: line with CI band and null mean; ``time_model`` x ``time_data``:
    heatmap.  ``ax``: one Axes per measure (or None for a new figure; ``axes`` is its older name).
    Returns the matplotlib Figure.
    """
    if not isinstance(ds, xr.Dataset) or "score" not in ds:
        raise InputError("expected the Dataset returned by compare(...), which has a 'score' variable")
    names = list(ds["measure"].values) if measures is None else list(measures)
    if axes is not None:
        if ax is not None:
            raise InputError("pass ax= only (axes= is its older name)")
        warnings.warn("plot_comparison(axes=...) is deprecated; use ax=", DeprecationWarning, stacklevel=2)
        ax = axes
    fig, axes = panels(ax, len(names), (3.6 * len(names), 3.2), "plot_comparison")
    for ax, name in zip(axes, names):
        sub = ds.sel(measure=name)
        other = [d for d in sub["score"].dims]
        label = f"{_wrap(measure_label(ds, name))}\n({str(sub['convention'].values)})"
        band = f"CI ({sub['ci_method'].values})" if "ci_method" in sub else "CI"
        if len(other) == 2:
            mesh = ax.pcolormesh(sub[other[1]].values, sub[other[0]].values, sub["score"].values, shading="nearest")
            fig.colorbar(mesh, ax=ax)
            ax.set_xlabel(other[1])
            ax.set_ylabel(other[0])
        elif len(other) == 1:
            x = sub[other[0]].values
            ax.plot(x, sub["score"].values, color="C0", label="score")
            if _bias_corrected(sub):
                ax.plot(x, sub["ci_estimate"].values, color="C0", linestyle="--", label="bias-corrected")
            if "ci_low" in sub:
                ax.fill_between(x, sub["ci_low"].values, sub["ci_high"].values, color="C0", alpha=0.25, label=band)
            if "null_mean" in sub:
                ax.plot(x, sub["null_mean"].values, color="0.5", linestyle=":", label="null mean")
            ax.set_xlabel(other[0])
            ax.legend(fontsize="small")
        else:
            score = float(sub["score"])
            err = None
            if _bias_corrected(sub):      # the interval belongs to the bias-corrected estimate
                ax.plot([0], [score], "o", mfc="none", color="C0", label="score")
                score = float(sub["ci_estimate"])
            if "ci_low" in sub:
                err = [[score - float(sub["ci_low"])], [float(sub["ci_high"]) - score]]
            ax.errorbar([0], [score], yerr=err, fmt="o", color="C0", capsize=4,
                        label="bias-corrected" if _bias_corrected(sub) else "score")
            if "null_mean" in sub:
                ax.plot([0], [float(sub["null_mean"])], "x", color="0.4", label="null mean")
            if "noise_ceiling" in sub:
                ax.axhline(float(sub["noise_ceiling"]), color="C3", linestyle="--", label="noise ceiling")
            ax.set_xticks([])
            ax.legend(fontsize="small")
        ax.set_title(label, fontsize="small")
    return fig


def _wrap(label: str, width: int = 32) -> str:
    """A label broken after its ', ' separators into lines of at most ``width`` characters."""
    lines = [""]
    for part in label.split(", "):
        piece = part if not lines[-1] else ", " + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def _bias_corrected(sub: xr.Dataset) -> bool:
    """Whether the interval belongs to a bias-corrected estimate rather than to the score."""
    return "ci_estimate" in sub and not np.allclose(sub["ci_estimate"].values, sub["score"].values, equal_nan=True)


def _condition_means(activity):
    """(condition, time, unit) means of a (trial, time, unit) DataArray with a per-trial ``condition``."""
    return activity.groupby("condition").mean("trial").transpose("condition", "time", ...)


def _top_pcs(means, k=2):
    X = means.values
    flat = X.reshape(-1, X.shape[-1])
    flat = flat - flat.mean(0)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    explained = (s[:k] ** 2).sum() / (s ** 2).sum()
    return (flat @ vt[:k].T).reshape(X.shape[0], X.shape[1], k), explained


def plot_trajectories(recording, untrained, trained, trained_step, *, ax=None):
    """Condition-averaged trajectories of the recording, the untrained and the trained model, each in
    its own top-2 principal-component plane (no fitted mapping between them); colour = condition.
    ``ax``: three Axes, or None for a new figure.  Returns the Figure."""
    shown = [("recording", recording), ("model, untrained (step 0)", untrained),
             (f"model, trained (step {trained_step})", trained)]
    fig, axes = panels(ax, 3, (11, 3.6), "plot_trajectories")
    for ax, (title, activity) in zip(axes, shown):
        means = _condition_means(activity)
        pcs, explained = _top_pcs(means)
        colours = colormaps["twilight"](np.linspace(0, 1, pcs.shape[0], endpoint=False))
        for c in range(pcs.shape[0]):
            ax.plot(pcs[c, :, 0], pcs[c, :, 1], color=colours[c], lw=1.2)
            ax.plot(pcs[c, -1, 0], pcs[c, -1, 1], "o", color=colours[c], ms=3)
        ax.set_title(f"{title}\n(PC1-2: {100 * explained:.0f} % of variance)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    return fig
