"""Where a plot draws: new Axes on an Agg figure, or the caller's (the ``ax=`` of every plot function)."""
from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import InputTypeError

__all__ = ["new_figure", "panels", "grid"]


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on the Agg canvas (no display needed, nothing global touched)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _given(ax: Any, n: int, what: str) -> list:
    axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n or not all(isinstance(a, Axes) for a in axes):
        raise InputTypeError(f"ax={type(ax).__name__}: {what} draws {n} panel(s); pass {n} matplotlib Axes "
                             "(a list for several) or None for a new figure")
    return axes


def panels(ax: Any, n: int, size: tuple, what: str) -> tuple[Figure, list]:
    """``(figure, [n Axes])``: the caller's ``ax`` (one Axes, or a sequence of ``n``) or a new row of ``n``."""
    if ax is None:
        fig = new_figure(*size)
        return fig, list(fig.subplots(1, n, squeeze=False)[0])
    axes = _given(ax, n, what)
    return axes[0].figure, axes


def grid(ax: Any, rows: int, cols: int, size: tuple, what: str) -> tuple[Figure, np.ndarray]:
    """``(figure, Axes array [rows, cols])``, from the caller's ``rows * cols`` Axes or a new figure."""
    if ax is None:
        fig = new_figure(*size)
        return fig, fig.subplots(rows, cols, squeeze=False)
    axes = _given(ax, rows * cols, what)
    return axes[0].figure, np.asarray(axes, dtype=object).reshape(rows, cols)

