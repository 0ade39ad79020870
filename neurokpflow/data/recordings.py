"""A trial-aligned, condition-labelled recording from an NWB file, ready for :mod:`neurokpflow.compare`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .describe import describe_nwb
from .errors import MissingDataError as _Unusable
from .preprocessing import smooth
from .reading import read_nwb
from .sources import is_remote

__all__ = ["load_recording"]


def _neural_variable(summary):
    """``(read_nwb options, variable name)`` for the neural data of a file: its Units table, or else
    its widest 2-D TimeSeries (e.g. binned counts stored as a series)."""
    if summary.units is not None:
        return {"units": True}, "spike_count"
    series = [s for s in summary.series if len(s.shape) == 2]
    if not series:
        raise _Unusable(f"{summary.source} has neither a Units table nor a 2-D time series to compare with")
    widest = max(series, key=lambda s: s.shape[1])
    name = widest.path.rsplit("/", 1)[-1]
    return {"units": False, "series": {name: "unit"}}, name


class _Located(str):
    """A URL that answers ``.name`` like a path (its last segment), for messages."""

    @property
    def name(self):
        return self.rstrip("/").rsplit("/", 1)[-1]


def load_recording(path, *, condition="condition", align_to="start_time", window=None, bin_size=0.05,
                   smooth_sigma=0.05, min_trials_per_condition=2) -> xr.DataArray:
    """Trial-aligned neural activity of an NWB file (a path or an http(s)/s3 URL), ready for
    :func:`neurokpflow.compare.compare`.

    Returns a DataArray (trial, time, unit) with a per-trial ``condition`` coordinate (copied from
    the trials column ``condition``), restricted to the time bins every trial covers and smoothed in
    time with a Gaussian of SD ``smooth_sigma`` seconds (``None``: not smoothed).  Raises
    :class:`CLIError` (exit code 4) when the file has no trials table, no such column, a single
    condition, or fewer than ``min_trials_per_condition`` trials in some condition.
    """

    path = _Located(path) if is_remote(path) else Path(path)
    summary = describe_nwb(path)
    trials = [t for t in summary.intervals if t.path.rstrip("/").endswith("trials")]
    if not trials:
        tables = [t.path for t in summary.intervals] or "none"
        raise _Unusable(f"{path.name} has no trials table, so it has no conditions to compare with (interval tables: "
                       f"{tables})")
    columns = [c for c in trials[0].columns if c not in ("start_time", "stop_time")]
    if condition not in columns:
        raise _Unusable(f"{path.name} has no trials column {condition!r}; its trial columns are {columns}; name the "
                       f"one that labels conditions with --condition COLUMN")
    options, variable = _neural_variable(summary)
    ds = read_nwb(path, align_to=align_to, window=None if window is None else tuple(window), bin_size=bin_size,
                  **options)
    activity = ds[variable]
    covered = ds["valid"].all("trial").values
    if not covered.any():
        raise _Unusable(f"no time bin of {path.name} lies inside every trial; choose a shorter --window")
    first, last = np.flatnonzero(covered)[[0, -1]]
    activity = activity.isel(time=slice(first, last + 1))
    labels = ds[condition].values
    if condition != "condition":
        activity = activity.drop_vars("condition", errors="ignore")
    activity = activity.assign_coords(condition=("trial", labels))
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise _Unusable(f"column {condition!r} of {path.name} holds a single condition ({values.tolist()}); a "
                       "comparison needs several")
    if counts.min() < min_trials_per_condition:
        raise _Unusable(f"condition {values[counts.argmin()]!r} of {path.name} has {counts.min()} trial(s); every "
                       f"condition needs at least {min_trials_per_condition}")
    if smooth_sigma:
        activity = smooth(activity, smooth_sigma)
    activity.attrs.update(source=str(path), variable=variable, condition_column=condition,
                          bin_size=float(ds.attrs.get("bin_size", bin_size)), alignment=str(align_to))
    return activity.rename("activity")
