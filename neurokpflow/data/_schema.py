"""Recognising NWB files in schema versions pynwb cannot read, so they are refused by name.

:func:`unsupported_schema_error` looks only at the root of an HDF5 file (the ``nwb_version``
attribute of NWB 2.x, or the ``/nwb_version`` dataset of NWB 1.x) and returns an
:class:`UnsupportedSchemaError` with one line naming the version and what to do, or ``None``.
Openers call it after pynwb failed to read a file, so an intact old file is not reported as
"truncated or corrupt".  :func:`open_or_explain` is that pattern around ``_nwbio._open``.
"""
from __future__ import annotations

import os
import re

import h5py
import numpy as np

from ._nwbio import _open
from .errors import NWBFileError, UnsupportedSchemaError

_NWB1_ADVICE = (
    "pynwb reads NWB 2.x only and no general NWB 1 -> NWB 2 converter exists; re-convert the source data "
    "with NeuroConv (or read the HDF5 groups directly with h5py)"
)
_MATNWB_ADVICE = "re-export it with a current MatNWB (nwbExport, schema 2.2 or later) or re-convert with NeuroConv"


def _text(value) -> str:
    """A version stored as str, bytes, or a one-element array of either (early MatNWB)."""
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return str(value).strip()


def schema_version(h5) -> tuple[str, bool]:
    """``(version, array_valued)`` read from the root of an open ``h5py.File``; ``("", False)`` if absent."""
    if "nwb_version" in h5.attrs:
        raw = h5.attrs["nwb_version"]
        return _text(raw), isinstance(raw, np.ndarray)
    node = h5.get("nwb_version")
    if isinstance(node, h5py.Dataset):
        return _text(node[()]), False
    return "", False


def unsupported_schema_error(source, label: str | None = None) -> UnsupportedSchemaError | None:
    """An :class:`UnsupportedSchemaError` for an NWB file pynwb cannot read because of its schema version.

    ``source`` is anything ``h5py.File`` opens (a path, a binary file-like object) or an open
    ``h5py.File``; ``None`` is returned for anything else, for non-HDF5 sources, and for versions
    pynwb supports.  Nothing is written.
    """
    label = label or (os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the NWB file")
    try:
        if isinstance(source, h5py.File):
            version, array_valued = schema_version(source)
        else:
            position = source.tell() if hasattr(source, "tell") else None
            try:
                with h5py.File(source, "r") as h5:
                    version, array_valued = schema_version(h5)
            finally:
                if position is not None:
                    source.seek(position)
    except Exception:  # not HDF5, unreadable, a Zarr store, an in-memory NWBFile: not ours to explain
        return None
    match = re.match(r"(?:NWB-)?(\d+)\.(\d+)", version)
    if match and int(match.group(1)) < 2:
        return UnsupportedSchemaError(f"{label}: NWB {version.removeprefix('NWB-')} files are not supported; {_NWB1_ADVICE}")
    if array_valued:
        return UnsupportedSchemaError(
            f"{label}: schema {version} written by an early MatNWB (array-valued attributes) is not supported by "
            f"pynwb; {_MATNWB_ADVICE}"
        )
    if version and not match:
        return UnsupportedSchemaError(f"{label}: unknown NWB schema version {version!r}; {_MATNWB_ADVICE}")
    if version.startswith("2.0b"):  # only reached when pynwb failed on it: the pre-release draft
        return UnsupportedSchemaError(
            f"{label}: this NWB {version} file (a pre-release draft of NWB 2.0) cannot be read by pynwb; "
            "re-write it with a current pynwb or MatNWB"
        )
    return None


def _one_line(err: Exception, limit: int = 200) -> str:
    """The first line of ``err``'s message, cut before any HDF5 builder dump and to ``limit`` characters."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = re.sub(r"[\s(\[{]*\S*Builder\b.*", " (HDF5 builder details omitted)", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def open_or_explain(source):
    """``_nwbio._open(source)``, with an unsupported schema version named as such and messages kept to one line."""
    try:
        return _open(source)
    except UnsupportedSchemaError:
        raise
    except NWBFileError as err:
        better = unsupported_schema_error(source)
        if better is not None:
            raise better from err
        text = str(err)
        if "\n" in text or len(text) > 400 or "Builder" in text:
            raise type(err)(_one_line(err, 400)) from err
        raise
