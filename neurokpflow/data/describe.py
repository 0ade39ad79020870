"""What an NWB file contains: units, series (shape, rate, units), interval and event tables."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pynwb
from pynwb.epoch import TimeIntervals

from ._schema import open_or_explain
from .errors import MissingDataError


def object_path(nwbfile: pynwb.NWBFile, obj) -> str:
    """HDF5 path of a container inside ``nwbfile`` (e.g. ``/processing/ecephys/LFP/lfp``)."""
    if obj is nwbfile.units:
        return "/units"
    if any(obj is t for t in (nwbfile.trials, nwbfile.epochs, nwbfile.invalid_times)):
        return f"/intervals/{obj.name}"
    parent = obj.parent
    if parent is None or parent is nwbfile:
        name = obj.name
        for group, holder in (
            ("acquisition", nwbfile.acquisition),
            ("stimulus/presentation", nwbfile.stimulus),
            ("stimulus/templates", nwbfile.stimulus_template),
            ("analysis", nwbfile.analysis),
            ("intervals", nwbfile.intervals),
            ("events", getattr(nwbfile, "events", None) or {}),
            ("scratch", nwbfile.scratch),
        ):
            if holder.get(name) is obj:
                return f"/{group}/{name}"
        return f"/{name}"
    if isinstance(parent, pynwb.base.ProcessingModule):
        return f"/processing/{parent.name}/{obj.name}"
    return f"{object_path(nwbfile, parent)}/{obj.name}"


def _find(nwbfile: pynwb.NWBFile, kind) -> dict:
    """Every object of type ``kind`` in the file, keyed by HDF5 path (sorted)."""
    found: dict[str, Any] = {}
    for obj in nwbfile.objects.values():
        if isinstance(obj, kind):
            found.setdefault(object_path(nwbfile, obj), obj)
    return dict(sorted(found.items()))


def find_timeseries(nwbfile: pynwb.NWBFile) -> dict[str, pynwb.TimeSeries]:
    """Every TimeSeries in the file, keyed by HDF5 path (sorted)."""
    return _find(nwbfile, pynwb.TimeSeries)


def find_units(nwbfile: pynwb.NWBFile) -> dict[str, pynwb.misc.Units]:
    """Every Units table (``/units``, or in ``/acquisition``, ``/processing/...``), keyed by path."""
    found = _find(nwbfile, pynwb.misc.Units)
    if nwbfile.units is not None:
        found.setdefault("/units", nwbfile.units)
    return dict(sorted(found.items()))


def listing(items, what: str = "items", limit: int = 8) -> str:
    """``"[a, b, c]"`` or, past ``limit`` items, ``"1,700 items, e.g. a, b, c …"`` (messages stay one short line)."""
    items = [v.item() if isinstance(v, np.generic) else v for v in items]
    if len(items) <= limit:
        return repr(items)
    return f"{len(items):,} {what}, e.g. {', '.join(str(v) for v in items[:3])} …"


def id_listing(ids, what: str) -> str:
    """``"ids [3, 7]"``, or ``"1,700 trials, e.g. 3, 7, 9 …"`` past a few ids."""
    text = listing(ids, what)
    return f"ids {text}" if text.startswith("[") else text


def resolve(found: dict, key: str, what: str, preferred: str = ""):
    """``(path, object)`` for ``key`` given as a path or a name; :class:`MissingDataError` listing what exists.

    A name held by several objects resolves to ``preferred + name`` when that path exists.
    """
    path = "/" + key.strip("/")
    if path in found:
        return path, found[path]
    matches = [p for p, obj in found.items() if obj.name == key]
    if len(matches) > 1 and preferred + key in matches:
        matches = [preferred + key]
    if len(matches) == 1:
        return matches[0], found[matches[0]]
    if len(matches) > 1:
        raise MissingDataError(f"{what} name {key!r} is ambiguous; pass one of the paths {listing(matches)}")
    raise MissingDataError(f"no {what} named {key!r} in the file; available: {listing(found)}")


def resolve_series(nwbfile: pynwb.NWBFile, key: str) -> tuple[str, pynwb.TimeSeries]:
    """Find a TimeSeries by name or by path; raise :class:`MissingDataError` listing what exists."""
    return resolve(find_timeseries(nwbfile), key, "TimeSeries")


def interval_tables(nwbfile: pynwb.NWBFile) -> dict[str, TimeIntervals]:
    """Interval tables (``trials``, ``epochs``, ``invalid_times`` and custom ones, in ``/intervals`` or
    anywhere else NWB allows a ``TimeIntervals``), keyed by path."""
    tables = _find(nwbfile, TimeIntervals)
    for table in (nwbfile.trials, nwbfile.epochs, nwbfile.invalid_times):  # separate attributes in memory
        if table is not None and table not in tables.values():
            tables[f"/intervals/{table.name}"] = table
    return dict(sorted(tables.items()))


def _bounds(table) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(table["start_time"].data[:], dtype=float), np.asarray(table["stop_time"].data[:], dtype=float))


def _interval_problem(name: str, ids, start, stop) -> str | None:
    bad_nan = ids[~(np.isfinite(start) & np.isfinite(stop))]
    if bad_nan.size:
        return f"interval table {name!r}: start_time/stop_time is NaN or infinite for {id_listing(bad_nan.tolist(), 'trials')}"
    reversed_ = ids[stop < start]
    if reversed_.size:
        return f"interval table {name!r}: stop_time < start_time for {id_listing(reversed_.tolist(), 'trials')}"
    return None


def default_trials(nwbfile: pynwb.NWBFile) -> tuple[str | None, str]:
    """``(path, "")`` of the trials table ``read_nwb`` uses by default, or ``(None, why)``: ``why`` is empty
    when there is no (non-empty) trials table, and says what is wrong when no row has finite bounds."""
    trials = interval_tables(nwbfile).get("/intervals/trials")
    if trials is None or len(trials.id) == 0:
        return None, ""
    start, stop = _bounds(trials)
    if (np.isfinite(start) & np.isfinite(stop)).any():  # usable (a malformed row is an error when read)
        return "/intervals/trials", ""
    problem = _interval_problem("trials", np.asarray(trials.id[:]), start, stop)
    assert problem is not None  # no row has finite bounds, so at least one is NaN or infinite
    return None, problem


def event_tables(nwbfile: pynwb.NWBFile) -> dict:
    """Schema 2.11 ``EventsTable`` objects by name (empty for older files)."""
    return dict(getattr(nwbfile, "events", None) or {})


@dataclass
class SeriesInfo:
    path: str
    neurodata_type: str
    shape: tuple
    dtype: str
    unit: str
    rate: float | None
    starting_time: float | None
    first_time: float | None
    last_time: float | None
    conversion: float
    offset: float
    description: str


@dataclass
class TableInfo:
    name: str
    path: str
    n_rows: int
    columns: list


@dataclass
class UnitsInfo:
    n_units: int
    n_spikes: int
    columns: list
    has_obs_intervals: bool
    resolution: float | None
    path: str = "/units"


@dataclass
class NWBSummary:
    """What :func:`describe_nwb` found.  ``str()`` gives a readable listing; ``to_dict()`` plain data."""

    source: str
    identifier: str
    session_description: str
    session_start_time: str
    units: UnitsInfo | None
    series: list = field(default_factory=list)
    intervals: list = field(default_factory=list)
    events: list = field(default_factory=list)
    units_tables: list = field(default_factory=list)
    default_reading: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"NWB file {self.source}", f"  identifier {self.identifier!r}, session start {self.session_start_time}"]
        if self.session_description:
            lines.append(f"  {self.session_description}")
        if not self.units_tables:
            lines.append("units: none")
        for u in self.units_tables:
            lines.append(
                f"units {u.path}: {u.n_units} units, {u.n_spikes} spikes; columns {u.columns}"
                + ("; obs_intervals present" if u.has_obs_intervals else "")
            )
        lines.append("series:" if self.series else "series: none")
        for s in self.series:
            clock = f"rate {s.rate:g} Hz from {s.starting_time:g} s" if s.rate else "timestamps"
            span = "" if s.first_time is None else f", {s.first_time:g}–{s.last_time:g} s"
            lines.append(f"  {s.path} ({s.neurodata_type}) shape {s.shape} {s.dtype}, unit {s.unit!r}, {clock}{span}")
        lines.append("interval tables:" if self.intervals else "interval tables: none")
        for t in self.intervals:
            lines.append(f"  {t.path}: {t.n_rows} rows, columns {t.columns}")
        for t in self.events:
            lines.append(f"  event table {t.path}: {t.n_rows} rows, columns {t.columns}")
        lines.append(f"read_nwb(path) gives: {self.default_reading}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # IPython
        printer.text(str(self))


def _series_info(path: str, ts: pynwb.TimeSeries) -> SeriesInfo:
    shape = tuple(int(n) for n in (ts.data.shape if hasattr(ts.data, "shape") else np.shape(ts.data)))
    dtype = str(getattr(ts.data, "dtype", np.asarray(ts.data[:1]).dtype))
    if ts.timestamps is not None:
        n_ts = len(ts.timestamps)
        first = float(ts.timestamps[0]) if n_ts else None
        last = float(ts.timestamps[n_ts - 1]) if n_ts else None
        rate, start = None, None
    else:
        rate, start = float(ts.rate), float(ts.starting_time or 0.0)
        first = start if shape and shape[0] else None
        last = start + (shape[0] - 1) / rate if shape and shape[0] else None
    return SeriesInfo(
        path=path,
        neurodata_type=ts.neurodata_type,
        shape=shape,
        dtype=dtype,
        unit=str(ts.unit),
        rate=rate,
        starting_time=start,
        first_time=first,
        last_time=last,
        conversion=float(ts.conversion),
        offset=float(getattr(ts, "offset", 0.0) or 0.0),
        description=str(ts.description),
    )


def _units_info(path: str, u) -> UnitsInfo:
    n_spikes = len(u.spike_times.data) if "spike_times" in u.colnames else 0
    return UnitsInfo(
        n_units=len(u.id),
        n_spikes=int(n_spikes),
        columns=list(u.colnames),
        has_obs_intervals="obs_intervals" in u.colnames,
        resolution=None if u.resolution is None else float(u.resolution),
        path=path,
    )


def summarize(nwbfile: pynwb.NWBFile, label: str) -> NWBSummary:
    units_tables = [_units_info(p, u) for p, u in find_units(nwbfile).items()]
    chosen = next((u for u in units_tables if u.path == "/units"), units_tables[0] if units_tables else None)
    return NWBSummary(
        source=label,
        identifier=str(nwbfile.identifier),
        session_description=str(nwbfile.session_description),
        session_start_time=nwbfile.session_start_time.isoformat(),
        units=chosen,
        series=[_series_info(p, ts) for p, ts in find_timeseries(nwbfile).items()],
        intervals=[TableInfo(t.name, path, len(t.id), list(t.colnames)) for path, t in interval_tables(nwbfile).items()],
        events=[TableInfo(name, f"/events/{name}", len(t.id), list(t.colnames)) for name, t in event_tables(nwbfile).items()],
        units_tables=units_tables,
        default_reading=_default_reading(nwbfile),
    )


def _default_reading(nwbfile: pynwb.NWBFile) -> str:
    path, problem = default_trials(nwbfile)
    if path is not None:
        return f"one row per trial of {path}"
    why = f"the trials table is not used: {problem}" if problem else "no trials table"
    others = sorted({t.name for p, t in interval_tables(nwbfile).items() if p != "/intervals/trials"})
    hint = f"; intervals={others[0]!r} reads the rows of another table" if others else ""
    return f"the whole session as one trial ({why}){hint}"


def describe_nwb(path) -> NWBSummary:
    """List what an NWB file holds so a user can choose what to load.

    Parameters
    ----------
    path : str, os.PathLike or pynwb.NWBFile

    Returns
    -------
    NWBSummary
        ``units`` (count, spikes, columns, obs_intervals), ``series`` (path, type, shape, dtype,
        unit, rate or timestamps, time span, conversion, offset), ``intervals`` (interval tables
        with row counts and columns) and ``events`` (EventsTables).  Print it for a listing;
        nothing but table sizes and two timestamps per series is read.
    """
    nwbfile, close, label = open_or_explain(path)
    try:
        return summarize(nwbfile, label)
    finally:
        close()
