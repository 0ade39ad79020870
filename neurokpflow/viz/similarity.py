"""Plot of :func:`neurokpflow.analysis.similarity_flow` over training."""
from __future__ import annotations

import xarray as xr
from matplotlib import colormaps

from ._axes import panels
from .kpflow import _require

__all__ = ["plot_similarity_flow"]


def plot_similarity_flow(result: xr.Dataset, variant: str | None = None, *, ax=None):
    """Cumulative predicted similarity gain per sub-task (and in total) next to the measured gain
    over training, from a :func:`~neurokpflow.analysis.similarity_flow` result over checkpoints.

    ``variant``: ``"predicted"`` (plain GD, P K P*), ``"predicted_direct"`` (P P*) or
    ``"predicted_adam"`` (default: the Adam version when present, else plain GD).  Draws on ``ax``
    when given (else on a new figure) and returns the figure.  Positive = more similar.
    """
    from ..analysis.similarity_flow import cumulative_flow

    _require(result, ["similarity"], "plot_similarity_flow")
    if variant is None:
        variant = "predicted_adam" if "predicted_adam" in result else "predicted"
    cum = cumulative_flow(result, variant)
    fig, (ax,) = panels(ax, 1, (6, 3.6), "plot_similarity_flow")
    step = cum["step"].values
    colours = colormaps["tab10"]
    for k, task in enumerate(cum["task"].values):
        ax.plot(step, cum["predicted"].sel(task=task).values, color=colours(k % 10), lw=1.2,
                label=f"predicted, {task}'s error")
    ax.plot(step, cum["predicted_total"].values, color="k", ls="--", lw=1.5, label="predicted, all tasks")
    ax.plot(step, cum["measured"].values, color="k", marker="o", ms=3, lw=1.5, label="measured")
    ax.axhline(0.0, color="0.6", lw=0.8)
    measure = result.attrs.get("measure", "")
    ax.set(xlabel="training step", ylabel=f"cumulative similarity gain ({measure})",
           title=f"similarity flow ({variant.replace('predicted_', '') if '_' in variant else 'P K P*'}); "
                 "positive = more similar")
    ax.legend(fontsize=7)
    return fig
