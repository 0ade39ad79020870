"""The package's one place for writing and reopening files.

* :func:`atomic_write`: every file the package writes (checkpoints, netCDF results, NWB files,
  reports, figures) goes through a temporary file in the target folder and one ``os.replace``,
  so an interruption leaves the old complete file or the new one, never a partial one.
* :data:`NETCDF_ENGINE`, :func:`write_netcdf`, :func:`read_netcdf`: the netCDF results.
* :func:`write_zarr_group`, :func:`read_zarr_group`: sweep results (a Zarr store of groups).
* :func:`open_result`: reopen whatever ``analyze``, ``compare``, ``flow``, ``train`` or ``sweep``
  wrote (public as :func:`neurokpflow.open_result`).

This module imports nothing from the rest of the package except :mod:`neurokpflow.errors`.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Callable, Final, Union

import numpy as np
import xarray as xr

from .errors import InputError, InputTypeError, MissingFileError, OutputExistsError, require_extra

__all__ = ["atomic_write", "NETCDF_ENGINE", "write_netcdf", "read_netcdf", "write_zarr_group",
           "read_zarr_group", "open_result", "SWEEP_STORE"]

#: the netCDF engine of every result file (HDF5 underneath, so h5py reads them too)
NETCDF_ENGINE: Final = "h5netcdf"
#: name of the Zarr store inside a sweep's output folder
SWEEP_STORE = "sweep.zarr"
_ZARR_DIMS = "_ARRAY_DIMENSIONS"

Payload = Union[bytes, str, Callable[[Path], object]]


def atomic_write(path, data: Payload, *, overwrite: bool = True, fsync: bool = True, mkdir: bool = True) -> Path:
    """Write ``data`` to ``path`` through a temporary file next to it and one rename.

    ``data``: bytes, a str (written as UTF-8) or a callable ``write(tmp_path)`` that creates the
    file (``lambda p: torch.save(obj, p)``); the temporary name keeps ``path``'s suffix, so
    writers that choose a format by suffix still work.  ``overwrite=False`` refuses an existing
    ``path`` (``FileExistsError``); ``fsync`` flushes the file to disk before the rename;
    ``mkdir=False`` requires the folder to exist (``FileNotFoundError``).  On any failure neither
    a partial ``path`` nor the temporary file is left behind.  Returns ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise MissingFileError(f"folder {str(path.parent)!r} does not exist; create it first")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        if callable(data):
            data(tmp)
        else:
            if not isinstance(data, (bytes, bytearray, memoryview, str)):
                raise InputTypeError(f"data must be bytes, str or a callable write(tmp_path), not {type(data).__name__}")
            with open(tmp, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else bytes(data))
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_netcdf(ds: xr.Dataset, path, *, overwrite: bool = True) -> Path:
    """Write ``ds`` to ``path`` atomically with :data:`NETCDF_ENGINE`."""
    return atomic_write(path, lambda tmp: ds.to_netcdf(tmp, engine=NETCDF_ENGINE), overwrite=overwrite)


def read_netcdf(path) -> xr.Dataset:
    """Load a netCDF result fully into memory and close the file (so it can be rewritten)."""
    with xr.open_dataset(path, engine=NETCDF_ENGINE) as f:
        return f.load()


def _zarr():
    return require_extra("zarr", "writing or reading sweep results", "sweep")


def write_zarr_group(ds: xr.Dataset, store, group: str) -> None:
    """Write ``ds`` (numbers and strings; attrs JSON-serialisable) as Zarr group ``group``, replacing it.

    Variables are plain Zarr arrays with xarray's ``_ARRAY_DIMENSIONS`` convention (readable by
    ``xr.open_zarr`` where the zarr and xarray versions match) because the installed xarray's Zarr
    backend needs zarr 3 while hdmf-zarr ships zarr 2.
    """
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
        arr.attrs[_ZARR_DIMS] = list(var.dims)
        arr.attrs["_is_coord"] = name in ds.coords
    g.attrs["attrs"] = json.dumps(ds.attrs, default=str)


def read_zarr_group(store, group: str) -> xr.Dataset:
    """Read a group written by :func:`write_zarr_group` (``KeyError`` when absent)."""
    zarr = _zarr()
    root = zarr.open_group(str(store), mode="r")
    g = root[group]
    data: dict[str, tuple] = {}
    coords: dict[str, tuple] = {}
    for name, arr in g.arrays():
        target = coords if arr.attrs.get("_is_coord") else data
        target[name] = (tuple(arr.attrs[_ZARR_DIMS]), arr[...])
    return xr.Dataset(data, coords=coords, attrs=json.loads(g.attrs.get("attrs", "{}")))


def open_result(path) -> xr.Dataset:
    """Reopen a result the package wrote, fully loaded into memory.

    ``path`` is a netCDF file written by ``analyze`` (``collapse.nc``, ``subtask.nc``, ...),
    ``compare`` (``compare.nc``), ``flow`` (``similarity_flow.nc``) or ``train``
    (``training_log.nc``), or a sweep's output folder / its ``sweep.zarr`` (the combined
    Dataset, as :func:`neurokpflow.sweep.open_sweep` gives it).  A run folder holding several
    results is refused with the list of files to choose from.

    >>> import tempfile, xarray as xr
    >>> p = Path(tempfile.mkdtemp()) / "r.nc"
    >>> _ = write_netcdf(xr.Dataset({"x": ("step", [1.0, 2.0])}), p)
    >>> float(open_result(p).x.sum())
    3.0
    """
    path = Path(path)
    if not path.exists():
        raise MissingFileError(2, "No such file or directory", str(path))
    store = path if path.suffix == ".zarr" else path / SWEEP_STORE
    if store.is_dir():
        try:
            return read_zarr_group(store, "combined")
        except KeyError:
            raise InputError(f"{str(store)!r} holds no combined results yet; rerun the sweep to finish it") from None
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.nc"))
        if not found:
            raise InputError(f"{str(path)!r} holds no neurokpflow result (.nc file or sweep.zarr)")
        raise InputError(f"{str(path)!r} is a folder; open one of its results: {', '.join(found)}")
    try:
        return read_netcdf(path)
    except (OSError, ValueError) as err:
        raise InputError(f"{str(path)!r} is not a netCDF result written by neurokpflow ({err})") from err
