"""The dask worker plugin of sweeps (imported only where dask.distributed is installed)."""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["Preload"]


class Preload(WorkerPlugin):
    """Worker plugin: when a worker starts (also one added later by a batch system), import the run
    code and read the sweep's recordings once, so that no run pays for them and ``seconds`` measures
    the run itself, as it does in a driver that read the recordings before the sweep."""

    name = "neurokpflow-sweep-preload"

    def __init__(self, recordings: dict):
        self.recordings = recordings

    def setup(self, worker=None):
        from . import run as _run
        from ..analysis import collapse  # noqa: F401  (imported once, not inside the first run)
        from ..compare import compare  # noqa: F401

        for options in self.recordings.values():
            _run.recording(options)

    def teardown(self, worker=None):
        pass
