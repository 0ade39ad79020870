"""Figures across a sweep (:func:`neurokpflow.open_sweep`): runs grouped by their hyperparameters.

Runs that differ only in ``seed`` form a group; a group is labelled by the grid axes that vary in
the sweep (e.g. ``g=1.2, lr=0.01``).  Lines are the mean over a group's seeds (failed runs, whose
values are NaN, are left out and counted in the legend), bands the min-max range over its seeds.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..compare import measure_label
from ._axes import grid, panels
from .kpflow import _check_choice, _require
from ..errors import InputError

__all__ = ["sweep_groups", "plot_sweep_effective_rank", "plot_sweep_similarity", "plot_sweep_task_matrix"]

#: hyperparameter coordinates along ``run`` (besides ``seed``) that can define groups
GROUP_FIELDS = ("task", "cell", "hidden", "g", "alpha", "optimizer", "lr", "batch_size", "steps", "checkpoint_every")


def sweep_groups(ds: xr.Dataset, by=None) -> list:
    """``[(label, run ids), ...]``: runs with equal values of ``by`` (default: every grid axis except
    ``seed`` that varies in the sweep), in order of first appearance."""
    if "run" not in ds.dims:
        raise InputError("sweep figures take the Dataset of neurokpflow.open_sweep(path) (with its run dimension)")
    if by is None:
        by = [f for f in GROUP_FIELDS if f in ds.coords and np.unique(ds[f].values).size > 1]
    groups: dict = {}
    for i, rid in enumerate(ds.run.values):
        key = tuple(ds[f].values[i].item() for f in by)
        groups.setdefault(key, []).append(rid)
    return [(", ".join(f"{f}={v:g}" if isinstance(v, float) else f"{f}={v}" for f, v in zip(by, key)) or "all runs",
             runs) for key, runs in groups.items()]


def _band(ax, x, values, label):
    """Mean over the first axis (runs) with a min-max band; NaN runs (failed) are left out."""
    ok = ~np.all(np.isnan(values), axis=tuple(range(1, values.ndim)))
    values = values[ok]
    if not len(values):
        return
    mean = values.mean(0)
    line, = ax.plot(x, mean, marker="o", ms=3, label=f"{label} (n={len(values)})")
    if len(values) > 1:
        ax.fill_between(x, values.min(0), values.max(0), color=line.get_color(), alpha=0.2)


def plot_sweep_effective_rank(ds: xr.Dataset, definition: str = "ER1", *, operators=("K", "P", "PKP*"),
                              by=None, ax=None) -> Figure:
    """Effective rank of each operator over training (``collapse_step``), one line per group
    (default: per ``g`` and every other varying axis), mean and min-max over seeds."""
    _require(ds, ["effective_rank"], "plot_sweep_effective_rank")
    _check_choice("definition", definition, ds.definition.values)
    for op in operators:
        _check_choice("operator", op, ds.operator.values)
    groups = sweep_groups(ds, by)
    fig, axes = panels(ax, len(operators), (3.6 * len(operators), 3.4), "plot_sweep_effective_rank")
    step = ds.collapse_step.values
    for ax, op in zip(axes, operators):
        rank = ds.effective_rank.sel(operator=op, definition=definition)
        for label, runs in groups:
            _band(ax, step, rank.sel(run=runs).transpose("run", "collapse_step").values, label)
        ax.set(xlabel="training step", ylabel=f"effective rank ({definition})", yscale="log",
               title="P K P*" if op == "PKP*" else op)
    axes[0].legend(fontsize=7)
    return fig


def plot_sweep_similarity(ds: xr.Dataset, *, measures=None, sessions=None, by=None, ax=None) -> Figure:
    """``score`` against each recording over training (``compare_step``): one panel per measure
    (rows) and session (columns), one line per group, mean and min-max over seeds."""
    _require(ds, ["score"], "plot_sweep_similarity")
    measures = list(ds.measure.values) if measures is None else list(measures)
    sessions = list(ds.session.values) if sessions is None else list(sessions)
    for m in measures:
        _check_choice("measure", m, ds.measure.values)
    for s in sessions:
        _check_choice("session", s, ds.session.values)
    groups = sweep_groups(ds, by)
    fig, axes = grid(ax, len(measures), len(sessions), (3.6 * len(sessions), 3.0 * len(measures)),
                     "plot_sweep_similarity")
    step = ds.compare_step.values
    for r, m in enumerate(measures):
        convention = str(ds.convention.sel(measure=m).values) if "convention" in ds.coords else ""
        for c, s in enumerate(sessions):
            ax = axes[r, c]
            score = ds.score.sel(measure=m, session=s)
            for label, runs in groups:
                _band(ax, step, score.sel(run=runs).transpose("run", "compare_step").values, label)
            name = measure_label(ds, m)
            ax.set(xlabel="training step", ylabel=f"{name} ({convention})" if convention else name, title=str(s))
    axes[0, 0].legend(fontsize=7)
    return fig


def plot_sweep_task_matrix(ds: xr.Dataset, variable: str = "alignment", step=None, *, by=None, vmin=-1.0,
                           vmax=1.0, ax=None) -> Figure:
    """The task × task matrix ``variable`` of the sub-task alignment at ``step`` (default: the last
    ``subtask_step``), averaged over the seeds of each group: one panel per group."""
    _require(ds, [variable], "plot_sweep_task_matrix")
    step = int(ds.subtask_step.values[-1]) if step is None else step
    _check_choice("step", step, ds.subtask_step.values)
    groups = sweep_groups(ds, by)
    fig, axes = panels(ax, len(groups), (3.4 * len(groups) + 0.8, 3.4), "plot_sweep_task_matrix")
    image = None
    for ax, (label, runs) in zip(axes, groups):
        m = ds[variable].sel(subtask_step=step, run=runs)
        ok = m.notnull().any(("task_i", "task_j"))
        m = m.sel(run=m.run.values[ok.values])
        mean = m.mean("run").dropna("task_i", how="all").dropna("task_j", how="all")
        image = ax.imshow(mean.values, vmin=vmin, vmax=vmax, cmap="RdBu_r")
        ax.set_xticks(range(mean.sizes["task_j"]), [str(t) for t in mean.task_j.values], rotation=60, ha="right",
                      fontsize=7)
        ax.set_yticks(range(mean.sizes["task_i"]), [str(t) for t in mean.task_i.values], fontsize=7)
        ax.set(xlabel="task j", ylabel="task i", title=f"{label}\nmean of {m.sizes['run']} seed(s), step {step}")
    assert image is not None  # sweep_groups gives at least one group
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=variable.replace("_", " "))
    return fig
