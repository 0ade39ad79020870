"""Recordings made of several sessions.

Two layouts are read as multi-session input:

- an ``xarray.DataTree`` with one child per session, each child holding what
  :func:`neurokpflow.data.read_nwb` returns for one file (a Dataset with ``trial``, ``time``, ``unit``
  dims and a per-trial condition coordinate);
- a Dataset or DataArray with a ``session`` dimension (sessions padded with NaN to common trial
  and unit counts; trials and units that are all-NaN in a session are dropped for that session).

Units of different sessions were not recorded together, so a measure is computed per session and
the sessions' scores are averaged; the bootstrap resamples sessions, then trials within them.
A pseudo-population (condition-averaged units of several sessions concatenated along ``unit``, with
a ``unit_session`` coordinate) is one ordinary representation and needs nothing from this module.
"""
from __future__ import annotations

from typing import Any

import xarray as xr
from ..errors import InputError, InputTypeError

SESSION_DIM = "session"

__all__ = ["SESSION_DIM", "split_sessions", "is_multi_session"]


def is_multi_session(obj: Any) -> bool:
    """True for a DataTree with children or an xarray object with a ``session`` dimension."""
    if isinstance(obj, xr.DataTree):
        return len(obj.children) > 0
    return isinstance(obj, (xr.DataArray, xr.Dataset)) and SESSION_DIM in obj.dims


def _drop_padding(obj: Any) -> Any:
    for dim in ("trial", "unit"):
        if dim in obj.dims:
            obj = obj.dropna(dim, how="all")
    return obj


def split_sessions(obj: Any) -> tuple[list[str], list[Any]]:
    """``(session names, one recording per session)`` of a multi-session input."""
    if isinstance(obj, xr.DataTree):
        names = list(obj.children)
        parts = [obj[name].to_dataset() for name in names]
        empty = [n for n, p in zip(names, parts) if not p.data_vars]
        if empty:
            raise InputError(f"DataTree session(s) {empty} hold no variables; each child must be one session's "
                             "recording (e.g. what read_nwb returns)")
        return names, parts
    if isinstance(obj, (xr.DataArray, xr.Dataset)) and SESSION_DIM in obj.dims:
        values = obj[SESSION_DIM].values if SESSION_DIM in obj.coords else range(obj.sizes[SESSION_DIM])
        names = [str(v) for v in values]
        return names, [_drop_padding(obj.isel({SESSION_DIM: i}, drop=True)) for i in range(len(names))]
    raise InputTypeError(f"not a multi-session input: {type(obj).__name__} (use a DataTree with one child per session "
                    f"or a '{SESSION_DIM}' dimension)")
