"""Lazy reads whose dask graphs hold only plain values, so they compute under any dask scheduler.

A lazy :func:`~neurokpflow.data.read_nwb` first builds its dask arrays from functions that close
over open h5py / pynwb objects.  Those cannot be pickled, so a ``dask.distributed`` scheduler
could not receive the graph (``TypeError: Could not serialize object of type _HLGExprSequence``
as soon as any ``Client`` exists, even for a local ``.compute()``).  :func:`portable` rebuilds
every dask-backed variable from tasks ``_block(recipe, variable, block index)``.  A
:class:`Recipe` is the source (an absolute path, a URL, a :class:`Source` or :class:`DandiAsset`)
and the read options; in the process that read the file it finds the open dataset in a registry
(no second open), and in any other process (a dask worker) it reopens the source once and keeps
it open for the next blocks (at most :data:`KEEP_OPEN` sources per process).
"""
from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict

import numpy as np
import xarray as xr
from ..errors import InputError, InputTypeError

#: reopened sources kept open per process (the least recently used one is closed beyond this)
KEEP_OPEN = 4
_LOCK = threading.RLock()
_OWN: dict = {}                     # token -> lazy Dataset read in this process
_REOPENED: OrderedDict = OrderedDict()  # token -> Dataset reopened here for another process's read
_CLOSED: set = set()                # tokens of reads closed in this process


class Recipe:
    """How to read a lazy dataset again: ``source`` (``None`` when it cannot leave this process,
    e.g. a file object), the ``read_nwb`` options and ``reader(source, options)``, the module-level
    function that reads it again lazily in another process.  ``token`` names the read."""

    def __init__(self, source, options: dict, reader):
        self.reader = reader
        self.token = uuid.uuid4().hex
        self.source = _portable_source(source)
        self.options = dict(options, lazy=True)
        self.kind = type(source).__name__

    def __reduce__(self):
        if self.source is None:
            raise InputTypeError(f"a lazy read of a {self.kind} cannot be computed in another process; read it from a "
                            "path or URL (or pass lazy=False)")
        return _rebuild, (self.token, self.source, self.options, self.kind, self.reader)

    def __dask_tokenize__(self):
        return self.token

    def dataset(self) -> xr.Dataset:
        """The lazy Dataset of this read in this process (read again when this process did not read it)."""
        with _LOCK:
            ds = _OWN.get(self.token)
            if ds is not None:
                return ds
            if self.token in _CLOSED:
                raise InputError("this lazy NWB dataset was closed; read the file again to compute it")
            if self.token in _REOPENED:
                _REOPENED.move_to_end(self.token)
                return _REOPENED[self.token]
            ds = self.reader(self.source, self.options)
            _REOPENED[self.token] = ds
            while len(_REOPENED) > KEEP_OPEN:
                _, old = _REOPENED.popitem(last=False)
                old.close()
            return ds


def _rebuild(token, source, options, kind, reader):
    recipe = Recipe.__new__(Recipe)
    recipe.token, recipe.source, recipe.options, recipe.kind, recipe.reader = token, source, options, kind, reader
    return recipe


def _portable_source(source):
    from .sources import DandiAsset, Source, is_remote

    if isinstance(source, (DandiAsset, Source)):
        return source if not hasattr(getattr(source, "location", None), "read") else None
    if is_remote(source):
        return source
    if isinstance(source, (str, os.PathLike)):
        return os.path.abspath(os.fspath(source))
    return None  # a file object or an in-memory NWBFile


def _block(recipe: Recipe, name: str, index: tuple) -> np.ndarray:
    data = recipe.dataset()[name].data
    return np.asarray(data.blocks[index].compute(scheduler="sync"))


class Closer:
    """``close()`` of a lazy read: closes the files and forgets the read.  It pickles as a no-op
    (a copy of the dataset in another process has nothing of this process to close)."""

    def __init__(self, close, token):
        self._close, self._token = close, token

    def __call__(self):
        if self._token is None:
            return
        with _LOCK:
            if _OWN.pop(self._token, None) is not None:
                _CLOSED.add(self._token)
        if self._close is not None:
            self._close()
            self._close = None

    def __reduce__(self):
        return Closer, (None, None)


def portable(ds: xr.Dataset, recipe: Recipe, close) -> xr.Dataset:
    """``ds`` with every dask-backed variable rebuilt from ``_block`` tasks of ``recipe``; closing it
    runs ``close``.  The original ``ds`` is registered for the ``_block`` tasks of this process."""
    import dask
    import dask.array as dsa

    def rebuilt(name, var):
        arr = var.data
        grid = np.empty(arr.numblocks, dtype=object)
        for index in np.ndindex(*arr.numblocks):
            shape = tuple(arr.chunks[axis][i] for axis, i in enumerate(index))
            key = f"nwb-{recipe.token}-{name}-{'.'.join(map(str, index))}"
            task = dask.delayed(_block, pure=True)(recipe, name, index, dask_key_name=key)
            grid[index] = dsa.from_delayed(task, shape, arr.dtype, name=key + "-array")
        return var.copy(data=dsa.block(grid.tolist()) if grid.ndim else grid[()])

    with _LOCK:
        _OWN[recipe.token] = ds
    variables = {name: rebuilt(name, var) for name, var in ds.variables.items() if _is_dask(var.data)}
    out = ds.assign({n: v for n, v in variables.items() if n in ds.data_vars})
    coords = {n: v for n, v in variables.items() if n not in ds.data_vars}
    if coords:
        out = out.assign_coords(coords)
    out.set_close(Closer(close, recipe.token))
    return out


def _is_dask(data) -> bool:
    return type(data).__module__.startswith("dask.")
