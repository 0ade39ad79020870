"""DynamicTable columns (trials, units, epochs) as per-row numpy coordinates."""
from __future__ import annotations

import numpy as np
from hdmf.common.table import DynamicTableRegion, VectorIndex
from hdmf.container import AbstractContainer

#: separator used when a ragged column (e.g. ``tags``) becomes one string per row.
RAGGED_SEPARATOR = ";"
#: how a reference to part of a TimeSeries (``timeseries`` column of epochs / trials) is written.
TS_REFERENCE_NOTE = "TimeSeries references written as 'series name[start index:+count]'"


def _ts_reference(value) -> str | None:
    """``"name[start:+count]"`` for one TimeSeriesReference row ``(idx_start, count, timeseries)``, else None."""
    if isinstance(value, np.void) and value.dtype.names and {"idx_start", "count", "timeseries"} <= set(value.dtype.names):
        value = (value["idx_start"], value["count"], value["timeseries"])
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[2], AbstractContainer):
        start, count, series = value
        return f"{series.name}[{int(start)}:+{int(count)}]"
    return None


def _as_text(value) -> str:
    reference = _ts_reference(value)
    if reference is not None:
        return reference
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, AbstractContainer):
        return value.name
    return str(value)


def _as_array(values) -> np.ndarray:
    """Numeric / bool columns keep their dtype; anything else becomes a numpy string array."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biuf":
        return arr
    return np.array([_as_text(v) for v in values], dtype=str) if len(values) else np.array([], dtype=str)


def column_values(table, name: str) -> tuple[np.ndarray | None, str]:
    """Return ``(values, note)``: one scalar per row, or ``(None, reason)`` when the column is not scalar.

    Ragged columns of scalars (``tags``, ``electrodes``) are joined into one string per row with
    :data:`RAGGED_SEPARATOR`; ``note`` says so.
    """
    col = table[name]
    if isinstance(col, VectorIndex):
        target = col.target
        if isinstance(target, VectorIndex):
            return None, "doubly ragged column"
        ends = np.asarray(col.data[:], dtype=np.int64)
        flat = target.data[:]
        if isinstance(target, DynamicTableRegion):
            flat = np.asarray(flat)
        if np.ndim(flat) > 1:
            return None, "ragged column of arrays"
        starts = np.r_[0, ends[:-1]]
        rows = [RAGGED_SEPARATOR.join(_as_text(v) for v in flat[s:e]) for s, e in zip(starts, ends)]
        note = f"ragged column joined with {RAGGED_SEPARATOR!r}"
        if type(target).__name__ == "TimeSeriesReferenceVectorData":
            note = f"{note}; {TS_REFERENCE_NOTE}"
        return np.array(rows, dtype=str), note
    if type(col).__name__ == "TimeSeriesReferenceVectorData":
        rows = [_as_text(v) for v in col.data[:]]
        return np.array(rows, dtype=str), TS_REFERENCE_NOTE
    data = col.data[:]
    if isinstance(data, np.ndarray):
        multi = data.ndim > 1
    else:
        multi = len(data) > 0 and isinstance(data[0], (list, tuple, np.ndarray))
    if multi:
        return None, "column with more than one value per row"
    return _as_array(data), ""


def table_coords(table, prefix: str, skip: set, reserved: set) -> tuple[dict, dict]:
    """Per-row coordinates for every scalar column, and ``{column: reason}`` for the others."""
    coords, not_loaded, notes = {}, {}, {}
    for name in table.colnames:
        if name in skip:
            continue
        values, note = column_values(table, name)
        if values is None:
            not_loaded[name] = note
            continue
        key = prefix + name if prefix else ("trial_" + name if name in reserved else name)
        coords[key] = values
        if note:
            notes[key] = note
    return coords, {"not_loaded": not_loaded, "notes": notes}
