"""NWB -> xarray loaders, preprocessing, writing, synthetic recordings and the dataset registry.

Shared layout (see ``docs`` / the dataset cards): dims ``("trial", "time", "unit")``, ``time`` =
bin centres in seconds relative to the alignment event (``attrs["units"] = "s"``, CF bounds in
``time_bnds``), per-trial coordinates from the trials table, per-unit ``unit_*`` coordinates, a
``valid`` (trial, time) mask and provenance attrs.

Reading:       :func:`describe_nwb`, :func:`read_nwb`, :func:`open_nwb` from a path (HDF5 or NWB-Zarr), a
               file object, a URL, a :class:`DandiAsset` or a :class:`Source` (see :mod:`.sources`)
Preprocessing: :func:`smooth`, :func:`counts_to_rates`, :func:`soft_normalize`, :func:`trial_average`,
               :func:`split_halves`, :func:`crop_epoch`, :func:`pca_project`
Many sessions: :func:`read_sessions`, :func:`stack_sessions`, :func:`pseudo_population`
pynapple:      :func:`to_pynapple`, :func:`from_pynapple` (extra ``neurokpflow[pynapple]``)
Writing:       :func:`to_nwb`, :func:`from_nwb`
Datasets:      :func:`synthetic_nwb`, :func:`synthetic_nwbfile`, :func:`load_dataset`,
               :func:`dataset_path`, :func:`list_datasets`, :data:`DATASETS`
Errors:        :class:`NWBLoadError` and its subclasses (with :class:`MissingExtraError`,
               :class:`DownloadError`, :class:`ChecksumError`)
"""
from ._nwbio import open_nwb
from .binning import TimeGrid, bin_spike_times
from .describe import NWBSummary, describe_nwb
from .errors import __all__ as _error_names
from .errors import (
    NWBError,
    AlignmentError,
    EventAlignmentError,
    BinningError,
    DatasetNotFoundError,
    InvalidOptionError,
    InvalidSpikeTimesError,
    InvalidTrialsError,
    MissingDataError,
    MissingTrialsError,
    NWBFileError,
    NWBLoadError,
    NWBWriteError,
    UnsupportedSchemaError,
    UnsupportedSeriesError,
)
from .preprocessing import (
    counts_to_rates,
    crop_epoch,
    pca_project,
    smooth,
    soft_normalize,
    split_halves,
    trial_average,
)
from .reading import NWB_READERS, TrialGrid, read_nwb, reader_for
from .recordings import load_recording
from .interop import PynappleConversionError, from_pynapple, to_pynapple
from .sessions import SessionMismatchError, pseudo_population, read_sessions, stack_sessions
from .registry import DATASETS, DatasetInfo, dataset_path, list_datasets, load_dataset
from .sources import ChecksumError, DandiAsset, DownloadError, MissingExtraError, Source
from .synthetic import synthetic_nwb, synthetic_nwbfile
from .writing import from_nwb, to_nwb

__all__ = [
    "open_nwb",
    "Source",
    "DandiAsset",
    "describe_nwb",
    "NWBSummary",
    "read_nwb",
    "TrialGrid",
    "NWB_READERS",
    "reader_for",
    "load_recording",
    "TimeGrid",
    "bin_spike_times",
    "smooth",
    "counts_to_rates",
    "soft_normalize",
    "trial_average",
    "split_halves",
    "crop_epoch",
    "pca_project",
    "read_sessions",
    "stack_sessions",
    "pseudo_population",
    "SessionMismatchError",
    "to_pynapple",
    "from_pynapple",
    "PynappleConversionError",
    "to_nwb",
    "from_nwb",
    "synthetic_nwb",
    "synthetic_nwbfile",
    "DATASETS",
    "DatasetInfo",
    "dataset_path",
    "list_datasets",
    "load_dataset",
    "MissingExtraError",
    "DownloadError",
    "ChecksumError",
    *_error_names,
]
