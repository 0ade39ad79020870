"""Task variance and unit clusters (Yang et al. 2019), dynamical motifs (Driscoll et al. 2024), lesions.

**Task variance** (Yang 2019).  For a unit and a task, the variance of the unit's activity *across the
task's trials* at each time point, averaged over the time points of the task — computed on noise-free
trials that differ by their stimulus condition (``task.test_grid()``).  Time points are aligned on the
trial start; steps in ``exclude_epochs`` (default the fixation period ``fix1``, which Yang leaves out) and
padding are left out, and only time points with at least 2 trials enter the average.

**Per task period** (Driscoll 2024 motifs).  The same variance per (task, epoch): trials are aligned on
the onset of that epoch in each trial (so epochs of different lengths are compared step by step from
their onset), the variance is taken across trials at each step from the onset and averaged over steps.

**Normalisation and clustering.**  Units whose variance summed over all tasks (periods) is at most
``active_threshold`` (1e-3, Yang's) are excluded as inactive and listed in the result's attributes.  The
remaining units' variances are normalised per unit by its maximum over tasks (``"max"``, Yang's default;
``"sum"`` and ``"none"`` are offered) and the units are clustered in that space (rows = units, features
= tasks) with k-means (``n_init=20``, as Yang) or agglomerative clustering (``linkage``, default Ward) for
every k in ``k_range``; the k with the highest silhouette score (Euclidean, scikit-learn) is kept.
Clusters are numbered by the task (period) they prefer — the argmax of their units' summed normalised
variance — then by size.

**Usage and overlap.**  A cluster is *used* by a task (period) when its units' mean normalised variance
there is at least ``usage_threshold`` (0.5).  Two tasks *share* a cluster when both use it;
``cluster_overlap`` is the Jaccard index of the two tasks' sets of used clusters and
``variance_similarity`` the cosine of their normalised-variance columns over the active units.  For
motifs, a task uses a motif when any of its periods does.  (The usage threshold is this package's
reading; the papers show the matrices.)

**Lesions** (Yang 2019).  Lesioning units zeroes their outgoing weights — their columns of the
recurrent matrix (every gate of a GRU/LSTM) and of the readout — in a *copy* of the model, so their
activity no longer reaches any unit nor the output.  :func:`lesion_effects` scores every task with
each cluster lesioned (``performance_change`` = lesioned − intact, Yang's figure).

>>> from neurokpflow import models, tasks
>>> from neurokpflow.analysis import task_variance as tv
>>> activity = models.record(model, task.test_grid())           # noise-free condition grid
>>> clusters = tv.cluster_units(activity)                         # (unit, task), coord "cluster"
>>> effects = tv.lesion_effects(model, task, task.sample(1024, seed=1), clusters)
>>> motifs = tv.motifs(activity)                                   # (unit, period), coord "motif"
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from ..tasks.batch import PAD_EPOCH
from ._common import json_attr
from ..errors import InputError, InputTypeError

__all__ = ["VarianceOptions", "TaskVarianceError", "task_variance", "cluster_units", "motifs", "lesion",
           "lesion_effects", "fixed_point_summary", "motif_table"]

NORMALIZATIONS = ("max", "sum", "none")
METHODS = ("kmeans", "agglomerative")


class TaskVarianceError(InputError):
    """Bad input or options for the task-variance analyses (also a ``ValueError``)."""


@dataclass(frozen=True)
class VarianceOptions:
    """Options of :func:`cluster_units` / :func:`motifs` (module docstring for the definitions).

    exclude_epochs : epoch labels whose steps are left out (default ``("fix1",)``; padding always is)
    active_threshold : units whose variance summed over tasks (periods) is ``<=`` this are inactive
    normalization : ``"max"`` (per unit, by its max over tasks; Yang), ``"sum"`` or ``"none"``
    method : ``"kmeans"`` (Yang) or ``"agglomerative"``
    linkage : linkage of the agglomerative clustering (``"ward"``, ``"average"``, ``"complete"``, ``"single"``)
    k_range : candidate numbers of clusters ``range(lo, hi)``; Yang ``(2, 30)``; capped at ``n_units - 1``
    n_clusters : a fixed number of clusters instead of the silhouette choice (Yang uses 10 for epochs)
    usage_threshold : a cluster is used by a task (period) when its units' mean normalised variance is >= this
    n_init, seed : k-means restarts and seed
    """

    exclude_epochs: tuple = ("fix1",)
    active_threshold: float = 1e-3
    normalization: str = "max"
    method: str = "kmeans"
    linkage: str = "ward"
    k_range: tuple = (2, 30)
    n_clusters: int | None = None
    usage_threshold: float = 0.5
    n_init: int = 20
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.exclude_epochs, str) or not all(isinstance(e, str) for e in self.exclude_epochs):
            raise TaskVarianceError(f"VarianceOptions.exclude_epochs must be a tuple of epoch labels, "
                                    f"got {self.exclude_epochs!r}")
        object.__setattr__(self, "exclude_epochs", tuple(self.exclude_epochs))
        if not (isinstance(self.active_threshold, (int, float)) and self.active_threshold >= 0):
            raise TaskVarianceError(f"VarianceOptions.active_threshold must be a number >= 0, "
                                    f"got {self.active_threshold!r}")
        if self.normalization not in NORMALIZATIONS:
            raise TaskVarianceError(f"VarianceOptions.normalization must be one of {NORMALIZATIONS}, "
                                    f"got {self.normalization!r}")
        if self.method not in METHODS:
            raise TaskVarianceError(f"VarianceOptions.method must be one of {METHODS}, got {self.method!r}")
        if self.linkage not in ("ward", "average", "complete", "single"):
            raise TaskVarianceError(f"VarianceOptions.linkage must be ward, average, complete or single, "
                                    f"got {self.linkage!r}")
        lo, hi = (tuple(self.k_range) + (None, None))[:2]
        if not (len(tuple(self.k_range)) == 2 and all(isinstance(v, (int, np.integer)) for v in (lo, hi))
                and 2 <= lo < hi):
            raise TaskVarianceError(f"VarianceOptions.k_range must be (lo, hi) ints with 2 <= lo < hi, "
                                    f"got {self.k_range!r}")
        if self.n_clusters is not None and not (isinstance(self.n_clusters, (int, np.integer))
                                                and self.n_clusters >= 2):
            raise TaskVarianceError(f"VarianceOptions.n_clusters must be None or an int >= 2, got {self.n_clusters!r}")
        if not 0 <= self.usage_threshold <= 1 and self.normalization != "none":
            raise TaskVarianceError(f"VarianceOptions.usage_threshold must lie in [0, 1], got {self.usage_threshold!r}")
        if not (isinstance(self.n_init, (int, np.integer)) and self.n_init >= 1):
            raise TaskVarianceError(f"VarianceOptions.n_init must be a positive int, got {self.n_init!r}")


# ---------------------------------------------------------------------------------------------- variance
def _hidden(activity) -> xr.DataArray:
    """The (trial, time, unit) activity with per-trial ``task`` and per-step ``epoch`` labels."""
    if isinstance(activity, xr.Dataset):
        if "hidden" not in activity:
            raise InputTypeError("activity must be the Dataset of neurokpflow.models.record (with 'hidden') or its "
                            "'hidden' DataArray")
        activity = activity["hidden"]
    if not isinstance(activity, xr.DataArray):
        raise InputTypeError(f"activity must be models.record(model, batch) or its 'hidden' DataArray, got "
                        f"{type(activity).__name__}")
    if set(activity.dims) != {"trial", "time", "unit"}:
        raise TaskVarianceError(f"activity must have dims (trial, time, unit), got {activity.dims}")
    for name, dims in (("task", ("trial",)), ("epoch", ("trial", "time"))):
        if name not in activity.coords or set(activity.coords[name].dims) != set(dims):
            raise TaskVarianceError(f"activity lacks the {name!r} coordinate on {dims}; record it with "
                                    "neurokpflow.models.record(model, batch) from a task batch")
    return activity.transpose("trial", "time", "unit")


def _aligned_variance(x, valid, rel):
    """Mean over aligned steps of the across-trial variance: ``x [n, T, U]``, ``valid [n, T]``,
    ``rel [n, T]`` the aligned step index.  Steps with fewer than 2 trials are left out."""
    n, T, U = x.shape
    length = int(rel[valid].max()) + 1 if valid.any() else 0
    s1 = np.zeros((length, U))
    s2 = np.zeros((length, U))
    count = np.zeros(length)
    r = rel[valid]
    v = x[valid]
    mean_shift = v.mean(0)  # shift for a numerically stable one-pass variance
    v = v - mean_shift
    np.add.at(s1, r, v)
    np.add.at(s2, r, v * v)
    np.add.at(count, r, 1)
    keep = count >= 2
    if not keep.any():
        return None
    c = count[keep, None]
    var = s2[keep] / c - (s1[keep] / c) ** 2
    return np.maximum(var, 0.0).mean(0)


def task_variance(activity, *, by: str = "task", options: VarianceOptions | None = None) -> xr.DataArray:
    """Variance of every unit per task (``by="task"``) or per task period (``by="period"``).

    ``activity``: :func:`neurokpflow.models.record` of a task batch (or its ``hidden``), ideally the
    noise-free ``task.test_grid()``.  Returns a DataArray ``(unit, task)`` or ``(unit, period)``; a
    period is labelled ``"<task>:<epoch>"`` with coordinates ``task`` and ``epoch`` on ``period``, in task
    order then epoch order of appearance.  Definitions in the module docstring.
    """
    opt = options or VarianceOptions()
    if by not in ("task", "period"):
        raise TaskVarianceError(f"by must be 'task' or 'period', got {by!r}")
    h = _hidden(activity)
    x = np.asarray(h.values, dtype=np.float64)
    labels = np.asarray(h["task"].values).astype(str)
    epochs = np.asarray(h["epoch"].values).astype(str)
    usable = (epochs != PAD_EPOCH) & ~np.isin(epochs, opt.exclude_epochs) & np.isfinite(x).all(-1)
    columns: list[np.ndarray] = []
    names: list[str] = []
    tasks_of: list[str] = []
    epochs_of: list[str | None] = []
    T = x.shape[1]
    for task in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == task)
        if by == "task":
            groups = [(None, usable[rows], np.broadcast_to(np.arange(T), (len(rows), T)))]
        else:
            groups = []
            for epoch in dict.fromkeys(epochs[rows][usable[rows]].tolist()):
                inside = (epochs[rows] == epoch) & usable[rows]
                onset = np.where(inside.any(1), inside.argmax(1), 0)
                groups.append((epoch, inside, np.arange(T)[None, :] - onset[:, None]))
        for epoch, valid, rel in groups:
            var = _aligned_variance(x[rows], valid, rel)
            where = f"task {task!r}" + ("" if epoch is None else f", epoch {epoch!r}")
            if var is None:
                raise TaskVarianceError(f"{where} has no time step with 2 or more trials outside "
                                        f"{('pad',) + opt.exclude_epochs}; give it more trials (task.test_grid())")
            columns.append(var)
            names.append(task if epoch is None else f"{task}:{epoch}")
            tasks_of.append(task)
            epochs_of.append(epoch)
    if not columns:
        raise TaskVarianceError("activity holds no time step outside the excluded epochs "
                                f"{('pad',) + opt.exclude_epochs}")
    dim = "task" if by == "task" else "period"
    coords = {"unit": h["unit"].values, dim: names}
    if by == "period":
        coords.update(task=("period", tasks_of), epoch=("period", epochs_of))
    return xr.DataArray(np.stack(columns, axis=1), dims=("unit", dim), coords=coords, name="variance",
                        attrs={"long_name": "variance across trials at each aligned step, averaged over steps",
                               "aligned_on": "trial start" if by == "task" else "epoch onset",
                               "exclude_epochs": json_attr(list(opt.exclude_epochs))})


# ---------------------------------------------------------------------------------------------- clustering
def _normalize(var, how):
    if how == "max":
        return var / var.max(1, keepdims=True)
    if how == "sum":
        return var / var.sum(1, keepdims=True)
    return var


def _fit(X, k, opt):
    from sklearn.cluster import AgglomerativeClustering, KMeans

    if opt.method == "kmeans":
        model = KMeans(n_clusters=k, n_init=opt.n_init, random_state=opt.seed)
    else:
        model = AgglomerativeClustering(n_clusters=k, linkage=opt.linkage)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means warns when X has fewer distinct points than k
        return model.fit_predict(X)


def _silhouette(X, labels):
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    if n_labels < 2 or n_labels >= len(X):
        return np.nan
    return float(silhouette_score(X, labels, metric="euclidean"))


def _cluster(var: xr.DataArray, opt: VarianceOptions, label: str) -> xr.Dataset:
    """Active units, normalisation, clustering and usage of ``var (unit, feature)``."""
    feature = var.dims[1]
    values = np.asarray(var.values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise TaskVarianceError("the variance holds NaN or inf; record the activity without NaN outside padding")
    total = values.sum(1)
    active = total > opt.active_threshold
    n_active = int(active.sum())
    if n_active < 3:
        raise TaskVarianceError(f"only {n_active} unit(s) have total variance > {opt.active_threshold:g}; "
                                "lower VarianceOptions.active_threshold or record more varied trials")
    X = _normalize(values[active], opt.normalization)
    if opt.n_clusters is not None:
        if opt.n_clusters >= n_active:
            raise TaskVarianceError(f"VarianceOptions.n_clusters={opt.n_clusters} needs more than that many "
                                    f"active units, got {n_active}")
        ks = [int(opt.n_clusters)]
    else:
        ks = list(range(opt.k_range[0], min(opt.k_range[1], n_active)))
        if not ks:
            raise TaskVarianceError(f"no k in k_range={opt.k_range} below the {n_active} active units")
    fits = [_fit(X, k, opt) for k in ks]
    scores = np.array([_silhouette(X, f) for f in fits])
    if np.all(np.isnan(scores)):
        raise TaskVarianceError("the active units' normalised variances are (nearly) identical; no clustering "
                                "gives a silhouette score (record more varied trials)")
    best = int(np.nanargmax(scores)) if opt.n_clusters is None else 0
    raw = fits[best]
    # renumber: by preferred feature (argmax of summed normalised variance), then larger first
    keys = []
    for c in np.unique(raw):
        members = raw == c
        keys.append((int(np.argmax(X[members].sum(0))), -int(members.sum()), int(c)))
    order = [k[2] for k in sorted(keys)]
    labels = np.empty_like(raw)
    for new, old in enumerate(order):
        labels[raw == old] = new
    k = len(order)
    usage = np.stack([X[labels == c].mean(0) for c in range(k)])
    ids = np.arange(k)
    ds = xr.Dataset(
        {"normalized_variance": (("unit", feature), X, {"normalization": opt.normalization}),
         "variance": (("unit", feature), values[active], var.attrs),
         f"{label}_usage": ((f"{label}_id", feature), usage,
                            {"long_name": f"mean normalised variance of the {label}'s units"}),
         f"uses_{label}": ((f"{label}_id", feature), usage >= opt.usage_threshold,
                           {"long_name": f"{label} used: its units' mean normalised variance >= "
                                         f"{opt.usage_threshold:g}"}),
         f"{label}_size": ((f"{label}_id",), np.bincount(labels, minlength=k)),
         "silhouette": (("k",), scores, {"long_name": "silhouette score (Euclidean) of the k-cluster solution"})},
        coords={"unit": var["unit"].values[active], label: ("unit", labels), f"{label}_id": ids,
                feature: var[feature].values, "k": ks,
                **{name: c for name, c in var.coords.items() if c.dims == (feature,) and name != feature}})
    ds.attrs.update(n_clusters=int(k), active_threshold=float(opt.active_threshold),
                    normalization=opt.normalization, usage_threshold=float(opt.usage_threshold),
                    method=(f"k-means (n_init={opt.n_init}, seed={opt.seed})" if opt.method == "kmeans"
                            else f"agglomerative ({opt.linkage} linkage)")
                    + (", k by maximum silhouette" if opt.n_clusters is None else ", k fixed"),
                    n_units_total=int(len(values)),
                    excluded_units=json_attr([int(u) for u in var["unit"].values[~active]]),
                    exclude_epochs=json_attr(list(opt.exclude_epochs)))
    return ds


def _variance_input(activity_or_variance, by, opt):
    if isinstance(activity_or_variance, xr.DataArray) and activity_or_variance.dims == ("unit", by):
        return activity_or_variance
    return task_variance(activity_or_variance, by=by, options=opt)


def _jaccard(used):
    """Jaccard index between the columns of a boolean ``[cluster, item]`` matrix (NaN when both empty)."""
    u = used.astype(float)
    inter = u.T @ u
    union = u.sum(0)[:, None] + u.sum(0)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1), np.nan)


def _cosine_columns(X):
    norm = np.linalg.norm(X, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (X.T @ X) / np.outer(norm, norm)


def cluster_units(activity, options: VarianceOptions | None = None) -> xr.Dataset:
    """Yang 2019 task-variance clusters of the units (module docstring).

    ``activity``: :func:`neurokpflow.models.record` of a task batch (its ``hidden``), or a variance
    ``(unit, task)`` from :func:`task_variance`.  Returns an ``xarray.Dataset`` over the active units:
    ``normalized_variance`` and ``variance`` (unit, task), the coordinate ``cluster`` (unit),
    ``cluster_usage`` / ``uses_cluster`` (cluster_id, task), ``cluster_size`` (cluster_id),
    ``silhouette`` (k), ``cluster_overlap`` and ``variance_similarity`` (task_i, task_j); attributes
    ``n_clusters``, ``method``, ``excluded_units`` (the inactive units, a JSON list), thresholds.  The
    Dataset round-trips through netCDF.
    """
    opt = options or VarianceOptions()
    ds = _cluster(_variance_input(activity, "task", opt), opt, "cluster")
    names = ds["task"].values
    pair = {"task_i": names, "task_j": names}
    ds["cluster_overlap"] = xr.DataArray(_jaccard(ds["uses_cluster"].values), dims=("task_i", "task_j"), coords=pair,
                                         attrs={"long_name": "Jaccard index of the sets of clusters the tasks use"})
    ds["variance_similarity"] = xr.DataArray(
        _cosine_columns(ds["normalized_variance"].values), dims=("task_i", "task_j"), coords=pair,
        attrs={"long_name": "cosine of the tasks' normalised-variance columns over the active units"})
    return ds


def motifs(activity, options: VarianceOptions | None = None) -> xr.Dataset:
    """Driscoll 2024 dynamical motifs: units clustered by their normalised variance per task period.

    ``activity`` as for :func:`cluster_units` (or a variance ``(unit, period)``).  Returns an
    ``xarray.Dataset``: ``normalized_variance`` / ``variance`` (unit, period) with period coordinates
    ``task`` and ``epoch``, the coordinate ``motif`` (unit), ``motif_usage`` / ``uses_motif``
    (motif_id, period), ``motif_size``, ``silhouette`` (k), ``shared_motifs`` (period, period_other):
    the number of motifs both periods use, ``period_motif_overlap`` (their Jaccard index), and per
    task (a task uses a motif when any of its periods does) ``task_uses_motif`` (motif_id, task_name)
    and ``motif_overlap`` (task_i, task_j).
    """
    opt = options or VarianceOptions()
    ds = _cluster(_variance_input(activity, "period", opt), opt, "motif")
    used = ds["uses_motif"].values
    periods = ds["period"].values
    ds["shared_motifs"] = xr.DataArray((used.astype(int).T @ used.astype(int)), dims=("period", "period_other"),
                                       coords={"period_other": periods},
                                       attrs={"long_name": "number of motifs both task periods use"})
    ds["period_motif_overlap"] = xr.DataArray(_jaccard(used), dims=("period", "period_other"),
                                              coords={"period_other": periods},
                                              attrs={"long_name": "Jaccard index of the periods' motif sets"})
    task_of = ds["task"].values
    names = list(dict.fromkeys(task_of.tolist()))
    by_task = np.stack([used[:, task_of == t].any(1) for t in names], axis=1)
    ds["task_uses_motif"] = xr.DataArray(by_task, dims=("motif_id", "task_name"), coords={"task_name": names},
                                         attrs={"long_name": "motif used in any period of the task"})
    ds["motif_overlap"] = xr.DataArray(_jaccard(by_task), dims=("task_i", "task_j"),
                                       coords={"task_i": names, "task_j": names},
                                       attrs={"long_name": "Jaccard index of the sets of motifs the tasks use"})
    return ds


# ---------------------------------------------------------------------------------------------- lesions
def lesion(model, units):
    """A copy of ``model`` whose ``units`` (hidden-unit indices) send nothing: their columns of the
    recurrent weights (all gates) and of the readout are zero.  ``model`` is not modified."""
    cell = getattr(model, "cell", None)
    if cell is None or not hasattr(cell, "weight_hh") or getattr(model, "readout", None) is None:
        raise InputTypeError("lesion needs a neurokpflow model (models.make) with .cell.weight_hh and .readout, got "
                        f"{type(model).__name__}")
    idx = np.asarray(units)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TaskVarianceError(f"units must be a 1-D sequence of int unit indices, got {units!r}")
    H = cell.hidden_size
    if idx.size and (idx.min() < 0 or idx.max() >= H):
        raise TaskVarianceError(f"units must lie in [0, {H}) (the model's hidden units), got "
                                f"{idx[(idx < 0) | (idx >= H)].tolist()}")
    out = copy.deepcopy(model)
    cols = torch.as_tensor(idx, dtype=torch.long)
    with torch.no_grad():
        out.cell.weight_hh[:, cols] = 0
        out.readout.weight[:, cols] = 0
    return out


def _groups(clusters):
    if isinstance(clusters, xr.Dataset):
        label = "cluster" if "cluster" in clusters.coords else "motif" if "motif" in clusters.coords else None
        if label is None:
            raise InputTypeError("clusters must be the Dataset of cluster_units / motifs or a mapping {name: units}")
        units, labels = clusters["unit"].values, clusters[label].values
        return {f"{label} {c}": units[labels == c] for c in np.unique(labels)}
    if isinstance(clusters, dict):
        return {str(k): np.asarray(v) for k, v in clusters.items()}
    raise InputTypeError("clusters must be the Dataset of cluster_units / motifs or a mapping {name: units}")


def lesion_effects(model, task, batch, clusters) -> xr.Dataset:
    """Every task's performance with each cluster lesioned (:func:`lesion`), beside the intact model.

    ``task``: the task (mix) whose ``accuracy`` scores ``batch`` (e.g. ``task.sample(...)``, Yang used
    random trials); ``clusters``: the result of :func:`cluster_units` / :func:`motifs` or a mapping
    ``{name: unit indices}``.  Returns an ``xarray.Dataset`` with ``performance`` (lesion, task),
    ``performance_change`` (lesioned − intact), ``loss`` and ``loss_change`` (masked MSE per task, the
    training loss) and ``n_units`` (lesion); lesion ``"intact"`` comes first.  ``model`` is not modified.
    """
    from ..training.loss import masked_mse

    groups = {"intact": np.zeros(0, dtype=np.int64), **_groups(clusters)}
    names = list(dict.fromkeys(np.asarray(batch.meta["task"]).tolist()))
    perf = np.zeros((len(groups), len(names)))
    loss = np.zeros_like(perf)
    p = next(model.parameters())
    inputs = batch.inputs.to(p.device)
    rows = {t: np.flatnonzero(np.asarray(batch.meta["task"]) == t) for t in names}
    for g, units in enumerate(groups.values()):
        lesioned = lesion(model, units)
        lesioned.eval()
        with torch.no_grad():
            outputs, _ = lesioned(inputs, full_state=False)
        acc = task.accuracy(outputs, batch)
        for j, t in enumerate(names):
            perf[g, j] = acc[t]
            r = torch.as_tensor(rows[t])
            loss[g, j] = float(masked_mse(outputs[r].cpu(), batch.targets[r], batch.mask[r]))
    coords = {"lesion": list(groups), "task": names}
    return xr.Dataset(
        {"performance": (("lesion", "task"), perf, {"long_name": "fraction of correct trials (task criterion)"}),
         "performance_change": (("lesion", "task"), perf - perf[:1], {"long_name": "lesioned - intact"}),
         "loss": (("lesion", "task"), loss, {"long_name": "masked MSE (pre_square) on the task's trials"}),
         "loss_change": (("lesion", "task"), loss - loss[:1]),
         "n_units": (("lesion",), np.array([len(u) for u in groups.values()]))},
        coords=coords, attrs={"lesion": "outgoing recurrent and readout weights of the units set to zero"})


# ---------------------------------------------------------------------------------------------- KPFlow link
def fixed_point_summary(model, inputs_by_task: dict, states, options=None) -> xr.Dataset:
    """Fixed-point structure per task: :func:`~neurokpflow.analysis.fixed_points.find_fixed_points` for
    each task's constant input ``inputs_by_task[task]`` (e.g. the rule and fixation inputs of its delay
    period), from the same initial states.  Returns ``n_points`` (task, stability) counts and
    ``n_fixed_points`` (task); ``stability`` is stable, marginal, saddle, unstable."""
    from .fixed_points import find_fixed_points

    if not isinstance(inputs_by_task, dict) or not inputs_by_task:
        raise InputTypeError("inputs_by_task must be a non-empty mapping {task name: constant input}")
    kinds = ["stable", "marginal", "saddle", "unstable"]
    per_task = []
    for task, u in inputs_by_task.items():
        pts = find_fixed_points(model, u, states, options)
        labels = pts["stability"].values
        per_task.append([int((labels == k).sum()) for k in kinds])
    counts = np.asarray(per_task, dtype=np.int64).reshape(len(inputs_by_task), len(kinds))
    names = [str(t) for t in inputs_by_task]
    return xr.Dataset({"n_points": (("task", "stability"), counts), "n_fixed_points": (("task",), counts.sum(1))},
                      coords={"task": names, "stability": kinds})


def motif_table(alignment: xr.Dataset, clusters: xr.Dataset, fixed_points: xr.Dataset | None = None):
    """One table (pandas DataFrame, one row per ordered task pair i ≠ j) putting side by side the
    sub-task interference of :func:`~neurokpflow.analysis.subtask_alignment` (one model: ``alignment``,
    ``gradient_alignment``, ``loss_change``), the cluster or motif overlap of :func:`cluster_units` /
    :func:`motifs` (``cluster_overlap`` or ``motif_overlap``, and ``variance_similarity`` when present)
    and, when given, the fixed-point counts of :func:`fixed_point_summary` of both tasks
    (``stable_i``, ``saddle_i``, ..., ``stable_j``, ...).  Tasks are matched by name; tasks missing from
    one of the inputs are an error."""
    import pandas as pd

    if not isinstance(alignment, xr.Dataset) or "alignment" not in alignment or "step" in alignment["alignment"].dims:
        raise InputTypeError("alignment must be the Dataset of analysis.subtask_alignment for one model (no step dim)")
    overlap_name = "cluster_overlap" if "cluster_overlap" in clusters else "motif_overlap"
    if overlap_name not in clusters:
        raise InputTypeError("clusters must be the Dataset of cluster_units or motifs")
    names = [str(t) for t in alignment["task_i"].values]
    have = set(clusters[overlap_name]["task_i"].values.tolist())
    missing = [t for t in names if t not in have]
    if missing:
        raise TaskVarianceError(f"tasks {missing} of the alignment are absent from the clusters (they hold "
                                f"{sorted(have)}); analyse the same tasks")
    rows = []
    for i in names:
        for j in names:
            if i == j:
                continue
            row: dict[str, str | float] = {"task_i": i, "task_j": j}
            for var in ("alignment", "gradient_alignment", "loss_change"):
                row[var] = float(alignment[var].sel(task_i=i, task_j=j))
            row[overlap_name] = float(clusters[overlap_name].sel(task_i=i, task_j=j))
            if "variance_similarity" in clusters:
                row["variance_similarity"] = float(clusters["variance_similarity"].sel(task_i=i, task_j=j))
            if fixed_points is not None:
                for side, t in (("i", i), ("j", j)):
                    if t not in fixed_points["task"].values:
                        raise TaskVarianceError(f"task {t!r} is absent from fixed_points")
                    for k in fixed_points["stability"].values:
                        row[f"{k}_{side}"] = int(fixed_points["n_points"].sel(task=t, stability=k))
            rows.append(row)
    return pd.DataFrame(rows)
