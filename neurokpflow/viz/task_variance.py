"""Task-variance clusters, motifs and lesion effects (results of ``analysis.task_variance``)."""
from __future__ import annotations

import numpy as np
import xarray as xr
from ..errors import InputTypeError
from ._axes import new_figure, panels

__all__ = ["plot_task_variance", "plot_lesion_effects"]


def _label(ds):
    for label in ("cluster", "motif"):
        if label in ds.coords and "normalized_variance" in ds:
            return label
    raise InputTypeError("expected the Dataset of analysis.task_variance.cluster_units or motifs")


def plot_task_variance(ds: xr.Dataset, *, ax=None):
    """Normalised variance (tasks or task periods × units, units sorted by cluster / motif, with the
    cluster boundaries marked), the silhouette score against k, and — for motifs — which task periods
    share a motif (``shared_motifs``).  ``ax``: the 2 (3 for motifs) Axes to draw on, or None for a
    new figure.  Returns the Figure."""
    if not isinstance(ds, xr.Dataset):
        raise InputTypeError("expected the Dataset of analysis.task_variance.cluster_units or motifs")
    label = _label(ds)
    feature = ds["normalized_variance"].dims[1]
    order = np.argsort(ds[label].values, kind="stable")
    nv = ds["normalized_variance"].values[order].T
    names = [str(v) for v in ds[feature].values]
    n_panels = 3 if "shared_motifs" in ds else 2
    height = max(3.0, 0.18 * len(names) + 1.2)
    if ax is None:
        fig = new_figure(4.5 + 2.6 * (n_panels - 1) + (0.04 * len(names) if n_panels == 3 else 0), height)
        widths = [3, 1.2] + ([2] if n_panels == 3 else [])
        axes = list(fig.subplots(1, n_panels, gridspec_kw={"width_ratios": widths}))
    else:
        fig, axes = panels(ax, n_panels, (0, 0), "plot_task_variance")
    ax = axes[0]
    im = ax.imshow(nv, aspect="auto", cmap="hot", vmin=0, vmax=1 if ds.attrs.get("normalization") == "max" else None,
                   interpolation="nearest")
    ax.set_yticks(range(len(names)), names, fontsize="x-small")
    labels = ds[label].values[order]
    edges = np.flatnonzero(np.diff(labels)) + 0.5
    for e in edges:
        ax.axvline(e, color="tab:cyan", lw=0.8)
    centres = [np.mean(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    ax.set_xticks(centres, [str(c) for c in np.unique(labels)], fontsize="x-small")
    ax.set_xlabel(f"units by {label} ({ds.sizes['unit']} active of {ds.attrs.get('n_units_total', '?')})")
    fig.colorbar(im, ax=ax, shrink=0.8, label="normalised variance")
    ax = axes[1]
    ax.plot(ds["k"].values, ds["silhouette"].values, "o-", ms=3)
    ax.axvline(ds.attrs["n_clusters"], color="0.6", ls="--")
    ax.set(xlabel="number of clusters", ylabel="silhouette score", title=f"k = {ds.attrs['n_clusters']}")
    if n_panels == 3:
        ax = axes[2]
        shared = ds["shared_motifs"].values
        im = ax.imshow(shared, cmap="viridis", interpolation="nearest")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize="xx-small")
        ax.set_yticks(range(len(names)), names, fontsize="xx-small")
        ax.set_title("motifs shared by task periods", fontsize="small")
        fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def plot_lesion_effects(effects: xr.Dataset, variable: str = "performance_change", *, ax=None):
    """Task × lesion heatmap of :func:`~neurokpflow.analysis.task_variance.lesion_effects`
    (default the change of performance, lesioned − intact, as in Yang 2019).  Returns the Figure."""
    if not isinstance(effects, xr.Dataset) or variable not in effects or "lesion" not in effects.dims:
        raise InputTypeError(f"expected the Dataset of analysis.task_variance.lesion_effects with {variable!r}")
    data = effects[variable].transpose("task", "lesion")
    tasks_, lesions = [str(t) for t in data["task"].values], [str(v) for v in data["lesion"].values]
    fig, (ax,) = panels(ax, 1, (1.2 + 0.35 * len(lesions), 1.0 + 0.2 * len(tasks_)), "plot_lesion_effects")
    limit = max(float(np.nanmax(np.abs(data.values))), 1e-9) if variable.endswith("change") else None
    im = ax.imshow(data.values, aspect="auto", cmap="coolwarm" if limit else "viridis",
                   vmin=-limit if limit else None, vmax=limit, interpolation="nearest")
    ax.set_yticks(range(len(tasks_)), tasks_, fontsize="x-small")
    ax.set_xticks(range(len(lesions)), lesions, rotation=90, fontsize="x-small")
    fig.colorbar(im, ax=ax, label=variable.replace("_", " "))
    return fig
