"""Exception hierarchy of :mod:`neurokpflow.data`.

The classes live with the rest of the package's errors in :mod:`neurokpflow.errors`; this
module adds the reading-specific subclasses.  Every error raised while reading derives from
:class:`NWBLoadError` (itself a :class:`~neurokpflow.errors.NeurokpflowError`), and each
subclass also derives from the matching built-in (``ValueError``, ``LookupError``, ``OSError``)
so generic handlers keep working.  Writing raises :class:`NWBWriteError`, a sibling of
:class:`NWBLoadError` under :class:`~neurokpflow.errors.NWBError`.
"""
from __future__ import annotations

from ..errors import AlignmentError
from ..errors import InputTypeError, NWBError, NWBLoadError, NWBWriteError


class NWBFileError(NWBLoadError, OSError):
    """The path is missing, is not an HDF5/NWB file, or is truncated / unreadable."""


class MissingDataError(NWBLoadError, LookupError):
    """A requested object (Units, a TimeSeries, a table, a column) is not in the file."""


class MissingTrialsError(MissingDataError):
    """Trial-aligned data were requested from a file without the requested interval table."""


class EventAlignmentError(MissingDataError, AlignmentError):
    """The alignment column or event does not exist (or cannot be matched to trials).

    Part of the package-wide :class:`~neurokpflow.errors.AlignmentError` family (re-exported
    here as ``AlignmentError``), so ``except AlignmentError`` catches it.
    """


class InvalidSpikeTimesError(NWBLoadError, ValueError):
    """Spike times are unsorted, NaN or infinite."""


class InvalidTrialsError(NWBLoadError, ValueError):
    """Trial intervals are malformed (stop < start, NaN bounds) or overlap when asked not to."""


class InvalidOptionError(NWBLoadError, InputTypeError):
    """An option of a reader has a bad value or type (caught as ``ValueError`` or ``TypeError``)."""


class BinningError(InvalidOptionError):
    """The window / bin size do not define a valid grid."""


class UnsupportedSchemaError(NWBFileError):
    """The file is intact NWB in a schema version pynwb cannot read (NWB 1.x, pre-release 2.0 drafts)."""


class UnsupportedSeriesError(NWBLoadError, ValueError):
    """A TimeSeries cannot be put on the trial grid (e.g. more than two dimensions)."""


class DatasetNotFoundError(NWBLoadError, FileNotFoundError):
    """A registered dataset's file was not found in any of the searched folders."""


__all__ = [
    "NWBError",
    "NWBLoadError",
    "NWBFileError",
    "MissingDataError",
    "MissingTrialsError",
    "AlignmentError",
    "EventAlignmentError",
    "InvalidSpikeTimesError",
    "InvalidTrialsError",
    "InvalidOptionError",
    "BinningError",
    "UnsupportedSchemaError",
    "UnsupportedSeriesError",
    "NWBWriteError",
    "DatasetNotFoundError",
]
