"""``to_nwb`` / ``from_nwb``: trial-structured xarray data (model activity or binned recordings) as NWB.

Layout written
--------------
* Trials are laid end to end on a session clock: trial ``i`` occupies ``[i P, (i + 1) P)`` with
  ``P = time[-1] - time[0] + step`` (``step`` = the time spacing); sample ``(i, k)`` sits at
  ``i P + step / 2 + (time[k] - time[0])``.  The ``trials`` table holds these intervals, the trial
  ids (the ``trial`` coordinate when it holds unique integers) and every per-trial coordinate as a
  column (names clashing with NWB's own columns get the prefix ``coord_``).
* Every variable with ``trial`` and ``time`` dims becomes a ``TimeSeries`` of shape
  ``(trial * time, *other dims)`` in the processing module (``rate`` when time is regular, shared
  ``timestamps`` otherwise); numeric ``(trial, time, …)`` coordinates likewise (prefix ``coord_``).
* String ``(trial, time)`` coordinates (e.g. a model's ``epoch`` labels) become interval tables, one
  row per run of equal labels within a trial, with columns ``label`` and ``trial``.
* Everything else needed to rebuild the Dataset exactly — dims, dtypes, coordinates of the other
  dims, all attrs — is a JSON document in ``/scratch/xarray_layout``.

Any NWB reader sees ordinary TimeSeries and tables; :func:`from_nwb` restores the Dataset exactly.
"""
from __future__ import annotations

import datetime as _dt
import json
import uuid
from typing import cast

import numpy as np
import pynwb
import xarray as xr
from hdmf.common import VectorData
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject

from ._nwbio import _open, package_versions, utc_now, write_nwbfile
from .errors import MissingDataError, NWBWriteError
from ..errors import InputError, InputTypeError

LAYOUT_NAME = "xarray_layout"
LAYOUT_FORMAT = "neurokpflow-xarray-layout"
#: largest variable / coordinate (elements) kept in the JSON layout instead of an NWB dataset.
MAX_JSON_ELEMENTS = 100_000
_TRIAL_RESERVED = {"id", "start_time", "stop_time", "tags", "tags_index", "timeseries", "timeseries_index"}
_INTERVAL_RESERVED = {"trials", "epochs", "invalid_times"}


# ---------------------------------------------------------------------------------------------
# JSON encoding that restores numpy types exactly.
def _encode(value, where: str):
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "O":
            if not all(isinstance(v, str) for v in value.ravel()):
                raise NWBWriteError(f"{where}: object array with non-string elements cannot be written; convert it")
            return {"__ndarray__": value.tolist(), "dtype": "object", "shape": list(value.shape)}
        data = value.astype(str).tolist() if value.dtype.kind in "Mm" else value.tolist()
        return {"__ndarray__": data, "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return {"__scalar__": _encode(np.asarray(value), where)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise NWBWriteError(f"{where}: dict keys must be strings to be written")
        return {"__dict__": {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise NWBWriteError(
        f"{where}: value of type {type(value).__name__} cannot be written; use str, numbers, lists, dicts or numpy arrays"
    )


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = value["dtype"]
        if dtype == "object":
            return np.array(value["__ndarray__"], dtype=object).reshape(value["shape"])
        return np.array(value["__ndarray__"], dtype=np.dtype(dtype)).reshape(value["shape"])
    if "__scalar__" in value:
        return _decode(value["__scalar__"])[()]
    if "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v) for k, v in value["__dict__"].items()}
    raise InputError(f"unknown layout entry {value!r}")


# ---------------------------------------------------------------------------------------------
def _clock(time: np.ndarray, n_trials: int) -> dict:
    """Session-clock placement of every (trial, time) sample."""
    if time.size > 1:
        steps = np.diff(time)
        if not (steps > 0).all():
            raise NWBWriteError("coordinate 'time' must be strictly increasing to be written to NWB")
        step = float(np.median(steps))
        regular = bool(np.allclose(steps, step, rtol=1e-9, atol=0))
    else:
        step, regular = 1.0, True
    period = float(time[-1] - time[0] + step)
    starts = np.arange(n_trials) * period
    samples = starts[:, None] + 0.5 * step + (time - time[0])[None, :]
    return {"step": step, "regular": regular, "period": period, "starts": starts, "samples": samples}


def _check_name(name, kind: str) -> str:
    if not isinstance(name, str) or not name or "/" in name:
        raise NWBWriteError(f"{kind} name {name!r} cannot be an NWB object name; use a non-empty string without '/'")
    return name


def _series_data(var: xr.DataArray, rest: list) -> np.ndarray:
    values = var.transpose("trial", "time", *rest).values
    if values.dtype.kind == "b":
        values = values.astype(np.uint8)
    if values.dtype.kind not in "iuf":
        raise NWBWriteError(
            f"{var.name!r} has dtype {values.dtype}; only numeric and bool (trial, time, …) data can be TimeSeries"
        )
    return values.reshape((-1,) + values.shape[2:])


def _runs_table(name: str, labels: np.ndarray, clock: dict) -> TimeIntervals:
    """One interval per run of equal labels inside each trial."""
    if labels.dtype.kind == "O" and not all(isinstance(v, str) for v in labels.ravel()):
        raise NWBWriteError(f"coordinate {name!r} holds non-string values (e.g. None); fill them with a label first")
    n_trials, n_time = labels.shape
    change = np.ones(labels.shape, dtype=bool)
    change[:, 1:] = labels[:, 1:] != labels[:, :-1]
    trial, first = np.nonzero(change)
    last = np.r_[first[1:], n_time]
    last[np.r_[trial[1:] != trial[:-1], True]] = n_time
    half = 0.5 * clock["step"]
    samples = clock["samples"]
    columns = [
        VectorData(name="start_time", description="start of the run (s)", data=samples[trial, first] - half),
        VectorData(name="stop_time", description="end of the run (s)", data=samples[trial, last - 1] + half),
        VectorData(name="label", description=f"value of coordinate {name!r}", data=labels[trial, first].astype(str)),
        VectorData(name="trial", description="row index of the trial in the trials table", data=trial.astype(np.int64)),
        VectorData(name="n_bins", description="number of time bins in the run", data=(last - first).astype(np.int64)),
    ]
    table_name = name if name not in _INTERVAL_RESERVED else f"{name}_coord"
    return TimeIntervals(name=table_name, description=f"runs of equal {name!r} labels within each trial", columns=columns)


def to_nwb(
    ds,
    path,
    *,
    overwrite: bool = False,
    session_description: str | None = None,
    identifier: str | None = None,
    session_start_time: _dt.datetime | None = None,
    subject: Subject | None = None,
    module: str = "misc",
):
    """Write a trial-structured ``xarray.Dataset`` (e.g. ``neurokpflow.record`` output) to NWB, atomically.

    Parameters
    ----------
    ds : xarray.Dataset or named DataArray
        Dims must include ``trial`` and ``time`` (seconds, strictly increasing).  Variables with both
        dims may have any further dims; per-trial coordinates become trials-table columns.
    path : str or os.PathLike
        Written through a temporary file renamed into place (no partial file on failure).
    overwrite : bool
        Replace an existing file (otherwise ``FileExistsError``).
    session_description, identifier, session_start_time, subject
        NWB metadata; defaults: ``attrs["description"]`` / a generic description, a fresh UUID,
        now (UTC), and a Subject describing an in-silico model (sex "U", age "P0D/").
    module : str
        Processing module holding the series.

    Returns the path.  Read it back with :func:`from_nwb` (exactly) or :func:`read_nwb` (generically,
    ``align_to="start_time"``, ``bin_size`` = the time step).  The file passes ``pynwb.validate``.
    """
    if isinstance(ds, xr.DataArray):
        if ds.name is None:
            raise NWBWriteError("a DataArray needs a name to be written; use da.rename('activity') or pass a Dataset")
        ds = ds.to_dataset()
    if not isinstance(ds, xr.Dataset):
        raise InputTypeError(f"ds must be an xarray.Dataset, got {type(ds).__name__}")
    for dim in ("trial", "time"):
        if dim not in ds.dims:
            raise NWBWriteError(f"Dataset has no {dim!r} dim (dims: {tuple(ds.dims)}); to_nwb needs trial and time dims")
    if "time" not in ds.coords:
        raise NWBWriteError("Dataset has no 'time' coordinate; assign times in seconds with ds.assign_coords(time=...)")
    time = np.asarray(ds["time"].values, dtype=float)
    n_trials = ds.sizes["trial"]
    clock = _clock(time, n_trials)
    nwbfile = pynwb.NWBFile(
        session_description=session_description or str(ds.attrs.get("description", "") or "trial-structured activity written by neurokpflow"),
        identifier=identifier or str(uuid.uuid4()),
        session_start_time=session_start_time or utc_now(),
        experiment_description=str(ds.attrs.get("model", "") or ds.attrs.get("title", "") or "activity written by neurokpflow.data.to_nwb"),
        notes=f"written by {package_versions()['created_by']}; the xarray layout is in /scratch/{LAYOUT_NAME}",
        subject=subject or Subject(subject_id="model", description="in-silico recurrent network", sex="U", age="P0D/"),
    )
    layout = {
        "format": LAYOUT_FORMAT,
        "version": 1,
        "attrs": _encode(dict(ds.attrs), "Dataset attrs"),
        "dims": {k: int(v) for k, v in ds.sizes.items()},
        "variables": {},
        "coords": {},
        "module": module,
        "clock": {"step": clock["step"], "regular": clock["regular"], "period": clock["period"]},
    }
    processing = nwbfile.create_processing_module(module, f"trial-structured activity; layout in /scratch/{LAYOUT_NAME}")
    timestamps_owner: list[pynwb.TimeSeries] = []

    def add_series(nwb_name: str, var: xr.DataArray, description: str) -> dict:
        # dim names (joined into the series comments below)
        rest = cast("list[str]", [d for d in var.dims if d not in ("trial", "time")])
        data = _series_data(var, rest)
        timing = (
            {"rate": 1.0 / clock["step"], "starting_time": 0.5 * clock["step"]}
            if clock["regular"]
            else {"timestamps": timestamps_owner[0] if timestamps_owner else clock["samples"].ravel()}
        )
        ts = pynwb.TimeSeries(
            name=_check_name(nwb_name, "variable"), data=data, unit=str(var.attrs.get("units", "n.a.")),
            description=description, comments="dims (trial·time, " + ", ".join(rest) + ")", **timing,
        )
        if not clock["regular"] and not timestamps_owner:
            timestamps_owner.append(ts)
        processing.add(ts)
        return {"storage": "timeseries", "nwb_name": nwb_name, "series_dims": ["trial", "time", *rest]}

    def entry(obj: xr.DataArray, name: str) -> dict:
        return {"dims": list(obj.dims), "dtype": obj.dtype.str, "attrs": _encode(dict(obj.attrs), f"attrs of {name!r}")}

    def json_values(obj: xr.DataArray, name: str, what: str) -> dict:
        if obj.size > MAX_JSON_ELEMENTS:
            raise NWBWriteError(
                f"{what} {name!r} has dims {obj.dims} and {obj.size} elements; to_nwb stores large arrays only when "
                "they have both 'trial' and 'time' dims — add them (e.g. expand_dims) or drop it"
            )
        return {"storage": "json", "values": _encode(np.asarray(obj.values), f"{what} {name!r}")}

    for key, var in ds.data_vars.items():
        name = _check_name(key, "variable")
        spec = entry(var, name)
        if "trial" in var.dims and "time" in var.dims:
            spec.update(add_series(name, var, str(var.attrs.get("long_name", "") or name)))
        elif "trial" in var.dims:
            raise NWBWriteError(f"variable {name!r} has a 'trial' dim but no 'time' dim; store it as a per-trial coordinate")
        else:
            spec.update(json_values(var, name, "variable"))
        layout["variables"][name] = spec

    trial_columns = [
        VectorData(name="start_time", description="start of the trial on the written session clock (s)", data=clock["starts"]),
        VectorData(name="stop_time", description="end of the trial on the written session clock (s)", data=clock["starts"] + clock["period"]),
    ]
    trial_ids = np.arange(n_trials)
    for key, coord in ds.coords.items():
        name = _check_name(key, "coordinate")
        spec = entry(coord, name)
        if name == "trial":
            values = coord.values
            if values.dtype.kind in "iu" and np.unique(values).size == values.size:
                trial_ids = values.astype(np.int64)
                spec.update(storage="trial_ids")
            else:
                spec.update(storage="trials_column", nwb_name="coord_trial")
                trial_columns.append(_column("coord_trial", coord))
        elif coord.dims == ("trial",):
            column = f"coord_{name}" if name in _TRIAL_RESERVED else name
            spec.update(storage="trials_column", nwb_name=column)
            trial_columns.append(_column(column, coord))
        elif "trial" in coord.dims and "time" in coord.dims:
            if coord.dtype.kind in "biuf":
                spec.update(add_series(f"coord_{name}", coord, f"coordinate {name!r}"))
            elif coord.dims == ("trial", "time"):
                table = _runs_table(name, np.asarray(coord.values), clock)
                nwbfile.add_time_intervals(table)
                spec.update(storage="intervals", nwb_name=table.name)
            else:
                raise NWBWriteError(f"string coordinate {name!r} must have dims ('trial', 'time') to be written, not {coord.dims}")
        elif "trial" in coord.dims:
            raise NWBWriteError(f"coordinate {name!r} has dims {coord.dims}; per-trial coordinates must be 1-D along 'trial'")
        else:
            spec.update(json_values(coord, name, "coordinate"))
        layout["coords"][name] = spec
    nwbfile.trials = TimeIntervals(name="trials", description="trials laid end to end on the written session clock", id=trial_ids, columns=trial_columns)
    nwbfile.add_scratch(json.dumps(layout), name=LAYOUT_NAME, description=f"{LAYOUT_FORMAT}: how to rebuild the xarray.Dataset")
    return write_nwbfile(nwbfile, path, overwrite=overwrite)


def _column(name: str, coord: xr.DataArray) -> VectorData:
    values = np.asarray(coord.values)
    if values.dtype.kind == "O":
        if not all(isinstance(v, str) for v in values):
            raise NWBWriteError(
                f"per-trial coordinate {coord.name!r} holds non-string objects (e.g. None); fill missing values with a label"
            )
        values = values.astype(str)
    elif values.dtype.kind not in "biufU":
        raise NWBWriteError(f"per-trial coordinate {coord.name!r} has dtype {values.dtype}, which NWB columns cannot hold")
    description = str(coord.attrs.get("long_name", "") or f"coordinate {coord.name!r}")
    return VectorData(name=name, description=description, data=values)


def from_nwb(path) -> xr.Dataset:
    """Read a file written by :func:`to_nwb` back into the identical ``xarray.Dataset``."""
    nwbfile, close, label = _open(path)
    try:
        try:
            layout = json.loads(str(np.asarray(nwbfile.get_scratch(LAYOUT_NAME))[()]))
        except (KeyError, ValueError) as err:
            raise MissingDataError(
                f"{label} has no /scratch/{LAYOUT_NAME} document, so it was not written by neurokpflow.data.to_nwb; "
                "load it with read_nwb instead"
            ) from err
        if layout.get("format") != LAYOUT_FORMAT:
            raise MissingDataError(f"{label}: /scratch/{LAYOUT_NAME} is not a {LAYOUT_FORMAT} document")
        return _rebuild(nwbfile, layout)
    finally:
        close()


def _rebuild(nwbfile, layout) -> xr.Dataset:
    sizes = layout["dims"]
    module = nwbfile.processing[layout["module"]]

    def values(spec, name):
        dtype = np.dtype(spec["dtype"])
        storage = spec["storage"]
        if storage == "json":
            out = _decode(spec["values"])
        elif storage == "timeseries":
            dims = spec["series_dims"]
            raw = np.asarray(module[spec["nwb_name"]].data[:])
            out = raw.reshape([sizes[d] for d in dims]).astype(dtype)
            out = np.transpose(out, [dims.index(d) for d in spec["dims"]])
        elif storage == "trial_ids":
            out = np.asarray(nwbfile.trials.id[:])
        elif storage == "trials_column":
            out = np.asarray(nwbfile.trials[spec["nwb_name"]].data[:])
        elif storage == "intervals":
            out = _labels_from_runs(nwbfile.intervals[spec["nwb_name"]], sizes["trial"], sizes["time"])
        else:  # pragma: no cover - written by a newer version
            raise MissingDataError(f"unknown storage {storage!r} for {name!r}")
        if dtype.kind == "O":
            return np.asarray(out, dtype=object)
        return np.asarray(out).astype(dtype)

    coords = {
        name: xr.Variable(spec["dims"], values(spec, name), _decode(spec["attrs"])) for name, spec in layout["coords"].items()
    }
    data_vars = {
        name: xr.Variable(spec["dims"], values(spec, name), _decode(spec["attrs"])) for name, spec in layout["variables"].items()
    }
    return xr.Dataset(data_vars, coords=coords, attrs=_decode(layout["attrs"]))


def _labels_from_runs(table, n_trials: int, n_time: int) -> np.ndarray:
    """Rebuild (trial, time) labels from runs written in (trial, time) order, each ``n_bins`` long."""
    trial = np.asarray(table["trial"].data[:], dtype=np.int64)
    label = np.asarray(table["label"].data[:]).astype(str)
    n_bins = np.asarray(table["n_bins"].data[:], dtype=np.int64)
    if np.bincount(trial, weights=n_bins, minlength=n_trials).tolist() != [n_time] * n_trials:
        raise MissingDataError(f"interval table {table.name!r} does not tile every trial with {n_time} bins")
    return np.repeat(label, n_bins).reshape(n_trials, n_time)
