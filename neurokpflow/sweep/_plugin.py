"""The dask worker plugin of sweeps (imported only where dask.distributed is installed)."""
from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["Preload", "PRELOAD_MODULES"]

#: modules a sweep's worker imports as it starts (the ``preload`` of a local cluster's workers), so
#: that the imports overlap with the driver's own preparation instead of following it
PRELOAD_MODULES = ("neurokpflow.sweep.run", "neurokpflow.analysis", "neurokpflow.compare")


class Preload(WorkerPlugin):
    """Worker plugin: when a worker starts (also one added later by a batch system), import the run
    code and make the sweep's recordings available once, so that no run pays for them and ``seconds``
    measures the run itself, as it does in a driver that read the recordings before the sweep.

    ``arrays`` maps a recording's name to the array the driver read: the worker keeps that copy
    (:func:`neurokpflow.sweep.run.share_recording`).  A recording without one is read from its path.
    """

    name = "neurokpflow-sweep-preload"

    def __init__(self, recordings: dict, arrays: dict | None = None):
        self.recordings = recordings
        self.arrays = dict(arrays or {})

    def setup(self, worker=None):
        from . import run as _run
        from ..analysis import collapse  # noqa: F401  (imported once, not inside the first run)
        from ..compare import compare  # noqa: F401

        for name, options in self.recordings.items():
            if name in self.arrays:
                _run.share_recording(options, self.arrays[name])
            else:
                _run.recording(options)

    def teardown(self, worker=None):
        pass
