"""Minimal Dataset <-> Zarr group I/O on the zarr 2 API.

The installed xarray's zarr backend needs zarr 3, while the zarr that ships with hdmf-zarr is
2.x, so variables are written as plain zarr arrays with xarray's ``_ARRAY_DIMENSIONS`` convention
(readable by ``xr.open_zarr`` wherever the versions match) and read back here.
"""
from __future__ import annotations

import json

import numpy as np
import xarray as xr
from ..errors import require_extra

_DIMS = "_ARRAY_DIMENSIONS"


def _zarr():
    zarr = require_extra("zarr", "writing sweep results", "sweep")
    return zarr


def write_group(ds: xr.Dataset, store, group: str) -> None:
    """Write ``ds`` (numbers and strings; attrs JSON-serialisable) as zarr group ``group``, replacing it."""
    zarr = _zarr()
    root = zarr.open_group(str(store), mode="a")
    if group in root:
        del root[group]
    g = root.create_group(group)
    for name, var in ds.variables.items():
        values = np.asarray(var.values)
        if values.dtype.kind == "O":
            values = values.astype(str)
        arr = g.create_dataset(name, data=values, shape=values.shape, dtype=values.dtype)
        arr.attrs[_DIMS] = list(var.dims)
        arr.attrs["_is_coord"] = name in ds.coords
    g.attrs["attrs"] = json.dumps(ds.attrs, default=str)


def read_group(store, group: str) -> xr.Dataset:
    """Read a group written by :func:`write_group` (``KeyError`` when absent)."""
    zarr = _zarr()
    root = zarr.open_group(str(store), mode="r")
    g = root[group]
    data, coords = {}, {}
    for name, arr in g.arrays():
        target = coords if arr.attrs.get("_is_coord") else data
        target[name] = (tuple(arr.attrs[_DIMS]), arr[...])
    return xr.Dataset(data, coords=coords, attrs=json.loads(g.attrs.get("attrs", "{}")))
