"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest

from _paths import REPO_ROOT, SHARED_DATA


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder with the real recordings: ``$NEUROKPFLOW_DATA`` if set, else ``<repo>/../shared/data``.

    Tests using it are skipped (with the folder named) when it is absent.
    """
    folder = SHARED_DATA
    if not folder.is_dir():
        pytest.skip(f"real recordings not available: {folder} does not exist (set NEUROKPFLOW_DATA to their folder)")
    return folder
