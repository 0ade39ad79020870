"""Paths the tests share: the repository root and the folder of real recordings."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: ``$NEUROKPFLOW_DATA`` if set, else ``<repo>/../shared/data``
SHARED_DATA = Path(os.environ["NEUROKPFLOW_DATA"]) if os.environ.get("NEUROKPFLOW_DATA") \
    else REPO_ROOT.parent / "shared" / "data"
