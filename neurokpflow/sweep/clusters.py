"""Batch-system clusters for sweeps through dask-jobqueue (extra ``neurokpflow[jobqueue]``).

``jobqueue_cluster("slurm", memory="4GB", walltime="02:00:00", queue="short")`` returns a
``SLURMCluster`` (``"pbs"``: a ``PBSCluster``) whose every job is one dask worker process with one
thread (``cores=1, processes=1``) and ``OMP_NUM_THREADS=1``; the run sets its own torch thread
count from the specification.  Any other keyword goes to the dask-jobqueue class (``account``,
``job_extra_directives``, ``local_directory``, ``python``, ...).  Nothing is submitted until the
cluster is scaled (``run_sweep`` asks for one job per worker).
"""
from __future__ import annotations
from ..errors import InputError, require_extra

__all__ = ["CLUSTERS", "jobqueue_cluster"]

#: batch systems accepted by ``--cluster`` and their dask-jobqueue classes
CLUSTERS = {"slurm": "SLURMCluster", "pbs": "PBSCluster"}
DEFAULTS = {"cores": 1, "processes": 1, "memory": "4GB", "walltime": "01:00:00",
            "job_script_prologue": ["export OMP_NUM_THREADS=1"]}


def jobqueue_cluster(kind: str, **options):
    """A dask-jobqueue cluster of kind ``"slurm"`` or ``"pbs"`` (see the module docstring)."""
    if kind not in CLUSTERS:
        raise InputError(f"cluster {kind!r} is not supported; choose one of {', '.join(CLUSTERS)}")
    dask_jobqueue = require_extra("dask_jobqueue", "running sweeps on SLURM or PBS", "jobqueue")
    options = {**DEFAULTS, **options}
    options.setdefault("scheduler_options", {"dashboard_address": ":0"})
    return getattr(dask_jobqueue, CLUSTERS[kind])(**options)
