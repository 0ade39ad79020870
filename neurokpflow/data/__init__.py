"""NWB -> xarray loaders, preprocessing, writing, synthetic recordings and the dataset registry.

Shared layout (see ``docs`` / the dataset cards): dims ``("trial", "time", "unit")``, ``time`` =
bin centres in seconds relative to the alignment event (``attrs["units"] = "s"``, CF bounds in
``time_bnds``), per-trial coordinates from the trials table, per-unit ``unit_*`` coordinates, a
``valid`` (trial, time) mask and provenance attrs.

Reading:       :func:`describe_nwb`, :func:`read_nwb`, :func:`open_nwb`
Preprocessing: :func:`smooth`, :func:`counts_to_rates`, :func:`soft_normalize`, :func:`trial_average`,
               :func:`split_halves`, :func:`crop_epoch`, :func:`pca_project`
Writing:       :func:`to_nwb`, :func:`from_nwb`
Datasets:      :func:`synthetic_nwb`, :func:`synthetic_nwbfile`, :func:`load_dataset`,
               :func:`dataset_path`, :func:`list_datasets`, :data:`DATASETS`
Errors:        :class:`NWBLoadError` and its subclasses
"""
from ._nwbio import open_nwb
from .binning import TimeGrid, bin_spike_times
from .describe import NWBSummary, describe_nwb
from .errors import (
    AlignmentError,
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
from .reading import read_nwb
from .registry import DATASETS, DatasetInfo, dataset_path, list_datasets, load_dataset
from .synthetic import synthetic_nwb, synthetic_nwbfile
from .writing import from_nwb, to_nwb

__all__ = [
    "open_nwb",
    "describe_nwb",
    "NWBSummary",
    "read_nwb",
    "TimeGrid",
    "bin_spike_times",
    "smooth",
    "counts_to_rates",
    "soft_normalize",
    "trial_average",
    "split_halves",
    "crop_epoch",
    "pca_project",
    "to_nwb",
    "from_nwb",
    "synthetic_nwb",
    "synthetic_nwbfile",
    "DATASETS",
    "DatasetInfo",
    "dataset_path",
    "list_datasets",
    "load_dataset",
    "NWBLoadError",
    "NWBFileError",
    "MissingDataError",
    "MissingTrialsError",
    "AlignmentError",
    "InvalidSpikeTimesError",
    "InvalidTrialsError",
    "BinningError",
    "InvalidOptionError",
    "UnsupportedSchemaError",
    "UnsupportedSeriesError",
    "NWBWriteError",
    "DatasetNotFoundError",
]
