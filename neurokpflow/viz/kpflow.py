"""Plots of the KPFlow analyses.  Each function takes the xarray result and returns a Figure.

Figures are built with the object-oriented matplotlib API on the Agg canvas (no display
needed, nothing global is touched); save them with ``fig.savefig(path)``.
"""
from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib import colormaps
from matplotlib.figure import Figure
from ..errors import InputError, InputTypeError
from ._axes import panels
from .._validation import Options, Rule, check_params

__all__ = ["plot_effective_rank", "plot_eigenfunctions", "plot_task_matrices", "plot_task_trajectories",
           "plot_activity_rank"]


def _require(ds, variables, what):
    if not isinstance(ds, xr.Dataset):
        raise InputTypeError(f"{what} takes an xarray.Dataset, got {type(ds).__name__}")
    missing = [v for v in variables if v not in ds]
    if missing:
        raise InputError(f"{what}: the dataset lacks {missing}; pass the result of the matching analysis")


def _check_choice(name, value, choices):
    check_params({name: Rule(Options(*choices), "choose one the result holds")}, **{name: value})


def plot_effective_rank(result: xr.Dataset, definition: str = "ER1", *, operators=("K", "P", "PKP*"),
                        misdirection: bool = True, ax=None) -> Figure:
    """Effective rank vs training step for ``K``, ``P``, ``P K P*`` (± 2 standard errors), from
    :func:`neurokpflow.analysis.collapse`; a second panel shows the misdirection
    ``KA(P K P*, P P*)`` and the loss."""
    _require(result, ["effective_rank", "effective_rank_stderr"], "plot_effective_rank")
    _check_choice("definition", definition, result.definition.values)
    for op in operators:
        _check_choice("operator", op, result.operator.values)
    fig, axes = panels(ax, 2 if misdirection else 1, (9 if misdirection else 5, 3.6), "plot_effective_rank")
    step = result.step.values
    ax = axes[0]
    for op in operators:
        r = result.effective_rank.sel(operator=op, definition=definition).values
        se = result.effective_rank_stderr.sel(operator=op, definition=definition).values
        ax.plot(step, r, marker="o", ms=3, label="P K P*" if op == "PKP*" else op)
        ax.fill_between(step, r - 2 * se, r + 2 * se, alpha=0.2)
    ax.set(xlabel="training step", ylabel=f"effective rank ({definition})", yscale="log",
           title=f"reduced onto {result.attrs.get('keep', '')} ({result.attrs.get('reduction', '')})")
    ax.legend()
    if misdirection and "misdirection" in result:
        ax = axes[1]
        m, se = result.misdirection.values, result.misdirection_stderr.values
        ax.plot(step, m, color="k", marker="o", ms=3, label="KA(PKP*, PP*)")
        ax.fill_between(step, m - 2 * se, m + 2 * se, color="k", alpha=0.2)
        ax.set(xlabel="training step", ylabel="misdirection alignment", title="misdirection and loss")
        twin = ax.twinx()
        twin.plot(step, result.loss.values, color="tab:red", label="loss")
        twin.set(ylabel="loss", yscale="log")
        ax.legend(loc="upper left")
        twin.legend(loc="upper right")
    return fig


def plot_eigenfunctions(result: xr.Dataset, operator: str = "K", step=None, *, modes=None, ax=None) -> Figure:
    """Top eigenfunctions ``λ_i φ_i(t)`` of the unit-reduced ``K`` (or ``P K P*``) at one checkpoint,
    one line per trial, coloured by the trial's condition when known.  ``step``: optimiser step
    (default the last checkpoint)."""
    _require(result, ["eigenvalue", "eigenfunction"], "plot_eigenfunctions")
    _check_choice("operator", operator, result.eig_operator.values)
    step = int(result.step.values[-1]) if step is None else step
    _check_choice("step", step, result.step.values)
    r = result.sel(step=step, eig_operator=operator)
    modes = list(r.mode.values) if modes is None else list(modes)
    fig, axes = panels(ax, len(modes), (3.2 * len(modes), 3.0), "plot_eigenfunctions")
    colour_by = r["condition"].values if "condition" in r.coords else np.arange(r.sizes["trial"])
    span = max(float(np.ptp(colour_by)), 1.0)
    colours = colormaps["twilight"]((colour_by - np.min(colour_by)) / span)
    time = r.time.values
    for ax, k in zip(axes, modes):
        lam = float(r.eigenvalue.sel(mode=k))
        phi = r.eigenfunction.sel(mode=k).values
        for b in range(phi.shape[0]):
            ax.plot(time, lam * phi[b], color=colours[b], lw=1)
        ax.set(title=f"mode {k}: λ = {lam:.3g}", xlabel=f"time ({r.time.attrs.get('units', '')})")
    axes[0].set_ylabel(f"λ φ(t), {'P K P*' if operator == 'PKP*' else operator} at step {step}")
    return fig


def plot_task_matrices(result: xr.Dataset, variable: str = "alignment", steps=None, *, vmin=-1.0,
                       vmax=1.0, ax=None) -> Figure:
    """Task × task matrices (e.g. ``alignment``, ``hidden_alignment``, ``gradient_alignment``) of
    :func:`neurokpflow.analysis.subtask_alignment`, one panel per chosen step."""
    _require(result, [variable], "plot_task_matrices")
    da = result[variable]
    if "step" in da.dims:
        steps = [int(result.step.values[0]), int(result.step.values[-1])] if steps is None else list(steps)
        for s in steps:
            _check_choice("step", s, result.step.values)
        shown = [(f"step {s}", da.sel(step=s)) for s in steps]
    else:
        shown = [("", da)]
    labels = [str(t) for t in result.task_i.values]
    fig, axes = panels(ax, len(shown), (3.4 * len(shown) + 0.8, 3.4), "plot_task_matrices")
    for ax, (title, m) in zip(axes, shown):
        image = ax.imshow(m.values, vmin=vmin, vmax=vmax, cmap="RdBu_r")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set(xlabel="task j", ylabel="task i", title=f"{variable.replace('_', ' ')} {title}".strip())
    fig.colorbar(image, ax=list(axes), shrink=0.8)
    return fig


def plot_task_trajectories(result: xr.Dataset, variable: str = "cumulative_alignment", *,
                           include_diagonal: bool = False, ax=None) -> Figure:
    """One line per ordered task pair ``(i, j)`` of a task × task variable over training steps."""
    _require(result, [variable], "plot_task_trajectories")
    da = result[variable]
    if "step" not in da.dims:
        raise InputError(f"{variable} has no step dimension; pass the result of subtask_alignment over checkpoints")
    fig, (ax,) = panels(ax, 1, (6, 3.6), "plot_task_trajectories")
    for i in result.task_i.values:
        for j in result.task_j.values:
            if i == j and not include_diagonal:
                continue
            ax.plot(result.step.values, da.sel(task_i=i, task_j=j).values, label=f"{i} ← {j}", lw=1)
    ax.set(xlabel="training step", ylabel=variable.replace("_", " "))
    ax.legend(fontsize=6, ncol=2)
    return fig


def plot_activity_rank(result: xr.Dataset, *, ax=None) -> Figure:
    """Participation ratio (ER4) of the hidden activity over training, centred and uncentred, with its
    bootstrap standard error, from :func:`neurokpflow.analysis.collapse`.  Returns the Figure."""
    _require(result, ["activity_effective_rank", "activity_effective_rank_stderr"], "plot_activity_rank")
    fig, (ax,) = panels(ax, 1, (5, 3.2), "plot_activity_rank")
    for centering, style in zip(result["centering"].values, ("-", "--")):
        er = result["activity_effective_rank"].sel(centering=centering)
        se = result["activity_effective_rank_stderr"].sel(centering=centering)
        ax.errorbar(result["step"].values, er, yerr=se, ls=style, marker="o", ms=3, capsize=2, color="tab:gray",
                    label=str(centering))
    ax.set(xlabel="training step", ylabel="participation ratio (ER4)", title="hidden activity")
    ax.legend(fontsize=8)
    return fig
