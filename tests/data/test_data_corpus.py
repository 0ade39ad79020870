"""Every real NWB file in ../shared/data and ../shared/data/nwb-corpus read with ``read_nwb(path)``.

Per file: no crash (or an :class:`UnsupportedSchemaError` naming the version for the schema versions
pynwb cannot read); spike counts equal an independent ``np.searchsorted`` count on the raw spike
times read with h5py; NaN exactly where a bin is invalid or unobserved; the file byte-identical after
reading.  Skipped, with the folder named, when the recordings are absent.
"""
import hashlib
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurokpflow.data import NWBFileError, UnsupportedSchemaError, read_nwb
from _paths import SHARED_DATA

DATA = SHARED_DATA
FILES = sorted(DATA.glob("*.nwb")) + sorted((DATA / "nwb-corpus").glob("*.nwb*")) if DATA.is_dir() else []

#: files refused by name, with the words the refusal must contain.
REFUSED = {
    "nwb1_meister_retina_20080606_R1.nwb": "NWB 1.0.6 files are not supported",
    "matnwb_2.0b_ecephys_tutorial.nwb": "schema 2.0b written by an early MatNWB",
}
#: files whose default grid is too large for a unit test, read on a given window instead: the default
#: window covers every trial, and this file has a 1176.7 s trial among 412 (a 412 x 117674 x 4 grid, 2.5 GB).
WINDOWED = {"real_alm_ogen_anm00239123.nwb": {"window": (-1.0, 3.0)}}
#: what the default read must hold, per file (dataset variables).
HOLDS = {
    "m1_center_out_chewie.nwb": {"binned_spike_counts", "hand_velocity"},
    "ophys_fluorescence_neuroconv.nwb": {"RoiResponseSeries", "Deconvolved", "Neuropil"},
    "ndx_pose_test_pose.nwb": {"body", "front_left_paw", "front_right_paw"},
    "lfp_2.0b.nwb": {"test_eS1", "test_eS2"},
    "epochs_tags_tsrefs.nwb": {"a", "b"},
    "zarr_timeseries_tutorial_pynwb.nwb.zarr": {"synthetic_timeseries"},
}


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()):
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def oracle_counts(path: Path, ds) -> np.ndarray:
    """Spike counts from the raw HDF5 datasets: per unit, searchsorted of the exact bin edges."""
    with h5py.File(path, "r") as h5:
        group = h5[ds.spike_count.attrs["nwb_object_path"]]
        times, ends, ids = group["spike_times"][:], group["spike_times_index"][:], group["id"][:]
    starts = np.r_[0, ends[:-1]]
    grid = ds.attrs["window"][0] + np.arange(ds.sizes["time"] + 1) * ds.attrs["bin_size"]
    edges = ds.align_time.values[:, None] + grid[None, :]
    out = np.zeros((ds.sizes["trial"], ds.sizes["time"], ds.sizes["unit"]))
    for j, unit in enumerate(ds.unit.values):
        u = int(np.flatnonzero(ids == unit)[0])
        row = np.sort(times[starts[u] : ends[u]])
        out[:, :, j] = np.diff(np.searchsorted(row, np.nan_to_num(edges, nan=np.inf), side="left"), axis=1)
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("path", FILES or [None], ids=[p.name for p in FILES] or ["absent"])
def test_corpus_file_reads_exactly_and_is_not_modified(path):
    if path is None:
        pytest.skip(f"real recordings not available: {DATA} has no NWB files (set NEUROKPFLOW_DATA to their folder)")
    if path.is_dir():
        pytest.importorskip("hdmf_zarr", reason="NWB-Zarr stores need neurokpflow[zarr] (hdmf-zarr)")
    before = digest(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pynwb's deprecation notes on old files
        if path.name in REFUSED:
            with pytest.raises(UnsupportedSchemaError, match=REFUSED[path.name]) as info:
                read_nwb(path)
            assert "\n" not in str(info.value) and len(str(info.value)) < 400
            assert digest(path) == before
            return
        try:
            ds = read_nwb(path, **WINDOWED.get(path.name, {}))
        except NWBFileError as err:
            if not (path.is_dir() and "regular file" in str(err)):
                raise
            # an opener without Zarr support: the reading itself is still checked, on pynwb's own Zarr read
            from hdmf_zarr import NWBZarrIO

            with NWBZarrIO(str(path), "r") as io:
                ds = read_nwb(io.read(), **WINDOWED.get(path.name, {}))
    assert digest(path) == before
    assert HOLDS.get(path.name, set()) <= set(ds.data_vars)
    assert {"spike_count"} & set(ds.data_vars) or len(ds.data_vars) > 2, "nothing but the grid was read"
    if ds.attrs["alignment"] == "session":
        assert ds.sizes["trial"] == 1 and bool(ds.valid.all()) and "whole session" in ds.attrs["history"]
    valid = ds.valid.values
    if "spike_count" in ds:
        counts = ds.spike_count.values
        usable = np.broadcast_to(valid[:, :, None], counts.shape) & (ds.observed.values if "observed" in ds else True)
        np.testing.assert_array_equal(np.isnan(counts), ~usable)
        np.testing.assert_array_equal(counts[usable], oracle_counts(path, ds)[usable])
    for name, var in ds.data_vars.items():
        if var.dims[:2] == ("trial", "time") and name not in ("valid", "spike_count", "observed"):
            assert np.isnan(var.values[~valid]).all(), name


def corpus_file(name: str) -> Path:
    path = DATA / "nwb-corpus" / name
    if not path.exists():
        pytest.skip(f"real recording not available: {path} does not exist (set NEUROKPFLOW_DATA to their folder)")
    return path


@pytest.mark.realdata
def test_timeseries_references_of_epochs_are_readable_values():
    ds = read_nwb(corpus_file("epochs_tags_tsrefs.nwb"), intervals="epochs", bin_size=0.1)
    with h5py.File(corpus_file("epochs_tags_tsrefs.nwb"), "r") as h5:
        refs = h5["intervals/epochs/timeseries"][:]
        ends = h5["intervals/epochs/timeseries_index"][:]
        names = [h5[r["timeseries"]].name.rsplit("/", 1)[-1] for r in refs]
    expected = [";".join(f"{names[k]}[{refs[k]['idx_start']}:+{refs[k]['count']}]" for k in range(a, b))
                for a, b in zip(np.r_[0, ends[:-1]], ends)]
    assert ds.timeseries.values.tolist() == expected and "object at" not in "".join(expected)


@pytest.mark.realdata
def test_roi_centroids_agree_with_the_files_own_centroids():
    path = corpus_file("ophys_fluorescence_neuroconv.nwb")
    ds = read_nwb(path)
    with h5py.File(path, "r") as h5:
        stored = h5["processing/ophys/ImageSegmentation/PlaneSegmentation/RoiCentroid"][:]
    xy = np.stack([ds.RoiResponseSeries_channel_roi_x.values, ds.RoiResponseSeries_channel_roi_y.values], axis=1)
    # the stored centroids are integers from the segmentation software (its own definition): close, not equal
    assert np.median(np.abs(xy - stored)) < 1.0 and np.abs(xy - stored).max() < 4.0
    assert ds.attrs["alignment"] == "session" and ds.RoiResponseSeries_channel_roi_id.size == 15


@pytest.mark.realdata
def test_unsorted_real_units_are_counted_and_named():
    path = corpus_file("real_alm_anm369963.nwb")  # 21 decreasing pairs in its one unit; every trial stop_time NaN
    with pytest.warns(UserWarning, match="trials table is not used"):
        ds = read_nwb(path)
    assert ds.attrs["units_with_unsorted_spike_times"].startswith("ids [1001]")
    assert float(ds.spike_count.sum()) == 1679 and "1,700" not in ds.attrs["trials_not_used"]
    assert "178 trials, e.g. 1, 2, 3 …" in ds.attrs["trials_not_used"]
