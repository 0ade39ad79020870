"""Plot the Dataset returned by :func:`neurokpflow.compare.compare` (matplotlib, Agg-safe)."""
from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from ..errors import InputError


def plot_comparison(ds: xr.Dataset, *, measures: Any = None, axes: Any = None):
    """One panel per measure (conventions differ, so no shared y axis).

    overall scores: point with bootstrap CI bar, permutation-null mean (x) and noise ceiling (dashed);
    a ``time`` or checkpoint dim: line with CI band and null mean; ``time_model`` x ``time_data``: heatmap.
    Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if "score" not in ds:
        raise InputError("expected the Dataset returned by compare(...), which has a 'score' variable")
    names = list(ds["measure"].values) if measures is None else list(measures)
    if axes is None:
        fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
        axes = axes[0]
    else:
        axes = np.atleast_1d(axes)
        fig = axes[0].figure
    if len(axes) != len(names):
        raise InputError(f"got {len(axes)} axes for {len(names)} measures")
    for ax, name in zip(axes, names):
        sub = ds.sel(measure=name)
        other = [d for d in sub["score"].dims]
        label = f"{_wrap(name)}\n({str(sub['convention'].values)})"
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
    fig.tight_layout()
    return fig


def _wrap(estimator: str, width: int = 32) -> str:
    """An estimator name broken after its '-' separators into lines of at most ``width`` characters."""
    lines = [""]
    for part in estimator.split("-"):
        piece = part if not lines[-1] else "-" + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def _bias_corrected(sub: xr.Dataset) -> bool:
    """Whether the interval belongs to a bias-corrected estimate rather than to the score."""
    return "ci_estimate" in sub and not np.allclose(sub["ci_estimate"].values, sub["score"].values, equal_nan=True)
