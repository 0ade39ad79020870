"""pynapple interop (optional extra ``neurokpflow[pynapple]``): :func:`to_pynapple`, :func:`from_pynapple`.

Conventions
-----------
* **Trial-aligned data → pynapple.**  A ``(trial, time, ...)`` DataArray becomes ONE pynapple
  object on the session clock: samples at ``align_time + time`` (bin centres, as pynapple's
  ``count`` places them), a ``Tsd`` for ``(trial, time)``, a ``TsdFrame`` for
  ``(trial, time, unit)`` (columns = unit ids, ``unit_*`` coordinates as column metadata) and a
  ``TsdTensor`` beyond.  Its ``time_support`` is an ``IntervalSet`` with one interval per trial
  (from the first to the last valid bin's edges), sorted by time, whose metadata holds
  ``trial`` (the id), ``align_time`` and every other per-trial coordinate.  Invalid bins before
  the first / after the last valid bin of a trial are not exported (NaN inside a trial is).
  Trials whose windows overlap cannot share one pynapple object (it would merge them): pass
  ``per_trial=True`` for a dict ``{trial id: object}``.
* **pynapple → xarray.**  ``TsGroup`` spike trains are binned with the package's exact
  half-open rule (:func:`~neurokpflow.data.bin_spike_times`): each interval of ``ep``
  (default the group's ``time_support``) is a trial aligned at its ``align_time`` metadata if
  present, else at its start; bins not entirely inside the interval are NaN (``valid``
  False).  ``Tsd`` / ``TsdFrame`` / ``TsdTensor`` whose ``time_support`` carries ``align_time``
  (as :func:`to_pynapple` writes it) come back as ``(trial, time, ...)``; other series come back
  continuous, ``(time, ...)`` on the session clock.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from .binning import TimeGrid, bin_spike_times, check_spike_times
from .errors import NWBLoadError
from ..errors import InputTypeError, require_extra

_TOL = 1e-9


class PynappleConversionError(NWBLoadError, ValueError):
    """An object cannot be converted to or from pynapple as asked."""


def _pynapple():
    pynapple = require_extra("pynapple", "pynapple interop", "pynapple")
    return pynapple


def _pick(obj, var):
    if isinstance(obj, xr.Dataset):
        if var is None:
            var = "spike_count" if "spike_count" in obj.data_vars else None
            candidates = [v for v in obj.data_vars if "time" in obj[v].dims and v not in ("valid", "observed", "time_bnds")]
            if var is None and len(candidates) == 1:
                var = candidates[0]
        if var not in obj.data_vars:
            raise PynappleConversionError(f"name the variable to convert with var=...; variables: {list(obj.data_vars)}")
        return obj[var]
    if not isinstance(obj, xr.DataArray):
        raise InputTypeError(f"to_pynapple takes an xarray Dataset or DataArray, got {type(obj).__name__}")
    return obj


def _bin_size(da) -> float:
    if "bin_size" in da.attrs:
        return float(da.attrs["bin_size"])
    t = da["time"].values
    if t.size < 2:
        raise PynappleConversionError("a single time bin without attrs['bin_size']; set da.attrs['bin_size']")
    return float(np.median(np.diff(t)))


def _make(nap, t, values, support, columns, column_meta):
    if values.ndim == 1:
        return nap.Tsd(t=t, d=values, time_support=support)
    if values.ndim == 2:
        return nap.TsdFrame(t=t, d=values, time_support=support, columns=columns, metadata=column_meta or None)
    return nap.TsdTensor(t=t, d=values, time_support=support)


def to_pynapple(obj, *, var: str | None = None, per_trial: bool = False):
    """Convert neurokpflow xarray data to pynapple (see the module docstring).

    ``obj``: a Dataset (``var`` names the variable, default ``spike_count``; its ``valid`` mask
    decides which bins are exported) or a DataArray (bins with any finite value are valid).
    Returns a ``Tsd`` / ``TsdFrame`` / ``TsdTensor``, or with ``per_trial=True`` a dict
    ``{trial id: object}`` (each with its own one-interval time support).
    """
    nap = _pynapple()
    da = _pick(obj, var)
    if "time" not in da.dims or da.dims.index("time") != (1 if "trial" in da.dims else 0):
        raise PynappleConversionError(f"dims {da.dims}: need ('trial', 'time', ...) or ('time', ...); transpose first")
    bs = _bin_size(da)
    feature_dims = [d for d in da.dims if d not in ("trial", "time")]
    columns = da[feature_dims[0]].values if len(feature_dims) == 1 and feature_dims[0] in da.coords else None
    column_meta = {}
    if len(feature_dims) == 1:
        column_meta = {c: np.asarray(da[c].values) for c in da.coords if da[c].dims == (feature_dims[0],) and c != feature_dims[0]}
    times = da["time"].values.astype(float)
    if "trial" not in da.dims:
        offset = float(da["align_time"]) if "align_time" in da.coords and da["align_time"].ndim == 0 else 0.0
        t = offset + times
        support = nap.IntervalSet(start=t[0] - bs / 2, end=t[-1] + bs / 2)
        return _make(nap, t, np.asarray(da.values), support, columns, column_meta)
    if "align_time" not in da.coords:
        raise PynappleConversionError("trial-aligned data need the per-trial coordinate 'align_time' (absolute "
                                      "session time of each trial's event), as read_nwb gives; assign_coords(align_time=...)")
    values = np.asarray(da.values)
    if isinstance(obj, xr.Dataset) and "valid" in obj:
        valid = np.asarray(obj["valid"].transpose("trial", "time").values)
    else:
        valid = np.isfinite(values.reshape(values.shape[:2] + (-1,))).any(axis=2)
    align = da["align_time"].values.astype(float)
    has_data = valid.any(axis=1) & np.isfinite(align)
    first = np.argmax(valid, axis=1)
    last = valid.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    trials = np.flatnonzero(has_data)
    trials = trials[np.argsort(align[trials] + times[first[trials]], kind="stable")]
    start = align[trials] + times[first[trials]] - bs / 2
    end = align[trials] + times[last[trials]] + bs / 2
    meta = {"trial": da["trial"].values[trials], "align_time": align[trials],
            "window_start": np.full(trials.size, times[0] - bs / 2), "window_stop": np.full(trials.size, times[-1] + bs / 2),
            "bin_size": np.full(trials.size, bs)}
    meta.update({c: np.asarray(da[c].values)[trials] for c in da.coords
                 if da[c].dims == ("trial",) and c not in ("trial", "align_time")})
    pieces = [(align[i] + times[first[i]: last[i] + 1], values[i, first[i]: last[i] + 1]) for i in trials]
    if per_trial:
        out = {}
        for k, (i, (t, v)) in enumerate(zip(trials, pieces)):
            support = nap.IntervalSet(start=start[k], end=end[k], metadata={key: [val[k]] for key, val in meta.items()})
            out[da["trial"].values[i].item()] = _make(nap, t, v, support, columns, column_meta)
        return out
    overlap = np.flatnonzero(start[1:] < end[:-1] - _TOL * bs)
    if overlap.size:
        k = overlap[0]
        raise PynappleConversionError(
            f"trials {meta['trial'][k]} and {meta['trial'][k + 1]} overlap in time, and a pynapple object would merge "
            "them; pass per_trial=True for a dict of trials, or select non-overlapping trials")
    support = nap.IntervalSet(start=start, end=end, metadata=meta)
    t = np.concatenate([p[0] for p in pieces]) if pieces else np.empty(0)
    v = np.concatenate([p[1] for p in pieces]) if pieces else np.empty((0,) + values.shape[2:])
    return _make(nap, t, v, support, columns, column_meta)


def _interval_table(ep):
    starts, ends = np.asarray(ep.start, float), np.asarray(ep.end, float)
    meta = {c: np.asarray(ep.metadata[c].values) for c in getattr(ep, "metadata_columns", [])}
    return starts, ends, meta


def _trial_coords(starts, ends, align, meta) -> dict:
    ids = meta.pop("trial", np.arange(starts.size))
    meta.pop("align_time", None)
    coords = {"trial": ids, "start_time": ("trial", meta.pop("start_time", starts)),
              "stop_time": ("trial", meta.pop("stop_time", ends))}
    coords["align_time"] = ("trial", align, {"units": "s"})
    coords.update({k: ("trial", v) for k, v in meta.items() if k not in coords})
    return coords


def _window(starts, ends, align, bs) -> TimeGrid:
    lo, hi = np.min(starts - align) / bs, np.max(ends - align) / bs
    first = math.floor(lo + 1e-6)
    last = max(math.ceil(hi - 1e-6), first + 1)
    return TimeGrid.from_window((first * bs, last * bs), bs)


def _bin_group(nap, group, bin_size, ep) -> xr.Dataset:
    try:
        bs = float(bin_size)
    except (TypeError, ValueError):
        bs = float("nan")
    if not (math.isfinite(bs) and bs > 0):
        raise PynappleConversionError(f"bin_size={bin_size!r}: binning a TsGroup needs a positive bin_size in seconds")
    ep = group.time_support if ep is None else ep
    starts, ends, meta = _interval_table(ep)
    align = np.asarray(meta["align_time"], float) if "align_time" in meta else starts
    grid = _window(starts, ends, align, bs)
    ids = np.asarray(list(group.keys()))
    rows = [np.asarray(group[k].t, float) for k in ids]
    bounds = np.r_[0, np.cumsum([r.size for r in rows])].astype(np.int64)
    flat = np.concatenate(rows) if rows else np.empty(0)
    check_spike_times(flat, bounds, ids)
    counts = bin_spike_times(flat, bounds, grid, align).astype(np.float32)
    edges = grid.absolute_edges(align)
    tol = 1e-6 * bs
    valid = (edges[:, :-1] >= starts[:, None] - tol) & (edges[:, 1:] <= ends[:, None] + tol)
    counts[~valid] = np.nan
    coords = _trial_coords(starts, ends, align, dict(meta))
    coords["time"] = ("time", grid.centres, {"units": "s", "bounds": "time_bnds", "long_name": "time relative to the interval's alignment (bin centre)"})
    coords["unit"] = ids
    for column in group.metadata_columns:
        if column != "rate":
            name = column if column.startswith("unit_") else f"unit_{column}"
            coords[name] = ("unit", np.asarray(group.metadata[column].values))
    return xr.Dataset(
        {"spike_count": (("trial", "time", "unit"), counts, {"long_name": "binned spike count", "units": "1",
                                                           "cell_methods": "time: sum (spikes in [bin start, bin end))"}),
         "valid": (("trial", "time"), valid), "time_bnds": (("time", "nv"), grid.bounds)},
        coords=coords,
        attrs={"source": "pynapple", "bin_size": bs, "window": [grid.start, grid.stop],
               "history": f"pynapple TsGroup of {ids.size} units binned in {bs:g} s half-open bins, one trial per interval"},
    )


def _series(obj, feature_dim: str) -> xr.DataArray:
    t = np.asarray(obj.t, float)
    values = np.asarray(obj.values)
    dims = ["time"] + ([feature_dim] if values.ndim >= 2 else []) + [f"{feature_dim}_{k}" for k in range(2, values.ndim)]
    coords: dict[str, Any] = {}
    if values.ndim == 2 and hasattr(obj, "columns"):
        coords[feature_dim] = np.asarray(obj.columns)
        for column in getattr(obj, "metadata_columns", []):
            coords[column] = (feature_dim, np.asarray(obj.metadata[column].values))
    starts, ends, meta = _interval_table(obj.time_support)
    if "align_time" not in meta:
        coords["time"] = ("time", t, {"units": "s", "long_name": "session time"})
        return xr.DataArray(values, dims=dims, coords=coords,
                            attrs={"source": "pynapple", "time_support": np.c_[starts, ends].ravel().tolist()})
    align = np.asarray(meta["align_time"], float)
    which = np.searchsorted(starts, t, side="right") - 1
    rel = t - align[which]
    if "window_start" in meta:  # the full grid, as to_pynapple wrote it
        w0, w1, step = (float(meta.pop(k)[0]) for k in ("window_start", "window_stop", "bin_size"))
        centres = TimeGrid.from_window((w0, w1), step).centres
        pos = np.round((rel - w0) / step - 0.5).astype(np.int64)
    else:  # the bins present in the data
        distinct = np.unique(np.round(rel, 9))
        step = float(np.median(np.diff(distinct))) if distinct.size > 1 else 1.0
        index = np.round((rel - rel.min()) / step).astype(np.int64) if t.size else np.empty(0, np.int64)
        grid, pos = np.unique(index, return_inverse=True)
        centres = np.empty(grid.size)
        centres[pos] = rel
    out = np.full((starts.size, centres.size) + values.shape[1:], np.nan, dtype=np.result_type(values.dtype, np.float32))
    out[which, pos] = values
    coords.update(_trial_coords(starts, ends, align, dict(meta)))
    coords["time"] = ("time", centres, {"units": "s", "long_name": "time relative to align_time (bin centre)"})
    return xr.DataArray(out, dims=["trial"] + dims, coords=coords, attrs={"source": "pynapple", "bin_size": step})


def from_pynapple(obj, *, bin_size: float | None = None, ep=None, feature_dim: str = "unit"):
    """Convert a pynapple object to neurokpflow xarray data (see the module docstring).

    * ``TsGroup`` → Dataset like :func:`read_nwb`'s: ``spike_count (trial, time, unit)`` counted in
      ``[bin start, bin end)`` bins of ``bin_size`` s, ``valid``, ``time_bnds``, per-trial coordinates
      from ``ep``'s metadata, ``unit_*`` coordinates from the group's metadata.
    * ``Tsd`` / ``TsdFrame`` / ``TsdTensor`` → DataArray; ``feature_dim`` names the columns' dim.
    """
    nap = _pynapple()
    if isinstance(obj, nap.TsGroup):
        return _bin_group(nap, obj, bin_size, ep)
    if isinstance(obj, (nap.Tsd, nap.TsdFrame, nap.TsdTensor)):
        if ep is not None:
            obj = obj.restrict(ep)
        return _series(obj, feature_dim)
    raise InputTypeError(f"from_pynapple takes a TsGroup, Tsd, TsdFrame or TsdTensor, got {type(obj).__name__}")
