"""Sweeps of many training runs on dask.distributed, with results in one Zarr store.

``Sweep`` / ``load`` declare and validate the runs, ``run_sweep`` executes them (on a
``LocalCluster`` by default, or an existing scheduler) and ``open_sweep`` reads the combined
Dataset with a ``run`` dimension and the hyperparameters as ``run`` coordinates.
"""
from .spec import RUN_FIELDS, Sweep, SweepSpecError, load, run_id
from .run import execute_run, remove_stale_temporaries, train_or_resume
from .engine import STORE, check_recordings, open_sweep, run_sweep

__all__ = ["Sweep", "SweepSpecError", "load", "run_id", "RUN_FIELDS", "execute_run", "train_or_resume",
           "remove_stale_temporaries", "run_sweep", "open_sweep", "check_recordings", "STORE"]
