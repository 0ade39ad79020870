"""Opening NWB files read-only, atomic writes, and the provenance attributes shared by all readers."""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
from pathlib import Path
from typing import Callable, Iterator

import h5py
import numpy as np
import pynwb

from .._io import atomic_write
from .errors import NWBFileError
from .sources import Source, handled_here, open_source, read_h5
from ..errors import InputTypeError

def _open(source) -> tuple[pynwb.NWBFile, Callable[[], None], str]:
    """Return ``(nwbfile, close, label)``; ``close`` releases the file (no-op for an in-memory NWBFile).

    ``source``: an ``NWBFile``, a local HDF5 path, or any location of :mod:`neurokpflow.data.sources`
    (NWB-Zarr store, binary file object, URL, :class:`DandiAsset`, :class:`Source`).
    """
    if isinstance(source, pynwb.NWBFile):
        return source, (lambda: None), "<in-memory NWBFile>"
    if isinstance(source, Source) and not handled_here(source.location):
        source = source.location  # a local path: the remote options do not apply
    if isinstance(source, Source) or handled_here(source):
        return open_source(source)
    if not isinstance(source, (str, os.PathLike)):
        raise InputTypeError(
            "source must be a path, an http(s):// or s3:// URL, a binary file object, a DandiAsset, a Source "
            f"or a pynwb.NWBFile, got {type(source).__name__}"
        )
    path = Path(source)
    if not path.is_file():
        raise NWBFileError(f"NWB file {str(path)!r} does not exist (or is not a regular file); check the path")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as err:  # pragma: no cover - permission problems
        raise NWBFileError(f"cannot open {str(path)!r}: {err}") from err
    if not is_hdf5:
        raise NWBFileError(
            f"{str(path)!r} is not an HDF5 file, so it cannot be NWB; "
            "pass a .nwb file (HDF5) or an NWB-Zarr store folder"
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise NWBFileError(
            f"{str(path)!r} is an HDF5 file that cannot be opened (truncated or corrupt?): {err}. "
            "Re-download or re-write the file"
        ) from err
    try:
        nwbfile, close_io = read_h5(h5, str(path))
    except BaseException:
        h5.close()
        raise

    def close():
        close_io()
        h5.close()

    return nwbfile, close, str(path.resolve())


@contextlib.contextmanager
def open_nwb(source) -> Iterator[pynwb.NWBFile]:
    """Open ``source`` read-only: a path (HDF5 file or NWB-Zarr store), a binary file object, an
    ``http(s)://`` / ``s3://`` URL, a :class:`DandiAsset`, a :class:`Source` or an already-built
    ``pynwb.NWBFile`` (see :mod:`neurokpflow.data.sources`).

    What was opened is closed on exit (a file object passed in stays open, at its old position); an
    ``NWBFile`` passed in is yielded unchanged and left open.  Raises
    :class:`~neurokpflow.data.NWBFileError` for a missing, non-HDF5, non-NWB or truncated file.
    """
    nwbfile, close, _ = _open(source)
    try:
        yield nwbfile
    finally:
        close()


def write_nwbfile(nwbfile: pynwb.NWBFile, path, *, overwrite: bool) -> Path:
    """Write an in-memory ``NWBFile`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp):
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwbfile)

    return atomic_write(path, write, overwrite=overwrite, mkdir=False)


def package_versions() -> dict[str, str]:
    import hdmf
    import xarray

    from .._version import __version__

    return {
        "created_by": f"neurokpflow {__version__}",
        "pynwb_version": pynwb.__version__,
        "hdmf_version": hdmf.__version__,
        "numpy_version": np.__version__,
        "xarray_version": xarray.__version__,
    }


def provenance_attrs(nwbfile: pynwb.NWBFile, label: str) -> dict:
    """CF globals plus NWB provenance (identifier, session start, subject, package versions)."""
    subject = nwbfile.subject
    pubs = nwbfile.related_publications
    attrs = {
        "title": str(nwbfile.session_description),
        "source": "NWB",
        "Conventions": "CF-1.11",
        "nwb_file": label,
        "nwb_identifier": str(nwbfile.identifier),
        "session_id": str(nwbfile.session_id or ""),
        "session_start_time": nwbfile.session_start_time.isoformat(),
        "subject_id": str(getattr(subject, "subject_id", None) or ""),
        "species": str(getattr(subject, "species", None) or ""),
        "references": "; ".join(str(p) for p in np.atleast_1d(pubs)) if pubs is not None else "",
    }
    attrs.update(package_versions())
    return attrs


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
