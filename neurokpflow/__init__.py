"""neurokpflow: how gradient descent shapes the dynamics of multi-task RNNs, and how those
dynamics compare with brain recordings.

Subpackages
-----------
data      NWB -> xarray loaders, preprocessing, synthetic recordings, dataset registry
tasks     seeded cognitive-task generators (Memory/Delay/React Pro/Anti, flip-flop, mixes)
models    recurrent cells and sequence models (leaky RNN, GRU, LSTM)
training  trainer with checkpoints, exact resume and xarray training logs
kpflow    matrix-free KPFlow operators (J_theta, K, P, P^-1, P K P*) and spectral estimators
analysis  dynamic collapse over training and multi-task (sub-task) alignment
compare   model-vs-recording similarity measures with statistics
viz       plots
sweep     many runs x many recordings on dask
cli       the ``neurokpflow`` command line

Top level: ``__version__``, :func:`open_result` (reopen what ``analyze``, ``compare``, ``flow``,
``train`` and ``sweep`` wrote), :func:`record` and :mod:`neurokpflow.errors`.  Subpackages are
imported on first use, so ``import neurokpflow`` is light.  See ARCHITECTURE.md for the layers.
"""
from . import _logging  # noqa: F401  (the package logger's NullHandler)
from ._version import __version__

__all__ = ["__version__", "open_result", "record", "errors"]


def __getattr__(name):
    # imported lazily to keep ``import neurokpflow`` light
    if name == "record":
        from .models import record

        return record
    if name == "open_result":
        from ._io import open_result

        return open_result
    if name == "errors":
        from . import errors

        return errors
    raise AttributeError(f"module 'neurokpflow' has no attribute {name!r}")
