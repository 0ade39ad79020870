"""``read_nwb``: NWB Units and TimeSeries -> one trial-aligned ``xarray.Dataset``."""
from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import xarray as xr

from .._registry import Registry
from .._validation import OptionsMixin
from .binning import TimeGrid, _plain, bin_spike_times, bins_inside, check_spike_times, check_unit_index
from ._checks import READ_RULES, check_options
from ._lazy import Recipe, portable
from ._nwbio import provenance_attrs
from ._schema import open_or_explain as _open_checked
from .describe import (
    _bounds,
    _interval_problem,
    default_trials,
    event_tables,
    find_timeseries,
    find_units,
    id_listing,
    interval_tables,
    listing,
    resolve,
    resolve_series,
)
from .errors import BinningError, EventAlignmentError, InvalidOptionError, InvalidTrialsError, MissingDataError, MissingTrialsError, UnsupportedSeriesError
from .series import RESAMPLING, SeriesClock, series_on_grid
from .tables import table_coords
from .._logging import get_logger

log = get_logger(__name__)

#: Units columns that are data, not per-unit metadata.
_UNIT_DATA_COLUMNS = {"spike_times", "obs_intervals", "waveforms", "waveform_mean", "waveform_sd"}
_RESERVED = {"trial", "time", "unit", "nv", "valid", "observed", "spike_count", "time_bnds", "align_time"}


_GRID_FIELDS = ("align_to", "window", "bin_size", "intervals", "trial_ids", "clip_to_trial", "non_overlapping")


@dataclass(frozen=True)
class TrialGrid(OptionsMixin):
    """Which trials :func:`read_nwb` reads and the time grid it puts them on (frozen, validated once).

    Fields as in :func:`read_nwb`: ``align_to``, ``window``, ``bin_size``, ``intervals``,
    ``trial_ids``, ``clip_to_trial``, ``non_overlapping``.  One grid can serve many files::

        grid = TrialGrid(align_to="go_cue_time", window=(-0.5, 1.0), bin_size=0.02)
        a, b = read_nwb(path_a, grid), read_nwb(path_b, grid)
    """

    align_to: Any = "start_time"
    window: Any = None
    bin_size: float = 0.01
    intervals: str | None = None
    trial_ids: Any = None
    clip_to_trial: bool = True
    non_overlapping: bool = False

    RULES: ClassVar[dict] = {name: READ_RULES[name] for name in _GRID_FIELDS}

    def __post_init__(self):
        super().__post_init__()
        if self.window is not None:
            object.__setattr__(self, "window", tuple(float(v) for v in self.window))


def read_nwb(source, grid: TrialGrid | None = None, *, series=None, units="auto", unit_ids=None,
             resample: str = "mean", lazy: bool = False, units_per_chunk: int = 64, **fields) -> xr.Dataset:
    """Read spikes and/or series from an NWB file onto one trial-aligned grid.

    ``read_nwb(path)`` needs no other argument.  It bins the Units table when the file has one (anywhere
    NWB allows it); otherwise it puts every 1-D / 2-D TimeSeries on the grid (those it cannot are named
    in ``attrs["series_not_loaded"]``); with neither, each events table becomes ``<name>_count``.
    Trials come from the ``trials`` table; a file without one is read as the whole session: one trial
    on the session clock (``time`` = seconds since ``session_start_time``), ``attrs["alignment"] ==
    attrs["intervals"] == "session"``.  Every option is checked before the file is opened; a bad one
    raises :class:`InvalidOptionError` (or :class:`BinningError`) naming it.

    Parameters
    ----------
    grid : TrialGrid, optional
        The trials and time grid (``align_to``, ``window``, ``bin_size``, ``intervals``,
        ``trial_ids``, ``clip_to_trial``, ``non_overlapping``); its fields may also be passed as
        keywords (``read_nwb(path, bin_size=0.02)``), which override it.
    source : str, os.PathLike or pynwb.NWBFile
        Opened read-only; an ``NWBFile`` is used as is (handy for in-memory tests).
    align_to : str or array-like
        Column of the interval table (``"start_time"``, ``"go_cue_time"``, …), the name of an
        ``EventsTable`` (each trial aligns to its first event inside ``[start_time, stop_time]``),
        or an array of absolute alignment times, one per trial.  Trials whose alignment is NaN
        (e.g. no event) are kept, fully masked, and listed in ``attrs["trials_without_alignment"]``.
        A whole-session read accepts only the default ``"start_time"`` (the session clock).
    window : (float, float), optional
        Seconds relative to the event, ``(-0.5, 1.0)`` for 0.5 s before to 1 s after.  Must be a whole
        number of bins.  Default: the smallest grid covering every selected trial (whole session: every
        spike, sample and event, with edges at multiples of ``bin_size`` on the session clock).
    bin_size : float
        Bin width in seconds (default 10 ms).
    series : None, "all", str, sequence of str, or mapping name -> feature dim
        TimeSeries to put on the grid, by name or HDF5 path (see :func:`describe_nwb`).  A 2-D series
        gets the feature dim ``f"{name}_channel"`` unless the mapping names it (e.g.
        ``{"binned_spike_counts": "unit"}``); electrode and ROI tables give per-channel coordinates
        (ids, scalar columns, ROI centroids ``*_roi_x`` / ``*_roi_y`` in pixels).  None: no series when
        a Units table is read, else every series that fits the grid.
    units : "auto", bool or str
        Bin a ``Units`` table: ``"auto"`` when present (``/units``, else the first one found in
        ``/acquisition`` or ``/processing``), ``True`` requires one, ``False`` skips it, a name or
        path chooses it.
    intervals : None or str
        Interval table that defines the trials, by name or path (``"trials"``, ``"epochs"``,
        ``"/processing/task/blocks"``); ``"session"``: the whole session as one trial; None (default):
        ``trials`` when the file has a usable one, else the whole session.
    trial_ids, unit_ids : sequence of int, optional
        Keep only these (by NWB ``id``); the others are listed in ``attrs["excluded_trials"]`` /
        ``attrs["excluded_units"]`` with the reason.
    resample : {"mean", "sum", "linear"}
        How series are put on the grid (see :mod:`neurokpflow.data.series`); stated in each
        variable's ``attrs["resampling"]``.
    clip_to_trial : bool
        True (default): bins not entirely inside ``[start_time, stop_time]`` of their trial are invalid
        (NaN, ``valid`` False).  False: only bins outside the data (no alignment) are invalid.
    non_overlapping : bool
        Raise :class:`InvalidTrialsError` if two trial windows overlap (so no spike counts twice).
    lazy : bool
        Return dask-backed variables computed on access, with the file kept open until
        ``ds.close()`` (or the end of a ``with`` block).  Bad spike times then raise at compute time,
        and unsorted units are sorted then without being listed in ``attrs``.  The dask graph holds
        only the source and these options (see :mod:`neurokpflow.data._lazy`), so the Dataset can be
        computed under a ``dask.distributed`` Client or sent to a worker, which reopens the file by
        its path or URL (a file object or an ``NWBFile`` cannot leave this process).
    units_per_chunk : int
        Units binned per read (memory bound; one dask chunk in lazy mode; also trials per dask
        chunk of a series).

    Memory: series are read from disk only inside the trial windows; spike times are read one
    chunk of ``units_per_chunk`` whole Units rows at a time (a row is one float per spike) and
    binned before the next chunk is read.  Peak memory is the result plus one chunk.

    Returns
    -------
    xarray.Dataset
        ``spike_count`` (trial, time, unit) float32 — spikes in ``[bin start, bin end)``, NaN where
        invalid; one variable per series (trial, time[, feature]); ``valid`` (trial, time) bool;
        ``observed`` (trial, time, unit) bool when units have ``obs_intervals`` (bins outside them
        are NaN); ``time_bnds`` (time, nv).  Coordinates: ``trial`` (NWB ids) with every scalar
        column of the interval table and ``align_time``; ``time`` = bin centres in s relative to the
        event (CF ``bounds``); ``unit`` (NWB ids) with ``unit_*`` metadata.  Attrs: provenance
        (identifier, file, session start, package versions), ``bin_size``, ``window``,
        ``alignment``, ``intervals``, ``history``; ``units_with_unsorted_spike_times`` (sorted on a
        copy before binning; counts are exact), ``trials_not_used``, ``interval_tables``,
        ``series_not_loaded`` when they apply.
    """
    return _read_nwb(source, grid, fields, series=series, units=units, unit_ids=unit_ids, resample=resample,
                     lazy=lazy, units_per_chunk=units_per_chunk)


def _read_nwb(source, grid, fields, *, series, units, unit_ids, resample, lazy, units_per_chunk,
              portable_result=True) -> xr.Dataset:
    """:func:`read_nwb`; ``portable_result=False`` keeps a lazy result bound to this process's open file."""
    if isinstance(grid, Mapping) or grid is None or isinstance(grid, TrialGrid):
        grid = TrialGrid.resolve(grid, fields, "read_nwb")
    else:
        raise InvalidOptionError(f"grid={type(grid).__name__}: expected a TrialGrid, a mapping of its fields or "
                                 "None; e.g. read_nwb(path, TrialGrid(bin_size=0.02))")
    check_options(READ_RULES, series=series, units=units, unit_ids=unit_ids, resample=resample, lazy=lazy,
                  units_per_chunk=units_per_chunk)
    align_to, window, bin_size, intervals = grid.align_to, grid.window, grid.bin_size, grid.intervals
    trial_ids, clip_to_trial, non_overlapping = grid.trial_ids, grid.clip_to_trial, grid.non_overlapping
    if isinstance(units, np.bool_):
        units = bool(units)
    nwbfile, close, label = _open_checked(source)
    try:
        ds = _read(
            nwbfile, label, align_to, window, bin_size, series, units, intervals, trial_ids, unit_ids,
            resample, clip_to_trial, non_overlapping, lazy, units_per_chunk,
        )
        ds.attrs["trial_grid"] = grid.to_json()  # the options object, as provenance
    except BaseException:
        close()
        raise
    if not lazy:
        close()
        return ds
    if not portable_result:
        ds.set_close(close)
        return ds
    options = dict(align_to=align_to, window=window, bin_size=bin_size, series=series, units=units,
                   intervals=intervals, trial_ids=trial_ids, unit_ids=unit_ids, resample=resample,
                   clip_to_trial=clip_to_trial, non_overlapping=non_overlapping, units_per_chunk=units_per_chunk)
    return portable(ds, Recipe(source, options, _reopen_lazily), close)


def _reopen_lazily(source, options: dict) -> xr.Dataset:
    """Read ``source`` lazily again in this process, bound to this process's open file (for :class:`Recipe`)."""
    grid = {k: v for k, v in options.items() if k in _GRID_FIELDS}
    rest = {k: v for k, v in options.items() if k not in _GRID_FIELDS + ("lazy",)}
    return _read_nwb(source, None, grid, lazy=True, portable_result=False, **rest)


def _choose_trials(nwbfile, intervals, label: str, extra: dict):
    """``(path, table)`` of the interval table that defines the trials, or ``(None, None)`` for the whole session."""
    tables = interval_tables(nwbfile)
    if intervals == "session":
        return None, None
    if intervals is None:
        path, problem = default_trials(nwbfile)
        if path is not None:
            return path, tables[path]
        if problem:
            extra["trials_not_used"] = problem
            warnings.warn(f"{label}: the trials table is not used ({problem}); reading the whole session", stacklevel=4)
        elif tables:
            extra["interval_tables"] = listing(tables)
        return None, None
    try:
        return resolve(tables, intervals, "interval table", "/intervals/")
    except MissingDataError:
        names = sorted({t.name for t in tables.values()})
        hint = (f"align to one of them with read_nwb(path, intervals={names[0]!r}, ...) or " if names else "")
        raise MissingTrialsError(
            f"{label} has no {intervals!r} interval table. Interval tables in the file: {names or 'none'}; "
            f"{hint}read the whole session with intervals='session' (or intervals=None)"
        ) from None


def _check_intervals(name: str, ids, start, stop) -> None:
    problem = _interval_problem(name, ids, start, stop)
    if problem is not None:
        raise InvalidTrialsError(f"{problem}; fix the table, exclude them with trial_ids=..., or pass intervals='session'")


def _alignment(nwbfile, table, align_to, start, stop, keep) -> tuple[np.ndarray, str]:
    """Absolute alignment time per (selected) trial, and a description of the alignment."""
    if not isinstance(align_to, str):
        times = np.asarray(align_to, dtype=float)
        if times.shape != (keep.size,) and times.shape != (int(keep.sum()),):
            raise EventAlignmentError(
                f"align_to has shape {times.shape}; pass one absolute time per trial "
                f"({keep.size} in table {table.name!r}, {int(keep.sum())} selected)"
            )
        return (times[keep] if times.size == keep.size else times), "per-trial times given by the caller"
    if align_to in table.colnames or align_to in ("start_time", "stop_time"):
        values = np.asarray(table[align_to].data[:])
        if values.dtype.kind not in "iuf":
            raise EventAlignmentError(
                f"column {align_to!r} of table {table.name!r} holds {values.dtype} values, not times in seconds; "
                "align to a column of event times"
            )
        return values.astype(float)[keep], align_to
    events = event_tables(nwbfile)
    if align_to in events:
        stamps = np.sort(np.asarray(events[align_to]["timestamp"].data[:], dtype=float))
        first = np.searchsorted(stamps, start[keep], side="left")
        have = first < stamps.size
        times = np.full(first.shape, np.nan)
        times[have] = stamps[first[have]]
        times[times > stop[keep]] = np.nan
        return times, f"first {align_to!r} event in each trial"
    time_columns = [c for c in table.colnames if c.endswith("_time")]
    raise EventAlignmentError(
        f"align_to={align_to!r} is neither a column of the {table.name!r} table nor an event table. "
        f"Columns: {list(table.colnames)} (times: {time_columns}); event tables: {list(events) or 'none'}. "
        "Pass one of these names, or an array of per-trial alignment times"
    )


def _default_window(start, stop, align, bin_size: float) -> tuple[float, float]:
    ok = np.isfinite(align)
    if not ok.any():
        raise EventAlignmentError("no trial has an alignment time, so no default window exists; pass window=(start, stop)")
    lo = np.min(start[ok] - align[ok]) / bin_size
    hi = np.max(stop[ok] - align[ok]) / bin_size
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi - lo > _MAX_DEFAULT_BINS:
        raise BinningError(
            f"bin_size={bin_size!r}: the trials span over {_MAX_DEFAULT_BINS:.0e} bins; "
            "use a larger bin_size or pass window=(start, stop)"
        )
    first = math.floor(lo + 1e-6)
    last = max(math.ceil(hi - 1e-6), first + 1)
    return round(first * bin_size, 9), round(last * bin_size, 9)


def _check_overlap(ids, edges) -> None:
    ok = np.isfinite(edges[:, 0])
    order = np.argsort(edges[ok, 0], kind="stable")
    first, last, sel_ids = edges[ok, 0][order], edges[ok, -1][order], ids[ok][order]
    clash = np.flatnonzero(first[1:] < last[:-1])
    if clash.size:
        pairs = [(int(sel_ids[i]), int(sel_ids[i + 1])) for i in clash[:5]]
        raise InvalidTrialsError(
            f"non_overlapping=True but {clash.size} trial windows overlap (trial id pairs {pairs}"
            f"{' …' if clash.size > 5 else ''}); shorten the window, select trials with trial_ids=..., "
            "or pass non_overlapping=False to count shared spikes in every trial"
        )


def _merge(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(starts)
    merged_start: list[float] = []
    merged_stop: list[float] = []
    for s, e in zip(starts[order], stops[order]):
        if merged_stop and s <= merged_stop[-1]:
            merged_stop[-1] = max(merged_stop[-1], e)
        else:
            merged_start.append(s)
            merged_stop.append(e)
    return np.asarray(merged_start, float), np.asarray(merged_stop, float)


def _observed_mask(units, positions, edges, tol) -> np.ndarray | None:
    """(trial, time, unit) bool: bin entirely inside one of the unit's obs_intervals (None if no column)."""
    if "obs_intervals" not in units.colnames:
        return None
    ends = np.asarray(units.obs_intervals_index.data[:], dtype=np.int64)
    flat = np.asarray(units.obs_intervals.data[:], dtype=float).reshape(-1, 2)
    starts = np.r_[0, ends[:-1]]
    mask = np.ones(edges.shape[:1] + (edges.shape[1] - 1, len(positions)), dtype=bool)
    for j, p in enumerate(positions):
        rows = flat[starts[p] : ends[p]]
        if rows.size:  # an empty row places no restriction
            mask[:, :, j] = bins_inside(edges, *_merge(rows[:, 0], rows[:, 1]), tol)
    return mask


def _spike_counts(units, positions, ids, grid, align, invalid, observed, lazy, per_chunk, unsorted):
    """(trial, time, unit) float32 spike counts (numpy, or dask when lazy); ids of units whose spike times
    were not ascending (and were sorted, on a copy, before binning) are appended to ``unsorted``."""
    if "spike_times" not in units.colnames:
        raise MissingDataError("the Units table has no spike_times column; pass units=False and use series=...")
    bounds = np.r_[0, np.asarray(units.spike_times_index.data[:], dtype=np.int64)]
    flat = units.spike_times.data
    check_unit_index(bounds, len(flat))

    def count(chunk):
        lo, hi = bounds[chunk[0]], bounds[chunk[-1] + 1]
        block = np.asarray(flat[lo:hi], dtype=float)
        rows = [block[bounds[p] - lo : bounds[p + 1] - lo] for p in chunk]
        times = np.concatenate(rows) if rows else np.empty(0)
        sub_bounds = np.r_[0, np.cumsum([r.size for r in rows])]
        for u in check_spike_times(times, sub_bounds, ids[chunk]):  # counts do not depend on order: sort a copy
            times[sub_bounds[u] : sub_bounds[u + 1]].sort()
            unsorted.append(_plain(ids[chunk[u]]))
        counts = bin_spike_times(times, sub_bounds, grid, align).astype(np.float32)
        counts[invalid] = np.nan
        if observed is not None:
            sel = np.searchsorted(positions, chunk)
            counts[~observed[:, :, sel]] = np.nan
        return counts

    chunks = [positions[i : i + per_chunk] for i in range(0, len(positions), max(1, per_chunk))]
    shape = (align.size, grid.n_bins)
    if not chunks:
        return np.zeros(shape + (0,), np.float32)
    if lazy:
        import dask
        import dask.array as dsa

        blocks = [dsa.from_delayed(dask.delayed(count)(c), shape + (len(c),), np.float32) for c in chunks]
        return dsa.concatenate(blocks, axis=2)
    return np.concatenate([count(c) for c in chunks], axis=2)


def _series_request(series) -> dict:
    if series is None:
        return {}
    if isinstance(series, str):
        return {series: None}
    if isinstance(series, Mapping):
        return dict(series)
    return {name: None for name in series}


def _readable_series(ts) -> str | None:
    """Why a TimeSeries cannot go on the grid by default (None when it can)."""
    shape = tuple(ts.data.shape) if hasattr(ts.data, "shape") else np.shape(ts.data)
    if len(shape) not in (1, 2) or shape[0] == 0:
        return f"shape {shape}"
    dtype = getattr(ts.data, "dtype", None) or np.asarray(ts.data[:1]).dtype
    if np.dtype(dtype).kind not in "biuf":
        return f"{dtype} values"
    return None


def _default_series(nwbfile, extra: dict) -> dict:
    """Every series that can go on the grid (used when there is no Units table and no series= request)."""
    request: dict[str, str | None] = {}
    skipped: dict[str, str] = {}
    for path, ts in find_timeseries(nwbfile).items():
        reason = _readable_series(ts)
        if reason is None:
            request[path] = None
        else:
            skipped[path] = reason
    if skipped:
        extra["series_not_loaded"] = "; ".join(f"{p} ({r})" for p, r in skipped.items())
    return request


def _region_coords(ts, dim: str) -> dict:
    """Electrode / ROI coordinates of a 2-D series' channels: table ids, scalar columns, ROI centroids."""
    coords: dict[str, tuple] = {}
    for attr, suffix in (("electrodes", "electrode_id"), ("rois", "roi_id")):
        region = getattr(ts, attr, None)
        if region is None:
            continue
        rows = np.asarray(region.data[:], dtype=np.int64)
        table = region.table
        coords[f"{dim}_{suffix}"] = (dim, np.asarray(table.id[:])[rows])
        columns, _ = table_coords(table, f"{dim}_{attr[:-1]}_", {"image_mask", "pixel_mask", "voxel_mask"}, set())
        coords.update({k: (dim, v[rows]) for k, v in columns.items()})
        if attr == "rois":
            for axis, values in zip("xyz", roi_centroids(table, rows)):
                coords[f"{dim}_roi_{axis}"] = (dim, values, {"units": "pixels", "long_name": f"ROI centroid {axis}"})
    return coords


def roi_centroids(table, rows) -> np.ndarray:
    """(n_axes, n_rows) weighted centroids (pixels) of ROIs from ``image_mask`` or ``pixel_mask``; empty if neither."""
    out = []
    for r in rows:
        if "image_mask" in table.colnames:
            mask = np.asarray(table["image_mask"].data[int(r)], dtype=float)
            points = np.indices(mask.shape).reshape(mask.ndim, -1).T
            weights = mask.ravel()
        elif "pixel_mask" in table.colnames or "voxel_mask" in table.colnames:
            col = "pixel_mask" if "pixel_mask" in table.colnames else "voxel_mask"
            cells = np.asarray([tuple(p) for p in table[col][int(r)]], dtype=float).reshape(-1, 3 if col == "pixel_mask" else 4)
            points, weights = cells[:, :-1], cells[:, -1]
        else:
            return np.empty((0, len(rows)))
        total = weights.sum()
        out.append(points.T @ weights / total if total > 0 else np.full(points.shape[1], np.nan))
    return np.asarray(out).T if out else np.empty((0, 0))


@dataclass
class GridContext:
    """What every NWB reader needs to put objects on the trial grid of one :func:`read_nwb` call.

    ``grid`` (:class:`TimeGrid`), ``align`` (absolute alignment time per trial), ``edges`` (absolute
    bin edges per trial), ``invalid`` (trial, time) mask, ``tol`` (s), ``lazy`` and ``per_chunk``
    (units / trials per read), ``resample`` (series), and what readers add to: the result's
    ``coords``, ``extra`` attrs, ``history`` lines and the variable names already ``taken``.
    """

    grid: Any
    align: np.ndarray
    edges: np.ndarray
    invalid: np.ndarray
    tol: float
    lazy: bool
    per_chunk: int
    resample: str
    coords: dict
    extra: dict
    history: list
    taken: set


def _series_variables(resolved, ctx: GridContext) -> dict:
    """{var name: Variable} for the requested series (``resolved``: (path, ts, feature dim) triples)."""
    grid, align, invalid, method, lazy, per_chunk, taken = (ctx.grid, ctx.align, ctx.invalid, ctx.resample, ctx.lazy,
                                                            ctx.per_chunk, ctx.taken)
    out = {}
    for path, ts, feature_dim in resolved:
        name = ts.name if ts.name not in taken else path.strip("/").replace("/", "_")
        taken.add(name)
        shape = tuple(ts.data.shape) if hasattr(ts.data, "shape") else np.shape(ts.data)

        def compute(trials, ts=ts):
            values = series_on_grid(ts, grid, align[trials], method)
            values[invalid[trials]] = np.nan
            return values

        if lazy:
            import dask
            import dask.array as dsa

            parts = []
            for i in range(0, align.size, max(1, per_chunk)):
                trials = np.arange(i, min(i + per_chunk, align.size))
                part_shape = (trials.size, grid.n_bins) + tuple(shape[1:2])
                parts.append(dsa.from_delayed(dask.delayed(compute)(trials), part_shape, np.float64))
            data = dsa.concatenate(parts, axis=0) if parts else np.empty((0, grid.n_bins) + tuple(shape[1:2]))
        else:
            data = compute(np.arange(align.size))
        dims: tuple[str, ...] = ("trial", "time")
        coords = {}
        if len(shape) == 2:
            dim = feature_dim or f"{name}_channel"
            dims += (dim,)
            coords[dim] = np.arange(shape[1])
            coords.update(_region_coords(ts, dim))
        attrs = {
            "units": str(ts.unit),
            "long_name": str(ts.description),
            "nwb_object_path": path,
            "nwb_object_id": str(ts.object_id),
            "neurodata_type": ts.neurodata_type,
            "resample_method": method,
            "resampling": RESAMPLING[method],
            "physical_values": "stored data * conversion * channel_conversion + offset",
        }
        if ts.rate is not None:
            attrs["sampling_rate"] = float(ts.rate)
        var = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)
        ctx.coords.update({k: v for k, v in var.coords.items() if k not in ("trial", "time")})
        ctx.history.append(f"series {path} resampled by {method}")
        out[name] = var.variable
    return out


def _event_variables(events: dict, ctx: GridContext) -> dict:
    """(trial, time) counts of each event table's timestamps, NaN where invalid."""
    grid, align, invalid, taken = ctx.grid, ctx.align, ctx.invalid, ctx.taken
    out = {}
    for name, table in events.items():
        stamps = np.sort(np.asarray(table["timestamp"].data[:], dtype=float))
        counts = bin_spike_times(stamps, np.array([0, stamps.size]), grid, align)[..., 0].astype(np.float32)
        counts[invalid] = np.nan
        var = f"{name}_count" if f"{name}_count" not in taken else f"events_{name}_count"
        taken.add(var)
        out[var] = xr.Variable(
            ("trial", "time"), counts,
            attrs={"long_name": f"events of table {name!r} per bin", "units": "1", "nwb_object_path": f"/events/{name}"},
        )
        ctx.history.append(f"event table /events/{name} counted per bin")
    return out


def _choose_units(nwbfile, units, label: str, extra: dict):
    """``(path, Units table)`` to bin, or ``(None, None)``."""
    if units is False:
        return None, None
    found = find_units(nwbfile)
    if isinstance(units, str) and units != "auto":
        return resolve(found, units, "Units table", "/")
    nonempty = [p for p, u in found.items() if len(u.id) > 0]
    if not nonempty:
        if units is True:
            raise MissingDataError(f"{label} has no Units table (or it is empty); pass units=False and series=...")
        return None, None
    path = "/units" if "/units" in nonempty else nonempty[0]
    if len(nonempty) > 1:
        extra["other_units_tables"] = listing([p for p in nonempty if p != path])
    return path, found[path]


def _unit_positions(units, unit_ids, extra, history) -> np.ndarray:
    ids = np.asarray(units.id[:])
    if unit_ids is None:
        return np.arange(ids.size)
    wanted = np.asarray(list(unit_ids))
    unknown = np.setdiff1d(wanted, ids)
    if unknown.size:
        raise MissingDataError(
            f"unit_ids {listing(unknown.tolist(), 'units')} are not ids of the Units table; see describe_nwb"
        )
    positions = np.flatnonzero(np.isin(ids, wanted))
    if positions.size < ids.size:
        extra["excluded_units"] = f"ids {np.setdiff1d(ids, wanted).tolist()}: not in unit_ids"
        history.append(f"excluded {ids.size - positions.size} units not in unit_ids")
    return positions


#: units whose spike times are scanned per read when the default whole-session window is computed.
_EXTENT_UNITS = 256


def _data_extent(units, positions, resolved, events) -> tuple[float, float] | None:
    """(first, last) session time of the data to read: selected units' spikes, series samples, events."""
    firsts, lasts = [], []
    if units is not None and "spike_times" in units.colnames:
        bounds = np.r_[0, np.asarray(units.spike_times_index.data[:], dtype=np.int64)]
        flat = units.spike_times.data
        check_unit_index(bounds, len(flat))
        for i in range(0, positions.size, _EXTENT_UNITS):  # spike times may be unsorted: scan them, a block at a time
            chunk = positions[i : i + _EXTENT_UNITS]
            lo = bounds[chunk[0]]
            block = np.asarray(flat[lo : bounds[chunk[-1] + 1]], dtype=float)
            keep = np.zeros(block.size, dtype=bool)
            for p in chunk:
                keep[bounds[p] - lo : bounds[p + 1] - lo] = True
            values = block[keep & np.isfinite(block)]
            if values.size:
                firsts.append(values.min())
                lasts.append(values.max())
    for _, ts, _ in resolved:
        clock = SeriesClock(ts)
        if clock.n:
            firsts.append(float(clock.times(0, 1)[0]))
            lasts.append(float(clock.times(clock.n - 1, clock.n)[0]))
    for table in events.values():
        stamps = np.asarray(table["timestamp"].data[:], dtype=float)
        if stamps.size:
            firsts.append(np.nanmin(stamps))
            lasts.append(np.nanmax(stamps))
    if not firsts:
        return None
    return float(min(firsts)), float(max(lasts))


#: most bins a default window may hold (a bin_size far too small for the data is refused, not allocated).
_MAX_DEFAULT_BINS = 10**8


def _session_window(extent, bin_size: float) -> tuple[float, float]:
    """Smallest window of whole bins (edges at multiples of ``bin_size``) holding every time in ``extent``."""
    first, last = extent
    if not np.isfinite((last - first) / bin_size) or (last - first) / bin_size > _MAX_DEFAULT_BINS:
        raise BinningError(
            f"bin_size={bin_size!r}: the session spans {last - first:g} s, over {_MAX_DEFAULT_BINS:.0e} bins; "
            "use a larger bin_size or pass window=(start, stop)"
        )
    k0 = math.floor(first / bin_size)
    if k0 * bin_size > first:
        k0 -= 1
    w0 = k0 * bin_size
    n = max(1, math.floor(last / bin_size) - k0)
    while w0 + n * bin_size <= last:
        n += 1
    return w0, w0 + n * bin_size


def _read(nwbfile, label, align_to, window, bin_size, series, units, intervals, trial_ids, unit_ids,
          resample, clip_to_trial, non_overlapping, lazy, per_chunk) -> xr.Dataset:
    extra: dict[str, Any] = {}
    history: list[str] = []
    units_path, units_table = _choose_units(nwbfile, units, label, extra)
    request = _series_request(series)
    events = {}
    if request == {"all": None}:
        request = {path: None for path in find_timeseries(nwbfile)}
    elif units_table is None and not request:
        request = _default_series(nwbfile, extra)
        events = {} if request else event_tables(nwbfile)
        if not request and not events:
            raise MissingDataError(
                f"{label}: nothing to read — no Units table, no series that fits the (trial, time[, channel]) grid "
                f"and no event table ({extra.get('series_not_loaded', 'no series')}); see describe_nwb(path)"
            )
    resolved = [(*resolve_series(nwbfile, key), dim) for key, dim in request.items()]
    positions = None if units_table is None else _unit_positions(units_table, unit_ids, extra, history)

    table_path, table = _choose_trials(nwbfile, intervals, label, extra)
    if table is None:  # the whole session as one trial on the session clock
        if not (isinstance(align_to, str) and align_to == "start_time"):
            raise EventAlignmentError(
                f"align_to={align_to!r} needs an interval table, but the whole session is read (no trials table); "
                "pass intervals=<table name> (see describe_nwb) or leave align_to='start_time'"
            )
        if window is None:
            extent = _data_extent(units_table, positions, resolved, events)
            if extent is None:
                raise MissingDataError(f"{label}: the selected data hold no samples, spikes or events; pass window=(start, stop)")
            window = _session_window(extent, float(bin_size))
            history.append(f"default window {window} s: every spike, sample and event of the session")
        grid = TimeGrid.from_window(window, bin_size)
        ids, keep = np.array([0]), np.array([True])
        start, stop, align = np.array([grid.start]), np.array([grid.stop]), np.array([0.0])
        align_label, interval_name = "session", "session"
        history.insert(0, "no interval table used: the whole session is one trial; time = seconds on the session clock")
        trial_coords: dict = {"start_time": start, "stop_time": stop}
        trial_info: dict = {"not_loaded": {}, "notes": {}}
    else:
        interval_name = table_path.removeprefix("/intervals/")
        all_ids = np.asarray(table.id[:])
        all_start, all_stop = _bounds(table)
        history.append(f"trials from interval table {table_path} ({all_ids.size} rows)")
        keep = np.ones(all_ids.size, dtype=bool)
        if trial_ids is not None:
            wanted = np.asarray(list(trial_ids))
            unknown = np.setdiff1d(wanted, all_ids)
            if unknown.size:
                raise MissingDataError(
                    f"trial_ids {listing(unknown.tolist(), 'trials')} are not ids of table {interval_name!r}"
                )
            keep = np.isin(all_ids, wanted)
            if (~keep).any():
                extra["excluded_trials"] = f"ids {all_ids[~keep].tolist()}: not in trial_ids"
                history.append(f"excluded {int((~keep).sum())} trials not in trial_ids")
        ids, start, stop = all_ids[keep], all_start[keep], all_stop[keep]
        _check_intervals(interval_name, ids, start, stop)
        align, align_label = _alignment(nwbfile, table, align_to, all_start, all_stop, keep)
        if not np.isfinite(align).all():
            extra["trials_without_alignment"] = f"ids {ids[~np.isfinite(align)].tolist()}: kept, all bins invalid"
        if window is None:
            window = _default_window(start, stop, align, float(bin_size))
            history.append(f"default window {window} s: smallest grid covering every trial")
        grid = TimeGrid.from_window(window, bin_size)
        trial_coords, trial_info = table_coords(table, "", set(), _RESERVED)
        trial_coords = {k: v[keep] for k, v in trial_coords.items()}
    edges = grid.absolute_edges(align)
    if non_overlapping:
        _check_overlap(ids, edges)
    tol = 1e-6 * grid.bin_size
    valid = np.isfinite(edges[:, :-1])
    if clip_to_trial:
        valid &= (edges[:, :-1] >= start[:, None] - tol) & (edges[:, 1:] <= stop[:, None] + tol)
    invalid = ~valid

    coords = {"trial": ids, "time": ("time", grid.centres, _time_attrs(align_label))}
    coords.update({k: ("trial", v) for k, v in trial_coords.items()})
    coords["align_time"] = ("trial", align, {"units": "s", "long_name": (
        "session clock origin (session_start_time)" if align_label == "session" else f"session time of {align_label}")})
    data_vars = {
        "valid": (("trial", "time"), valid, {"long_name": "bin lies inside its trial and has data"}),
        "time_bnds": (("time", "nv"), grid.bounds),  # CF: bounds inherit the units of "time"
    }
    ctx = GridContext(grid=grid, align=align, edges=edges, invalid=invalid, tol=tol, lazy=lazy, per_chunk=per_chunk,
                      resample=resample, coords=coords, extra=extra, history=history, taken=set(_RESERVED))
    # each reader of NWB_READERS gets the objects selected for it, in registry order
    selected = {"units": None if units_table is None else (units_table, units_path, positions),
                "series": resolved, "events": events}
    for name, reader in NWB_READERS.items():
        if selected.get(name):
            data_vars.update(reader(selected[name], ctx))

    if trial_info["not_loaded"]:
        extra["trial_columns_not_loaded"] = "; ".join(f"{k} ({v})" for k, v in trial_info["not_loaded"].items())
    for key, note in trial_info["notes"].items():
        extra[f"note_{key}"] = note
    attrs = provenance_attrs(nwbfile, label)
    attrs.update(
        bin_size=grid.bin_size,
        window=[grid.start, grid.stop],
        alignment=align_label,
        intervals=interval_name,
        clip_to_trial=int(clip_to_trial),
        **extra,
    )
    attrs["history"] = "\n".join(history)
    log.info("%s: %d trial(s) x %d bin(s) of %g s; %s", label, len(ids), grid.n_bins, grid.bin_size,
             "; ".join(history))
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _time_attrs(align_label: str) -> dict:
    long_name = (
        "session time, s since session_start_time (bin centre)" if align_label == "session"
        else f"time relative to {align_label} (bin centre)"
    )
    return {"units": "s", "long_name": long_name, "bounds": "time_bnds"}


def _units_variables(selected, ctx: GridContext) -> dict:
    """``spike_count`` (and ``observed``) of the selected units (``selected``: (table, path, row positions))."""
    units, path, positions = selected
    grid, align, edges, invalid, tol, lazy, per_chunk = (ctx.grid, ctx.align, ctx.edges, ctx.invalid, ctx.tol, ctx.lazy,
                                                          ctx.per_chunk)
    coords, extra, history = ctx.coords, ctx.extra, ctx.history
    ids = np.asarray(units.id[:])
    observed = _observed_mask(units, positions, edges, tol)
    unsorted: list = []
    counts = _spike_counts(units, positions, ids, grid, align, invalid, observed, lazy, per_chunk, unsorted)
    if unsorted:  # eager reads only: a lazy read sorts at compute time
        extra["units_with_unsorted_spike_times"] = f"{id_listing(unsorted, 'units')}: sorted before binning (counts are exact)"
        history.append(f"spike times of {len(unsorted)} units were not ascending; sorted (a copy) before binning")
    unit_coords, info = table_coords(units, "unit_", _UNIT_DATA_COLUMNS, set())
    coords["unit"] = ids[positions]
    coords.update({k: ("unit", v[positions]) for k, v in unit_coords.items()})
    if info["not_loaded"]:
        extra["unit_columns_not_loaded"] = "; ".join(f"{k} ({v})" for k, v in info["not_loaded"].items())
    history.append(
        f"binned {positions.size} units' spike times from {path}: counts in [bin start, bin end), {grid.bin_size:g} s bins"
    )
    out = {
        "spike_count": (
            ("trial", "time", "unit"),
            counts,
            {
                "long_name": "binned spike count",
                "units": "1",
                "cell_methods": "time: sum (spikes in [bin start, bin end))",
                "nwb_object_path": path,
                "nwb_object_id": str(units.object_id),
            },
        )
    }
    if observed is not None:
        out["observed"] = (
            ("trial", "time", "unit"),
            observed,
            {"long_name": "bin lies inside the unit's obs_intervals (spike_count NaN where False)"},
        )
        history.append("bins outside each unit's obs_intervals set to NaN (see 'observed')")
    return out


#: How each kind of NWB object is put on the trial grid: the reader ``f(selected objects, GridContext)
#: -> {variable: xarray.Variable or (dims, values, attrs)}`` and what it declares: the
#: ``neurodata_types`` it reads (an object is matched by the first class of its type's MRO that a
#: reader names, so ``ElectricalSeries`` and ``RoiResponseSeries`` go to ``"series"``), the
#: ``variable`` it produces and whether it reads ``lazy``-ly.  :func:`reader_for` looks a reader up.
NWB_READERS = Registry("NWB reader", {"neurodata_types": (), "variable": "", "lazy": False})
NWB_READERS.register("units", _units_variables, neurodata_types=("Units",), variable="spike_count", lazy=True,
                     description="spike times binned exactly in half-open bins, per unit")
NWB_READERS.register("series", _series_variables, neurodata_types=("TimeSeries",), variable="<series name>",
                     lazy=True, description="1-D / 2-D TimeSeries resampled onto the bins (mean, sum or linear)")
NWB_READERS.register("events", _event_variables, neurodata_types=("EventsTable",), variable="<table>_count",
                     description="event timestamps counted per bin")


def reader_for(obj):
    """The :data:`NWB_READERS` entry that reads ``obj`` (an NWB object, its class, or a neurodata type name)."""
    cls = obj if isinstance(obj, type) else None if isinstance(obj, str) else type(obj)
    names = [obj] if cls is None else [c.__name__ for c in cls.__mro__]
    for type_name in names:
        for entry in NWB_READERS.values():
            if type_name in entry.capabilities["neurodata_types"]:
                return entry
    known = sorted({t for e in NWB_READERS.values() for t in e.capabilities["neurodata_types"]})
    raise UnsupportedSeriesError(f"no reader puts a {names[0]} on the trial grid; readers exist for {known} "
                                 "and their subclasses")
