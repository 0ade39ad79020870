"""Plot of a training run's log (``log.nc`` of :func:`neurokpflow.training.train`)."""
from __future__ import annotations

import xarray as xr
from matplotlib.figure import Figure

from ..errors import InputTypeError
from ._axes import panels

__all__ = ["plot_training_curves"]


def plot_training_curves(log: xr.Dataset, *, ax=None) -> Figure:
    """Training loss per step and test-grid accuracy per evaluation, side by side.

    ``ax``: two Axes, or None for a new figure.  Returns the Figure.
    """
    if not isinstance(log, xr.Dataset) or not {"loss", "accuracy"} <= set(log.data_vars):
        raise InputTypeError("plot_training_curves takes the training log (TrainResult.log or the run's log.nc)")
    fig, (ax1, ax2) = panels(ax, 2, (9, 3.2), "plot_training_curves")
    ax1.semilogy(log["step"], log["loss"], lw=0.8)
    ax1.set(xlabel="training step", ylabel="training loss (masked MSE)")
    for task in log["task"].values:
        ax2.plot(log["eval_step"], 100 * log["accuracy"].sel(task=task), marker="o", ms=3, label=str(task))
    ax2.set(xlabel="training step", ylabel="test-grid accuracy (%)", ylim=(-3, 103))
    ax2.legend(fontsize=8)
    return fig
