"""``read_nwb``: NWB Units and TimeSeries -> one trial-aligned ``xarray.Dataset``."""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ._nwbio import _open, provenance_attrs
from .binning import TimeGrid, bin_spike_times, bins_inside, check_spike_times, check_unit_index
from .describe import event_tables, find_timeseries, interval_tables, resolve_series
from .errors import AlignmentError, InvalidTrialsError, MissingDataError, MissingTrialsError
from .series import RESAMPLING, series_on_grid
from .tables import table_coords

#: Units columns that are data, not per-unit metadata.
_UNIT_DATA_COLUMNS = {"spike_times", "obs_intervals", "waveforms", "waveform_mean", "waveform_sd"}
_RESERVED = {"trial", "time", "unit", "nv", "valid", "observed", "spike_count", "time_bnds", "align_time"}


def read_nwb(
    source,
    *,
    align_to="start_time",
    window=None,
    bin_size: float = 0.01,
    series=None,
    units="auto",
    intervals: str = "trials",
    trial_ids=None,
    unit_ids=None,
    resample: str = "mean",
    clip_to_trial: bool = True,
    non_overlapping: bool = False,
    lazy: bool = False,
    units_per_chunk: int = 64,
) -> xr.Dataset:
    """Read spikes and/or series from an NWB file onto one trial-aligned grid.

    Parameters
    ----------
    source : str, os.PathLike or pynwb.NWBFile
        Opened read-only; an ``NWBFile`` is used as is (handy for in-memory tests).
    align_to : str or array-like
        Column of the interval table (``"start_time"``, ``"go_cue_time"``, …), the name of an
        ``EventsTable`` (each trial aligns to its first event inside ``[start_time, stop_time]``),
        or an array of absolute alignment times, one per trial.  Trials whose alignment is NaN
        (e.g. no event) are kept, fully masked, and listed in ``attrs["trials_without_alignment"]``.
    window : (float, float), optional
        Seconds relative to the event, ``(-0.5, 1.0)`` for 0.5 s before to 1 s after.  Must be a whole
        number of bins.  Default: the smallest grid covering every selected trial.
    bin_size : float
        Bin width in seconds (default 10 ms).
    series : None, "all", str, sequence of str, or mapping name -> feature dim
        TimeSeries to put on the grid, by name or HDF5 path (see :func:`describe_nwb`).  A 2-D series
        gets the feature dim ``f"{name}_channel"`` unless the mapping names it (e.g.
        ``{"binned_spike_counts": "unit"}``).
    units : "auto", bool
        Bin the ``Units`` table: ``"auto"`` when present, ``True`` requires it, ``False`` skips it.
    intervals : str
        Interval table that defines the trials (``"trials"``, ``"epochs"``, or a custom table).
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
        ``ds.close()`` (or the end of a ``with`` block).  Bad spike times then raise at compute time.
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
        ``alignment``, ``history``.
    """
    nwbfile, close, label = _open(source)
    try:
        ds = _read(
            nwbfile, label, align_to, window, bin_size, series, units, intervals, trial_ids, unit_ids,
            resample, clip_to_trial, non_overlapping, lazy, units_per_chunk,
        )
    except BaseException:
        close()
        raise
    if lazy:
        ds.set_close(close)
    else:
        close()
    return ds


def _trial_table(nwbfile, intervals: str, label: str):
    tables = interval_tables(nwbfile)
    if intervals in tables:
        return tables[intervals]
    others = [name for name in tables if name != intervals]
    hint = (
        f"align to one of them with read_nwb(path, intervals={others[0]!r}, align_to='start_time', window=...)"
        if others
        else "add a trials table (NWBFile.add_trial) or pass the session as one interval table"
    )
    raise MissingTrialsError(
        f"{label} has no {intervals!r} interval table, so trial-aligned data cannot be built. "
        f"Interval tables in the file: {others or 'none'}; {hint}"
    )


def _check_intervals(name: str, ids, start, stop) -> None:
    bad_nan = ids[~(np.isfinite(start) & np.isfinite(stop))]
    if bad_nan.size:
        raise InvalidTrialsError(
            f"interval table {name!r}: start_time/stop_time is NaN or infinite for ids {bad_nan.tolist()}; "
            "fix the table or exclude them with trial_ids=..."
        )
    reversed_ = ids[stop < start]
    if reversed_.size:
        raise InvalidTrialsError(
            f"interval table {name!r}: stop_time < start_time for ids {reversed_.tolist()}; "
            "fix the table or exclude them with trial_ids=..."
        )


def _alignment(nwbfile, table, align_to, start, stop, keep) -> tuple[np.ndarray, str]:
    """Absolute alignment time per (selected) trial, and a description of the alignment."""
    if not isinstance(align_to, str):
        times = np.asarray(align_to, dtype=float)
        if times.shape != (keep.size,) and times.shape != (int(keep.sum()),):
            raise AlignmentError(
                f"align_to has shape {times.shape}; pass one absolute time per trial "
                f"({keep.size} in table {table.name!r}, {int(keep.sum())} selected)"
            )
        return (times[keep] if times.size == keep.size else times), "per-trial times given by the caller"
    if align_to in table.colnames or align_to in ("start_time", "stop_time"):
        values = np.asarray(table[align_to].data[:])
        if values.dtype.kind not in "iuf":
            raise AlignmentError(
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
    raise AlignmentError(
        f"align_to={align_to!r} is neither a column of the {table.name!r} table nor an event table. "
        f"Columns: {list(table.colnames)} (times: {time_columns}); event tables: {list(events) or 'none'}. "
        "Pass one of these names, or an array of per-trial alignment times"
    )


def _default_window(start, stop, align, bin_size: float) -> tuple[float, float]:
    ok = np.isfinite(align)
    if not ok.any():
        raise AlignmentError("no trial has an alignment time, so no default window exists; pass window=(start, stop)")
    lo = np.min(start[ok] - align[ok]) / bin_size
    hi = np.max(stop[ok] - align[ok]) / bin_size
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
    merged_start, merged_stop = [], []
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


def _spike_counts(units, positions, ids, grid, align, invalid, observed, lazy, per_chunk):
    """(trial, time, unit) float32 spike counts (numpy, or dask when lazy)."""
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
        check_spike_times(times, sub_bounds, ids[chunk])
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


def _series_variables(nwbfile, request, grid, align, invalid, method, lazy, per_chunk, taken):
    """{var name: DataArray} for the requested series."""
    if request == {"all": None}:
        request = {path: None for path in find_timeseries(nwbfile)}
    out = {}
    for key, feature_dim in request.items():
        path, ts = resolve_series(nwbfile, key)
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
        dims = ("trial", "time")
        coords = {}
        if len(shape) == 2:
            dim = feature_dim or f"{name}_channel"
            dims += (dim,)
            coords[dim] = np.arange(shape[1])
            for attr, suffix in (("electrodes", "electrode_id"), ("rois", "roi_id")):
                region = getattr(ts, attr, None)
                if region is not None:  # table ids of the rows the region points to
                    coords[f"{dim}_{suffix}"] = (dim, np.asarray(region.table.id[:])[np.asarray(region.data[:])])
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
        out[name] = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)
    return out


def _read(nwbfile, label, align_to, window, bin_size, series, units, intervals, trial_ids, unit_ids,
          resample, clip_to_trial, non_overlapping, lazy, per_chunk) -> xr.Dataset:
    if resample not in RESAMPLING:
        raise ValueError(f"resample={resample!r} is not one of {sorted(RESAMPLING)}")
    if units not in ("auto", True, False):
        raise ValueError(f"units={units!r} must be 'auto', True or False")
    request = _series_request(series)
    has_units = nwbfile.units is not None and len(nwbfile.units.id) > 0
    if units is True and not has_units:
        raise MissingDataError(f"{label} has no Units table (or it is empty); pass units=False and series=...")
    use_units = has_units and units is not False
    if not use_units and not request:
        available = list(find_timeseries(nwbfile))
        raise MissingDataError(
            f"{label}: nothing to load — {'Units not requested' if has_units else 'no Units table'} and no series "
            f"requested. Available series: {available or 'none'}; pass series=[...] (names or paths)"
        )

    table = _trial_table(nwbfile, intervals, label)
    all_ids = np.asarray(table.id[:])
    all_start = np.asarray(table["start_time"].data[:], dtype=float)
    all_stop = np.asarray(table["stop_time"].data[:], dtype=float)
    history = [f"trials from interval table {intervals!r} ({all_ids.size} rows)"]
    keep = np.ones(all_ids.size, dtype=bool)
    extra = {}
    if trial_ids is not None:
        wanted = np.asarray(list(trial_ids))
        unknown = np.setdiff1d(wanted, all_ids)
        if unknown.size:
            raise MissingDataError(f"trial_ids {unknown.tolist()} are not ids of table {intervals!r}")
        keep = np.isin(all_ids, wanted)
        if (~keep).any():
            extra["excluded_trials"] = f"ids {all_ids[~keep].tolist()}: not in trial_ids"
            history.append(f"excluded {int((~keep).sum())} trials not in trial_ids")
    ids, start, stop = all_ids[keep], all_start[keep], all_stop[keep]
    _check_intervals(intervals, ids, start, stop)
    align, align_label = _alignment(nwbfile, table, align_to, all_start, all_stop, keep)
    if not np.isfinite(align).all():
        extra["trials_without_alignment"] = f"ids {ids[~np.isfinite(align)].tolist()}: kept, all bins invalid"
    if window is None:
        window = _default_window(start, stop, align, float(bin_size))
        history.append(f"default window {window} s: smallest grid covering every trial")
    grid = TimeGrid.from_window(window, bin_size)
    edges = grid.absolute_edges(align)
    if non_overlapping:
        _check_overlap(ids, edges)
    tol = 1e-6 * grid.bin_size
    valid = np.isfinite(edges[:, :-1])
    if clip_to_trial:
        valid &= (edges[:, :-1] >= start[:, None] - tol) & (edges[:, 1:] <= stop[:, None] + tol)
    invalid = ~valid

    trial_coords, trial_info = table_coords(table, "", set(), _RESERVED)
    coords = {"trial": ids, "time": ("time", grid.centres, _time_attrs(align_label))}
    coords.update({k: ("trial", v[keep]) for k, v in trial_coords.items()})
    coords["align_time"] = ("trial", align, {"units": "s", "long_name": f"session time of {align_label}"})
    data_vars = {
        "valid": (("trial", "time"), valid, {"long_name": "bin lies inside its trial and has data"}),
        "time_bnds": (("time", "nv"), grid.bounds),  # CF: bounds inherit the units of "time"
    }
    taken = set(_RESERVED)
    if use_units:
        data_vars.update(
            _units_variables(nwbfile.units, unit_ids, grid, align, edges, invalid, tol, lazy, per_chunk, coords, extra, history)
        )
    for name, var in _series_variables(nwbfile, request, grid, align, invalid, resample, lazy, per_chunk, taken).items():
        coords.update({k: v for k, v in var.coords.items() if k not in ("trial", "time")})
        data_vars[name] = var.variable
        history.append(f"series {var.attrs['nwb_object_path']} resampled by {resample}")

    if trial_info["not_loaded"]:
        extra["trial_columns_not_loaded"] = "; ".join(f"{k} ({v})" for k, v in trial_info["not_loaded"].items())
    for key, note in trial_info["notes"].items():
        extra[f"note_{key}"] = note
    attrs = provenance_attrs(nwbfile, label)
    attrs.update(
        bin_size=grid.bin_size,
        window=[grid.start, grid.stop],
        alignment=align_label,
        intervals=intervals,
        clip_to_trial=int(clip_to_trial),
        **extra,
    )
    attrs["history"] = "\n".join(history)
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def _time_attrs(align_label: str) -> dict:
    return {"units": "s", "long_name": f"time relative to {align_label} (bin centre)", "bounds": "time_bnds"}


def _units_variables(units, unit_ids, grid, align, edges, invalid, tol, lazy, per_chunk, coords, extra, history):
    ids = np.asarray(units.id[:])
    positions = np.arange(ids.size)
    if unit_ids is not None:
        wanted = np.asarray(list(unit_ids))
        unknown = np.setdiff1d(wanted, ids)
        if unknown.size:
            raise MissingDataError(f"unit_ids {unknown.tolist()} are not ids of the Units table")
        positions = np.flatnonzero(np.isin(ids, wanted))
        if positions.size < ids.size:
            extra["excluded_units"] = f"ids {np.setdiff1d(ids, wanted).tolist()}: not in unit_ids"
            history.append(f"excluded {ids.size - positions.size} units not in unit_ids")
    observed = _observed_mask(units, positions, edges, tol)
    counts = _spike_counts(units, positions, ids, grid, align, invalid, observed, lazy, per_chunk)
    unit_coords, info = table_coords(units, "unit_", _UNIT_DATA_COLUMNS, set())
    coords["unit"] = ids[positions]
    coords.update({k: ("unit", v[positions]) for k, v in unit_coords.items()})
    if info["not_loaded"]:
        extra["unit_columns_not_loaded"] = "; ".join(f"{k} ({v})" for k, v in info["not_loaded"].items())
    history.append(
        f"binned {positions.size} units' spike times: counts in [bin start, bin end), {grid.bin_size:g} s bins"
    )
    out = {
        "spike_count": (
            ("trial", "time", "unit"),
            counts,
            {
                "long_name": "binned spike count",
                "units": "1",
                "cell_methods": "time: sum (spikes in [bin start, bin end))",
                "nwb_object_path": "/units",
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
