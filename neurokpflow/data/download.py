"""Downloading registered datasets into a local cache (pooch): pinned SHA-256, progress bar, atomic.

The cache folder is ``$NEUROKPFLOW_CACHE`` or the user cache folder (``~/.cache/neurokpflow`` on Linux).
A download goes to a temporary file in the cache and is renamed into place only once its SHA-256
matches; a mismatch raises :class:`ChecksumError` and keeps nothing.
"""
from __future__ import annotations

import os
from pathlib import Path

from .sources import ChecksumError, DownloadError, require
from .._logging import get_logger

log = get_logger(__name__)

CACHE_ENV = "NEUROKPFLOW_CACHE"
#: Mirror of the registered files (``<base_url>/<filename>``), e.g. a lab server or a local test server.
BASE_URL_ENV = "NEUROKPFLOW_DATA_URL"


def cache_dir() -> Path:
    """Folder where downloaded datasets are kept."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    pooch = require("pooch", "downloading datasets", "download")
    return Path(pooch.os_cache("neurokpflow"))


def fetch(url: str, filename: str, sha256: str, *, progress: bool = True) -> Path:
    """Download ``url`` to ``cache_dir()/filename`` unless already there with the right SHA-256.

    Raises :class:`DownloadError` when the server cannot be reached or answers with an error and
    :class:`ChecksumError` when the bytes do not match ``sha256`` (nothing is left in the cache).
    """
    pooch = require("pooch", "downloading datasets", "download")
    requests = require("requests", "downloading datasets", "download")
    folder = cache_dir()
    log.info("fetching %s into %s (checked against its SHA-256)", url, folder / filename)
    try:
        path = pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=filename, path=folder,
                              progressbar=progress)
    except requests.exceptions.HTTPError as err:
        raise DownloadError(
            f"downloading {filename} from {url} failed (HTTP {err.response.status_code}); check the URL or "
            f"the {BASE_URL_ENV} mirror"
        ) from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(
            f"cannot download {filename} from {url} ({type(err).__name__}; offline?); connect, or put the "
            "file in a folder and pass data_dir= (or set NEUROKPFLOW_DATA)"
        ) from err
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        raise ChecksumError(
            f"{filename} downloaded from {url} does not have the pinned SHA-256 {sha256[:12]}…; the file was "
            "discarded. The server holds another file: check the URL or the mirror"
        ) from err
    return Path(path)
