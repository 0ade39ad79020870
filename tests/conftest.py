"""Shared pytest fixtures."""
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Folder with the real recordings: ``$NEUROKPFLOW_DATA`` if set, else ``<repo>/../shared/data``.

    Tests using it are skipped (with the folder named) when it is absent.
    """
    env = os.environ.get("NEUROKPFLOW_DATA")
    folder = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    if not folder.is_dir():
        pytest.skip(f"real recordings not available: {folder} does not exist (set NEUROKPFLOW_DATA to their folder)")
    return folder
