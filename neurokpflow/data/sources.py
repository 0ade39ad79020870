"""Where NWB recordings live: local HDF5 files, NWB-Zarr stores, open file objects, URLs, DANDI assets.

Every reader (:func:`read_nwb`, :func:`describe_nwb`, :func:`open_nwb`, :func:`from_nwb`) accepts:

* a path to an HDF5 ``.nwb`` file;
* a path to an NWB-Zarr store (a folder, usually ``*.nwb.zarr``; needs ``neurokpflow[zarr]``);
* a binary file object opened for reading (``open(path, "rb")``, ``io.BytesIO``, an fsspec file): it
  is read from its start, left open, and its position restored afterwards;
* an ``http://`` / ``https://`` URL, or ``s3://bucket/key`` (read anonymously as
  ``https://bucket.s3.amazonaws.com/key``), streamed with HTTP range requests: only the bytes the
  read needs are fetched (needs ``neurokpflow[streaming]``);
* a :class:`DandiAsset` (dandiset id, version, asset path), resolved through the DANDI REST API to
  its streaming URL;
* a :class:`Source`, which wraps any of the above with options, e.g. an on-disk cache of the
  fetched bytes: ``read_nwb(Source(url, cache="~/nwb-cache"))``.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from ..errors import DownloadError, InputTypeError, MissingExtraError, require_extra
from .errors import DatasetNotFoundError, NWBFileError, NWBLoadError

#: Public DANDI Archive API; override with ``DandiAsset(api_url=...)`` or ``$NEUROKPFLOW_DANDI_API``.
DANDI_API_URL = "https://api.dandiarchive.org/api"
DANDI_API_ENV = "NEUROKPFLOW_DANDI_API"



class ChecksumError(DownloadError, ValueError):
    """A downloaded file does not have its pinned SHA-256; nothing is kept in the cache."""


#: Import an optional module or raise :class:`~neurokpflow.errors.MissingExtraError` (one line).
require = require_extra


@dataclass(frozen=True)
class DandiAsset:
    """One file of a DANDI dataset, named by dandiset id, version and path inside the dandiset.

    ``version`` is a published version (``"0.220113.0408"``, immutable: pin it) or ``"draft"``.
    ``api_url`` defaults to ``$NEUROKPFLOW_DANDI_API`` or the public archive (:data:`DANDI_API_URL`).
    """

    dandiset: str
    path: str
    version: str = "draft"
    api_url: str | None = None

    def __post_init__(self):
        dandiset = str(self.dandiset).upper().removeprefix("DANDI:")
        if not dandiset.isdigit():
            raise NWBFileError(f"dandiset id {self.dandiset!r} is not a number like '000140'; pass the 6-digit id")
        object.__setattr__(self, "dandiset", dandiset.zfill(6))
        object.__setattr__(self, "path", str(self.path).strip("/"))

    @property
    def label(self) -> str:
        """``DANDI:<id>/<version>:<path>``, the ``nwb_file`` attribute of what is read from it."""
        return f"DANDI:{self.dandiset}/{self.version}:{self.path}"

    @property
    def api(self) -> str:
        return (self.api_url or os.environ.get(DANDI_API_ENV) or DANDI_API_URL).rstrip("/")

    def resolve(self) -> dict:
        """Ask the DANDI API for the asset: ``{"url", "size", "sha256", "asset_id"}``.

        ``url`` is the direct (range-capable) content URL; ``sha256`` is the archive's digest, or
        None when its metadata has none.
        """
        requests = require("requests", "resolving a DANDI asset", "dandi")
        url: str | None = f"{self.api}/dandisets/{self.dandiset}/versions/{self.version}/assets/"
        params: dict[str, str] | None = {"path": self.path, "metadata": "1", "order": "path"}
        while url:
            page = _get_json(requests, url, params, self)
            for asset in page.get("results", []):
                if asset.get("path") == self.path:
                    return _asset_record(asset, self.api)
            url, params = page.get("next"), None
        raise DatasetNotFoundError(
            f"{self.label}: no asset at this path in dandiset {self.dandiset} version {self.version}; "
            "check the path (case-sensitive, relative to the dandiset root)"
        )


def _get_json(requests, url: str, params, asset: DandiAsset) -> dict:
    try:
        response = requests.get(url, params=params, timeout=30)
    except requests.exceptions.RequestException as err:
        raise DownloadError(
            f"cannot reach the DANDI API at {asset.api} ({type(err).__name__}); check the network or set "
            f"{DANDI_API_ENV} to a reachable API"
        ) from err
    if response.status_code == 404:
        raise DatasetNotFoundError(
            f"{asset.label}: the DANDI API has no dandiset {asset.dandiset} version {asset.version!r}; "
            "check the id and version (published versions look like '0.220113.0408')"
        )
    if not response.ok:
        raise DownloadError(f"DANDI API answered HTTP {response.status_code} for {url}; try again later")
    return response.json()


def _asset_record(asset: dict, api: str) -> dict:
    metadata = asset.get("metadata") or {}
    download = f"{api}/assets/{asset['asset_id']}/download/"
    direct = [u for u in metadata.get("contentUrl", []) if not u.startswith(api)]
    return {
        "asset_id": asset["asset_id"],
        "url": direct[0] if direct else download,
        "size": asset.get("size", metadata.get("contentSize")),
        "sha256": (metadata.get("digest") or {}).get("dandi:sha2-256"),
    }


@dataclass(frozen=True)
class Source:
    """Where to read NWB from, with options: the one object to pass instead of a plain path or URL.

    Parameters
    ----------
    location : path, URL, binary file object or :class:`DandiAsset`
    cache : path, optional
        Folder for an on-disk cache of remote bytes (fsspec ``blockcache``): blocks fetched once
        are read from disk afterwards, across sessions.  Ignored for local files.
    block_size : int
        Bytes per HTTP range request (default 1 MiB).
    """

    location: Any
    cache: str | os.PathLike | None = None
    block_size: int = 2**20


def is_remote(location) -> bool:
    return isinstance(location, str) and urlparse(location).scheme in ("http", "https", "s3")


def is_zarr_store(location) -> bool:
    if not isinstance(location, (str, os.PathLike)) or is_remote(location):
        return False
    path = Path(location)
    return path.is_dir() and any((path / marker).exists() for marker in (".zgroup", ".zattrs", "zarr.json"))


def http_url(url: str) -> str:
    """``s3://bucket/key`` -> the anonymous ``https://bucket.s3.amazonaws.com/key``; others unchanged."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        return f"https://{parsed.netloc}.s3.amazonaws.com/{parsed.path.lstrip('/')}"
    return url


def handled_here(location) -> bool:
    """True for every location this module opens (all but local HDF5 paths and NWBFile objects)."""
    return (
        isinstance(location, DandiAsset)
        or is_remote(location)
        or is_zarr_store(location)
        or (hasattr(location, "read") and hasattr(location, "seek"))
    )


def read_io(io, problem: str):
    """``io.read()``; on failure close ``io`` and raise :class:`NWBFileError` starting with ``problem``."""
    try:
        return io.read()
    except Exception as err:
        io.close()
        raise NWBFileError(f"{problem}: {type(err).__name__}: {err}") from err


def read_h5(h5, label: str) -> tuple[Any, Callable[[], None]]:
    """Read NWB from an open ``h5py.File`` (local, file object or stream); returns ``(nwbfile, close_io)``."""
    import pynwb

    if not ("nwb_version" in h5.attrs or "identifier" in h5):
        raise NWBFileError(
            f"{label!r} is HDF5 but not NWB (no 'nwb_version' attribute at the root); "
            "convert it to NWB first (e.g. with NeuroConv)"
        )
    io = pynwb.NWBHDF5IO(file=h5, mode="r")
    problem = f"pynwb could not read {label!r} (truncated, corrupt, or written with an unknown extension)"
    return read_io(io, problem), io.close


def open_source(source) -> tuple[Any, Callable[[], None], str]:
    """Open a ``source`` other than a local HDF5 path or an ``NWBFile``.

    Returns ``(nwbfile, close, label)`` like :func:`neurokpflow.data._nwbio._open`.
    """
    options = source if isinstance(source, Source) else Source(source)
    location = options.location
    if isinstance(location, DandiAsset):
        record = location.resolve()
        return _open_url(record["url"], options, label=location.label)
    if is_remote(location):
        return _open_url(location, options, label=location)
    if is_zarr_store(location):
        return _open_zarr(Path(location))
    if hasattr(location, "read") and hasattr(location, "seek"):
        name = getattr(location, "name", None)
        return _open_fileobj(location, str(name) if isinstance(name, (str, os.PathLike)) else "<file object>")
    raise InputTypeError(
        "source must be a path, an http(s):// or s3:// URL, a binary file object, a DandiAsset, a Source "
        f"or a pynwb.NWBFile, got {type(location).__name__}"
    )


def _open_fileobj(fileobj, label, closers=()):
    import h5py

    position = fileobj.tell()
    fileobj.seek(0)
    try:
        h5 = h5py.File(fileobj, "r")
    except OSError as err:
        fileobj.seek(position)
        for close in closers:
            close()
        raise NWBFileError(f"{label!r} is not an HDF5 file, so it cannot be NWB ({err}); pass an NWB file") from err
    try:
        nwbfile, close_io = read_h5(h5, label)
    except BaseException:
        h5.close()
        fileobj.seek(position)
        for close in closers:
            close()
        raise

    def close():
        close_io()
        h5.close()
        fileobj.seek(position)
        for extra in closers:
            extra()

    return nwbfile, close, label


def _open_url(url, options: Source, label):
    fsspec = require("fsspec", "streaming NWB over HTTP", "streaming")
    require("aiohttp", "streaming NWB over HTTP", "streaming")
    target = http_url(url)
    if options.cache is not None:
        cache = Path(options.cache).expanduser()
        cache.mkdir(parents=True, exist_ok=True)
        protocol = urlparse(target).scheme
        opener = fsspec.open(f"blockcache::{target}", "rb", blockcache={"cache_storage": str(cache)},
                             **{protocol: {"block_size": options.block_size}})
    else:
        opener = fsspec.open(target, "rb", cache_type="blockcache", block_size=options.block_size)
    try:
        remote = opener.open()
    except Exception as err:  # fsspec reports every failure as FileNotFoundError; the cause says which
        status = getattr(err.__cause__, "status", None)
        if status in (403, 404, 410):
            raise NWBFileError(f"{label!r} was not found on its server (HTTP {status}); check the URL") from err
        reason = f"HTTP {status}" if status else type(err.__cause__ or err).__name__
        raise DownloadError(
            f"cannot stream {label!r} ({reason}); check the network, or download the file and pass its path"
        ) from err
    return _open_fileobj(remote, label, closers=(remote.close,))


def _open_zarr(path: Path):
    hdmf_zarr = require("hdmf_zarr", f"reading the NWB-Zarr store {str(path)!r}", "zarr")
    io = hdmf_zarr.NWBZarrIO(str(path), mode="r")
    nwbfile = read_io(io, f"hdmf-zarr could not read {str(path)!r} as NWB (is it an NWB-Zarr store?)")
    return nwbfile, io.close, str(path.resolve())


__all__ = [
    "Source",
    "DandiAsset",
    "MissingExtraError",
    "DownloadError",
    "ChecksumError",
    "DANDI_API_URL",
    "DANDI_API_ENV",
]
