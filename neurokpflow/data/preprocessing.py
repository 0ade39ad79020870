"""Preprocessing of trial-aligned xarray data: every function takes and returns xarray, keeps the
coordinates it does not consume, never mutates its input, and appends a line to ``attrs["history"]``.

Layout assumed: dims ``("trial", "time", <feature>)`` with ``time`` in seconds (bin centres) and
per-trial coordinates such as ``condition`` or ``target``; functions take the dim names as
arguments where another layout makes sense.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy.ndimage import gaussian_filter1d
from ..errors import InputError, InputTypeError
from .._validation import numpy_rng


def _with_history(obj, line: str, **attrs):
    obj.attrs = {**obj.attrs, **attrs}
    previous = obj.attrs.get("history", "")
    obj.attrs["history"] = f"{previous}\n{line}" if previous else line
    return obj


def _require_dim(obj, dim: str, arg: str = "dim") -> None:
    if dim not in obj.dims:
        raise InputError(f"{arg}={dim!r} is not a dimension of the input; its dims are {tuple(obj.dims)}")


def _regular_step(obj, dim: str) -> float:
    coord = obj[dim].values.astype(float)
    if coord.size < 2:
        raise InputError(f"coordinate {dim!r} needs at least two values to define a step")
    steps = np.diff(coord)
    if not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
        raise InputError(f"coordinate {dim!r} is not regularly spaced; resample it onto a regular grid first")
    return float(steps[0])


def smooth(da, sigma: float, dim: str = "time", truncate: float = 4.0):
    """Gaussian smoothing along ``dim``.

    Parameters
    ----------
    da : DataArray or Dataset
    sigma : float
        Standard deviation of the kernel in the units of the ``dim`` coordinate (seconds for ``time``).
    truncate : float
        Kernel half-width in standard deviations.

    NaN-aware normalised convolution: ``smooth(x) = (g * x0) / (g * m)`` with ``m`` the finite mask
    and ``x0`` the data with NaN replaced by 0, so NaN padding neither spreads nor pulls values
    towards zero, and the kernel is renormalised at the edges; bins that were NaN stay NaN.  The
    kernel sums to 1, so smoothing preserves the mean of a constant signal.  Integer inputs become
    float.  Attrs record ``smoothing_kernel`` and ``smoothing_sd_s``.
    """
    _require_dim(da, dim)
    if not np.isfinite(sigma) or sigma <= 0:
        raise InputError(f"sigma={sigma!r} must be a positive number of {dim} units")
    sigma_bins = sigma / _regular_step(da, dim)

    def kernel(x):
        x = np.asarray(x, dtype=float)
        finite = np.isfinite(x)
        num = gaussian_filter1d(np.where(finite, x, 0.0), sigma_bins, axis=-1, mode="constant", truncate=truncate)
        den = gaussian_filter1d(finite.astype(float), sigma_bins, axis=-1, mode="constant", truncate=truncate)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(finite, num / den, np.nan)

    def apply(var):
        if var.dtype.kind not in "biuf" or dim not in var.dims:
            return var
        return xr.apply_ufunc(
            kernel, var, input_core_dims=[[dim]], output_core_dims=[[dim]], dask="parallelized",
            output_dtypes=[float], keep_attrs=True,
        ).transpose(*var.dims)

    if isinstance(da, xr.Dataset):
        out = da.map(lambda v: apply(v) if v.name not in ("valid", "observed") else v, keep_attrs=True)
    else:
        out = apply(da)
    return _with_history(
        out, f"gaussian smoothing along {dim}: sd {sigma:g}, truncated at {truncate:g} sd, NaN-aware",
        smoothing_kernel="gaussian", smoothing_sd_s=float(sigma),
    )


def counts_to_rates(counts: xr.DataArray, bin_size: float | None = None, dim: str = "time") -> xr.DataArray:
    """Firing rate in Hz: ``counts / bin_size`` (``bin_size`` from ``attrs`` or the ``dim`` spacing)."""
    _require_dim(counts, dim)
    if bin_size is None:
        bin_size = float(counts.attrs.get("bin_size") or _regular_step(counts, dim))
    if not np.isfinite(bin_size) or bin_size <= 0:
        raise InputError(f"bin_size={bin_size!r} must be a positive number of seconds")
    rates = (counts / bin_size).rename("firing_rate")
    rates.attrs = {k: v for k, v in counts.attrs.items() if k not in ("units", "long_name", "cell_methods")}
    rates.attrs.update(units="Hz", long_name="firing rate", bin_size=float(bin_size))
    return _with_history(rates, f"rates: counts / {bin_size:g} s")


def soft_normalize(da: xr.DataArray, softening: float = 5.0, feature_dim: str = "unit") -> xr.DataArray:
    """Soft normalisation per feature: ``x / (range(x) + softening)``.

    ``range`` is max − min of each feature over all other dims (NaN ignored), so strongly
    modulated units end up with a range near 1 and weak ones are not blown up (Churchland et al.
    2012 use ``softening`` = 5 spikes/s on rates in Hz).  ``softening`` is in the units of ``da``.
    """
    _require_dim(da, feature_dim, "feature_dim")
    if not np.isfinite(softening) or softening < 0:
        raise InputError(f"softening={softening!r} must be a non-negative number (in the units of the data)")
    others = [d for d in da.dims if d != feature_dim]
    span = da.max(others, skipna=True) - da.min(others, skipna=True)
    out = da / (span + softening)
    out.attrs = {k: v for k, v in da.attrs.items() if k != "units"}
    out.attrs["units"] = "1"
    return _with_history(out, f"soft normalisation per {feature_dim}: x / (range + {softening:g})", softening=float(softening))


def trial_average(da, by, dim: str = "trial"):
    """Average over trials that share the value(s) of the coordinate(s) ``by`` (NaN ignored).

    Returns the input with ``dim`` replaced by ``by`` (e.g. ``(target, time, unit)``); per-trial
    coordinates other than ``by`` are dropped, all others kept.  A coordinate ``n_trials`` gives the
    number of trials in each group.  For a Dataset, variables without ``dim`` (``time_bnds``) are
    kept as they are and a bool ``valid`` mask becomes the fraction of valid trials.
    """
    _require_dim(da, dim)
    keys = [by] if isinstance(by, str) else list(by)
    for key in keys:
        if key not in da.coords or da[key].dims != (dim,):
            per_trial = [c for c in da.coords if da[c].dims == (dim,) and c != dim]
            raise InputError(f"by={key!r} is not a coordinate along {dim!r}; per-trial coordinates: {per_trial}")
    static = []
    if isinstance(da, xr.Dataset):  # variables without the trial dim are not averaged (nor broadcast)
        static = [name for name, var in da.data_vars.items() if dim not in var.dims]
    grouped = da.drop_vars(static).groupby(keys[0] if len(keys) == 1 else keys)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
        mean = grouped.mean(dim, skipna=True, keep_attrs=True)
    if static:
        mean = mean.assign({name: da[name] for name in static})
    counts = xr.ones_like(da[dim], dtype=int).groupby(keys[0] if len(keys) == 1 else keys).sum()
    mean = mean.assign_coords(n_trials=counts.reset_coords(drop=True))
    return _with_history(mean, f"trial average over {dim} grouped by {', '.join(keys)} (NaN ignored)")


def split_halves(da, seed: int = 0, by: str | None = None, dim: str = "trial"):
    """Split trials at random into two disjoint halves (for cross-validation and noise ceilings).

    With ``by`` the split is stratified: each group of trials sharing that coordinate value is
    split separately, so both halves contain every condition.  A group of ``n`` trials gives
    ``n // 2`` to the first half and the rest to the second; nothing is dropped.  Trial order is
    preserved within each half.  Returns ``(first, second)``; ``attrs`` record the seed.
    """
    _require_dim(da, dim)
    rng = numpy_rng(seed)
    n = da.sizes[dim]
    if by is None:
        groups = [np.arange(n)]
    else:
        if by not in da.coords or da[by].dims != (dim,):
            raise InputError(f"by={by!r} is not a coordinate along {dim!r}")
        labels = da[by].values
        groups = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    first: list[int] = []
    for members in groups:
        first.extend(rng.permutation(members)[: members.size // 2])
    in_first = np.zeros(n, dtype=bool)
    in_first[np.asarray(first, dtype=int)] = True
    halves = []
    for name, mask in (("first", in_first), ("second", ~in_first)):
        half = da.isel({dim: np.flatnonzero(mask)})
        stratified = f", stratified by {by}" if by else ""
        halves.append(_with_history(half, f"{name} half of a random split of {dim}s (seed {seed}{stratified})", split_seed=int(seed)))
    return tuple(halves)


def crop_epoch(da, epoch, coord: str = "epoch", dim: str = "time"):
    """Keep the part of each trial inside an epoch; bins outside become NaN, ``dim`` is cropped.

    ``epoch`` may be

    * a label of the string coordinate ``coord`` (dims ``(time,)`` or ``(trial, time)``, as in
      model recordings), e.g. ``"response"``;
    * ``(start, stop)`` numbers: times relative to the alignment, bins with centre in ``[start, stop)``;
    * ``(start_column, stop_column)`` names of per-trial coordinates holding absolute session times
      (e.g. ``("go_cue_time", "stop_time")``), made relative with the ``align_time`` coordinate.

    The result spans the smallest ``dim`` range holding every kept bin.
    """
    _require_dim(da, dim)
    t = da[dim]
    if isinstance(epoch, str):
        if coord not in da.coords:
            raise InputError(f"crop_epoch({epoch!r}) needs the coordinate {coord!r}, which the input lacks")
        labels = da[coord]
        if not (labels == epoch).any():
            raise InputError(f"epoch {epoch!r} never occurs in coordinate {coord!r}; labels: {np.unique(labels.values).tolist()}")
        keep = labels == epoch
        what = f"{coord} == {epoch!r}"
    elif isinstance(epoch, Sequence) and len(epoch) == 2 and all(isinstance(e, str) for e in epoch):
        missing = [c for c in (*epoch, "align_time") if c not in da.coords]
        if missing:
            raise InputError(f"crop_epoch({epoch!r}) needs per-trial coordinates {missing}, which the input lacks")
        lo = da[epoch[0]] - da["align_time"]
        hi = da[epoch[1]] - da["align_time"]
        keep = (t >= lo) & (t < hi)
        what = f"{epoch[0]} <= time < {epoch[1]}"
    elif isinstance(epoch, Sequence) and len(epoch) == 2:
        lo, hi = (float(e) for e in epoch)
        if not hi > lo:
            raise InputError(f"epoch={epoch!r}: need start < stop")
        keep = (t >= lo) & (t < hi)
        what = f"{lo:g} <= time < {hi:g} s"
    else:
        raise InputTypeError(f"epoch must be a label, a (start, stop) pair of times or of coordinate names; got {epoch!r}")
    any_kept = keep.any([d for d in keep.dims if d != dim]) if keep.ndim > 1 else keep
    if not bool(any_kept.any()):
        raise InputError(f"no {dim} bin satisfies {what}")
    idx = np.flatnonzero(any_kept.values)
    span = slice(idx[0], idx[-1] + 1)
    cropped = da.isel({dim: span})
    keep = keep.isel({dim: span})
    if isinstance(cropped, xr.Dataset):
        out = cropped.map(lambda v: v.where(keep) if dim in v.dims and v.name not in ("valid", "time_bnds") else v, keep_attrs=True)
        if "valid" in out:
            out["valid"] = out["valid"] & keep
    else:
        out = cropped.where(keep)
    return _with_history(out, f"cropped to epoch {what}")


def pca_project(da: xr.DataArray, n_components: int, dim: str = "unit", fit_on: xr.DataArray | None = None, return_loadings: bool = False):
    """Project ``da`` on its first principal components along ``dim``.

    Samples are all positions along the other dims (e.g. every trial × time bin); the axes are
    fitted on ``fit_on`` (default ``da`` itself; e.g. pass the trial average to project single
    trials on condition-average PCs), centred by the fitted samples' mean, from the samples with
    no NaN.  Samples with a NaN project to NaN.

    Returns the projection with ``dim`` replaced by ``component`` (0-based) and a coordinate
    ``explained_variance_ratio`` (fraction of the fitted samples' total variance), plus, with
    ``return_loadings=True``, the loadings ``(component, dim)`` (unit-norm rows) keeping ``dim``'s coordinates.
    """
    _require_dim(da, dim)
    fit = da if fit_on is None else fit_on
    _require_dim(fit, dim, "dim (in fit_on)")
    if fit.sizes[dim] != da.sizes[dim] or not np.array_equal(fit[dim].values, da[dim].values):
        raise InputError(f"fit_on and da must share the {dim!r} coordinate (same values, same order)")
    n_features = da.sizes[dim]
    if not (isinstance(n_components, (int, np.integer)) and 1 <= n_components <= n_features):
        raise InputError(f"n_components={n_components!r} must be an integer in [1, {n_features}]")
    x = fit.transpose(..., dim).values.reshape(-1, n_features).astype(float)
    x = x[np.isfinite(x).all(axis=1)]
    if x.shape[0] < 2:
        raise InputError("fewer than two samples without NaN to fit the principal components")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:n_components]
    signs = np.sign(components[np.arange(n_components), np.abs(components).argmax(axis=1)])
    components *= signs[:, None]  # deterministic sign: largest loading positive
    ratio = (s**2 / np.sum(s**2))[:n_components]
    component = np.arange(n_components)
    projection = xr.apply_ufunc(
        lambda v: (v - mean) @ components.T, da, input_core_dims=[[dim]], output_core_dims=[["component"]],
        keep_attrs=True,
    )
    projection = projection.assign_coords(component=component, explained_variance_ratio=("component", ratio))
    projection.attrs.pop("units", None)
    projection = _with_history(projection, f"PCA projection on {n_components} components along {dim}")
    if not return_loadings:
        return projection
    dim_coords = {k: v for k, v in da.coords.items() if v.dims == (dim,)}
    loadings = xr.DataArray(components, dims=("component", dim), coords={"component": component, **dim_coords})
    return projection, loadings.assign_coords(explained_variance_ratio=("component", ratio))
