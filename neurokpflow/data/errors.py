"""Exception hierarchy of :mod:`neurokpflow.data`.

Every error raised for bad input derives from :class:`NWBLoadError`, so callers can catch one
class; each subclass also derives from the matching built-in (``ValueError``, ``LookupError``,
``OSError``) so generic handlers keep working.  Messages name the offending object and say how
to fix the call.
"""
from __future__ import annotations


class NWBLoadError(Exception):
    """Base class of every error raised by :mod:`neurokpflow.data`."""


class NWBFileError(NWBLoadError, OSError):
    """The path is missing, is not an HDF5/NWB file, or is truncated / unreadable."""


class MissingDataError(NWBLoadError, LookupError):
    """A requested object (Units, a TimeSeries, a table, a column) is not in the file."""


class MissingTrialsError(MissingDataError):
    """Trial-aligned data were requested from a file without the requested interval table."""


class AlignmentError(MissingDataError):
    """The alignment column or event does not exist (or cannot be matched to trials)."""


class InvalidSpikeTimesError(NWBLoadError, ValueError):
    """Spike times are unsorted, NaN or infinite."""


class InvalidTrialsError(NWBLoadError, ValueError):
    """Trial intervals are malformed (stop < start, NaN bounds) or overlap when asked not to."""


class InvalidOptionError(NWBLoadError, ValueError, TypeError):
    """An option of a reader has a bad value or type (caught as ``ValueError`` or ``TypeError``)."""


class BinningError(InvalidOptionError):
    """The window / bin size do not define a valid grid."""


class UnsupportedSchemaError(NWBFileError):
    """The file is intact NWB in a schema version pynwb cannot read (NWB 1.x, pre-release 2.0 drafts)."""


class UnsupportedSeriesError(NWBLoadError, ValueError):
    """A TimeSeries cannot be put on the trial grid (e.g. more than two dimensions)."""


class NWBWriteError(NWBLoadError, ValueError):
    """An xarray object cannot be written to NWB in the requested layout."""


class DatasetNotFoundError(NWBLoadError, FileNotFoundError):
    """A registered dataset's file was not found in any of the searched folders."""


__all__ = [
    "NWBLoadError",
    "NWBFileError",
    "MissingDataError",
    "MissingTrialsError",
    "AlignmentError",
    "InvalidSpikeTimesError",
    "InvalidTrialsError",
    "InvalidOptionError",
    "BinningError",
    "UnsupportedSchemaError",
    "UnsupportedSeriesError",
    "NWBWriteError",
    "DatasetNotFoundError",
]
