"""pynapple interop: round trips and binning against pynapple's and read_nwb's own counts."""
import warnings

import numpy as np
import pynwb
import pytest
import xarray as xr

from neurokpflow.data import NWBLoadError, read_nwb, synthetic_nwb
from neurokpflow.data.interop import PynappleConversionError, from_pynapple, to_pynapple

nap = pytest.importorskip("pynapple")


@pytest.fixture(scope="module")
def path(tmp_path_factory):
    return synthetic_nwb(tmp_path_factory.mktemp("nap") / "s.nwb", seed=1, n_units=4, n_trials=10)


def _unit_group(path):
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        units = nwb.units
        spikes = {int(i): nap.Ts(np.asarray(units.get_unit_spike_times(k))) for k, i in enumerate(units.id[:])}
        go = np.asarray(nwb.trials["go_cue_time"].data[:])
        ids, condition = np.asarray(nwb.trials.id[:]), np.asarray(nwb.trials["condition"].data[:])
    return nap.TsGroup(spikes, time_support=nap.IntervalSet(0, 1e3)), go, ids, condition


def test_trial_aligned_round_trip_keeps_values_nan_and_coords(path):
    ds = read_nwb(path, align_to="go_cue_time", window=(-1.2, 0.9), bin_size=0.05)  # early bins clipped: NaN
    assert np.isnan(ds.spike_count.values).any()
    frame = to_pynapple(ds)
    assert isinstance(frame, nap.TsdFrame) and list(frame.columns) == ds.unit.values.tolist()
    support = frame.time_support
    assert len(support) == ds.sizes["trial"] and np.all(np.diff(support.start) > 0)
    assert support.metadata["condition"].tolist() == ds.condition.values[np.argsort(ds.align_time.values)].tolist()
    # samples are bin centres on the session clock, only inside each trial's valid bins
    assert frame.shape[0] == int(ds.valid.sum())
    back = from_pynapple(frame)
    assert back.dims == ("trial", "time", "unit")
    back = back.sel(trial=ds.trial.values)
    xr.testing.assert_allclose(back.drop_attrs(), ds.spike_count.drop_attrs(), rtol=0, atol=1e-12)
    assert back.unit_quality.values.tolist() == ds.unit_quality.values.tolist()


def test_overlapping_trials_need_per_trial(path):
    ds = read_nwb(path, align_to="go_cue_time", window=(-2.0, 2.0), bin_size=0.1, clip_to_trial=False)
    with pytest.raises(PynappleConversionError, match="per_trial=True") as info:
        to_pynapple(ds)
    assert isinstance(info.value, (NWBLoadError, ValueError))
    trials = to_pynapple(ds, per_trial=True)
    assert list(trials) == ds.trial.values.tolist()
    for trial_id, obj in trials.items():
        one = from_pynapple(obj)
        assert one.trial.values.tolist() == [trial_id]
        np.testing.assert_array_equal(one.values[0], ds.spike_count.sel(trial=trial_id).values)


def test_continuous_series_round_trip():
    t = 10.0 + 0.01 * np.arange(200)
    da = xr.DataArray(np.random.default_rng(0).normal(size=(200, 3)), dims=("time", "unit"),
                      coords={"time": t, "unit": [4, 5, 9], "unit_area": ("unit", ["M1", "M1", "PMd"])})
    obj = to_pynapple(da)
    assert isinstance(obj, nap.TsdFrame)
    np.testing.assert_allclose([obj.time_support.start[0], obj.time_support.end[0]], [9.995, 11.995])
    back = from_pynapple(obj)
    assert back.dims == ("time", "unit")
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_array_equal(back.time.values, t)
    assert back.unit_area.values.tolist() == ["M1", "M1", "PMd"]
    single = from_pynapple(to_pynapple(da.isel(unit=0)))
    assert single.dims == ("time",)
    np.testing.assert_array_equal(single.values, da.isel(unit=0).values)


def test_tsgroup_counts_equal_read_nwb(path):
    group, go, ids, condition = _unit_group(path)
    ep = nap.IntervalSet(start=go - 0.2, end=go + 0.3, metadata={"trial": ids, "align_time": go, "condition": condition})
    mine = from_pynapple(group, bin_size=0.05, ep=ep)
    reference = read_nwb(path, align_to="go_cue_time", window=(-0.2, 0.3), bin_size=0.05, clip_to_trial=False)
    np.testing.assert_allclose(mine.time.values, reference.time.values, atol=1e-12)
    np.testing.assert_array_equal(mine.spike_count.values, reference.spike_count.values)
    assert mine.condition.values.tolist() == reference.condition.values.tolist()
    assert mine.trial.values.tolist() == reference.trial.values.tolist()


def test_tsgroup_counts_equal_pynapple_count_and_edges_are_half_open():
    rng = np.random.default_rng(2)
    group = nap.TsGroup({k: nap.Ts(np.sort(rng.uniform(0, 20, 500))) for k in (3, 8, 11)},
                        metadata={"area": ["a", "b", "c"]})
    ep = nap.IntervalSet(0.0, 20.0)
    mine = from_pynapple(group, bin_size=0.1, ep=ep)
    theirs = group.count(0.1, ep)
    np.testing.assert_array_equal(mine.spike_count.values[0], np.asarray(theirs.values))
    np.testing.assert_allclose(mine.time.values, np.asarray(theirs.index))
    assert mine.unit.values.tolist() == [3, 8, 11] and mine.unit_area.values.tolist() == ["a", "b", "c"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edges = nap.TsGroup({0: nap.Ts(np.array([0.0, 0.25, 0.5, 0.75]))}, time_support=nap.IntervalSet(0.0, 1.0))
    counts = from_pynapple(edges, bin_size=0.25).spike_count.values[0, :, 0]
    np.testing.assert_array_equal(counts, [1, 1, 1, 1])  # a spike on an edge counts in the bin to its right
    short = from_pynapple(edges, bin_size=0.25, ep=nap.IntervalSet([0.0, 0.5], [0.4, 0.75]))
    assert short.spike_count.shape == (2, 2, 1)  # bins not entirely inside their interval are NaN
    np.testing.assert_array_equal(short.spike_count.values[:, :, 0], [[1, np.nan], [1, np.nan]])
    np.testing.assert_array_equal(short.valid.values, [[True, False], [True, False]])


def test_conversion_errors(path):
    ds = read_nwb(path, align_to="go_cue_time", window=(-0.2, 0.3), bin_size=0.05)
    with pytest.raises(PynappleConversionError, match="align_time"):
        to_pynapple(ds.spike_count.drop_vars("align_time"))
    with pytest.raises(PynappleConversionError, match="transpose"):
        to_pynapple(ds.spike_count.transpose("unit", "trial", "time"))
    group, *_ = _unit_group(path)
    with pytest.raises(PynappleConversionError, match="bin_size"):
        from_pynapple(group)
    with pytest.raises(TypeError):
        from_pynapple(np.zeros(3))


def test_without_pynapple_one_line_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pynapple", None)  # import pynapple now fails
    with pytest.raises(ImportError, match=r"install neurokpflow\[pynapple\]"):
        to_pynapple(xr.DataArray(np.zeros(3), dims="time", coords={"time": [0.0, 1.0, 2.0]}))


@pytest.mark.realdata
def test_real_file_written_by_pynapple_bins_identically(shared_data_dir):
    path = shared_data_dir / "mouse_postsubiculum_A8604-211122.nwb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = nap.load_file(str(path))
        group, epochs = loaded["units"], loaded["epochs"]
    mine = from_pynapple(group, bin_size=0.5, ep=epochs)
    reference = read_nwb(path, intervals="epochs", bin_size=0.5)
    assert mine.unit.values.tolist() == reference.unit.values.tolist() == [6, 191, 206]
    np.testing.assert_array_equal(mine.spike_count.values, reference.spike_count.values)
    np.testing.assert_array_equal(mine.valid.values, reference.valid.values)
