"""Every exception neurokpflow raises, in one place.

One root, :class:`NeurokpflowError`, so a caller can catch everything the package raises on
purpose with one ``except``.  Each family also derives from the built-in a generic handler
would expect, so ``except ValueError`` keeps working:

====================== ============================ =========================================
family                 built-in                     raised when
====================== ============================ =========================================
:class:`InputError`     ``ValueError``              an argument has a bad value (and
                                                    :class:`InputTypeError`, also a
                                                    ``TypeError``, for a bad type)
:class:`AlignmentError` ``LookupError``,            two inputs cannot be matched by their
                        ``ValueError``              coordinates, or an alignment event is
                                                    missing
:class:`DegenerateInputError` ``ValueError``        the data cannot give a defined answer
                                                    (constant, too few trials, rank 0)
:class:`NWBError`       (see subclasses)            an NWB file cannot be read
                                                    (:class:`NWBLoadError`) or written
                                                    (:class:`NWBWriteError`)
:class:`CheckpointError` ``ValueError``             a checkpoint or run folder is damaged or
                                                    does not match
:class:`ConvergenceError` ``RuntimeError``          an iterative method ran out of iterations
:class:`MissingExtraError` ``ImportError``          an optional dependency is not installed
====================== ============================ =========================================

Messages name the offending object and say how to fix the call.  The command line maps exit
codes by family (:func:`neurokpflow.cli.errors.classify`), never by a concrete class.

This module imports nothing from the rest of the package, so every layer can use it.
"""
from __future__ import annotations

__all__ = [
    "NeurokpflowError",
    "InputError",
    "InputTypeError",
    "UnknownNameError",
    "MissingFileError",
    "OutputExistsError",
    "AlignmentError",
    "DegenerateInputError",
    "NWBError",
    "NWBLoadError",
    "NWBWriteError",
    "CheckpointError",
    "ConvergenceError",
    "MissingExtraError",
    "DownloadError",
    "NeurokpflowWarning",
    "require_extra",
]


class NeurokpflowError(Exception):
    """Root of every exception raised by neurokpflow on purpose."""


class InputError(NeurokpflowError, ValueError):
    """An argument has a bad value: out of range, unknown name, wrong shape or dims, NaN."""


class InputTypeError(InputError, TypeError):
    """An argument has the wrong type (caught as ``ValueError`` or ``TypeError``)."""


class UnknownNameError(InputError, KeyError):
    """A name (task, measure, dataset, variable, coordinate) is not known; the message lists the known ones.

    Caught as ``ValueError`` or ``KeyError``; ``str()`` is the plain message (no ``KeyError`` quotes).
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class AlignmentError(InputError, LookupError):
    """Two inputs cannot be matched by coordinate values, or an alignment event/column is missing.

    Caught as ``ValueError`` or ``LookupError``.
    """


class DegenerateInputError(InputError):
    """The data cannot give a defined answer (constant activity, too few trials, zero rank)."""


class MissingFileError(NeurokpflowError, FileNotFoundError):
    """A file or folder the call needs does not exist (no checkpoints, no results, no folder)."""


class OutputExistsError(NeurokpflowError, FileExistsError):
    """The output already exists and the call was not allowed to replace it (``overwrite=False``)."""


class NWBError(NeurokpflowError):
    """Root of the NWB family: :class:`NWBLoadError` (reading) and :class:`NWBWriteError`."""


class NWBLoadError(NWBError):
    """An NWB file (or a recording made from one) cannot be read as asked.

    The concrete subclasses in :mod:`neurokpflow.data` also derive from ``OSError`` (file),
    ``LookupError`` (missing object) or ``ValueError`` (malformed content).
    """


class NWBWriteError(NWBError, ValueError):
    """An xarray object cannot be written to NWB in the requested layout."""


class CheckpointError(NeurokpflowError, ValueError):
    """A checkpoint or run folder is missing pieces, damaged, or does not match the model."""


class ConvergenceError(NeurokpflowError, RuntimeError):
    """An iterative method (eigensolver, fixed-point finder) did not reach its tolerance.

    ``result`` holds what the method had when it stopped (or ``None``).
    """

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class MissingExtraError(NeurokpflowError, ImportError):
    """An optional dependency is missing; the message names the ``neurokpflow[extra]`` to install."""


class DownloadError(NeurokpflowError, ConnectionError):
    """A download failed (network, HTTP status); the message says whether retrying can help."""


class NeurokpflowWarning(UserWarning):
    """Root of the package's warnings."""


def require_extra(module: str, purpose: str, extra: str):
    """Import the optional ``module`` or raise :class:`MissingExtraError` in one line.

    >>> require_extra("math", "a test", "none").__name__
    'math'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{purpose} needs {module!r}: install neurokpflow[{extra}]") from err
