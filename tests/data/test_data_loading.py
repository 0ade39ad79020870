"""read_nwb / describe_nwb on hand-built and synthetic NWB files: counts, alignment, masks,
series resampling, laziness, provenance, and every bad-input case."""
import datetime as dt
import hashlib
import shutil

import h5py
import numpy as np
import pynwb
import pytest
import xarray as xr
from pynwb.file import Subject

import neurokpflow.errors
from neurokpflow.data import (
    EventAlignmentError,
    AlignmentError,
    BinningError,
    InvalidSpikeTimesError,
    InvalidTrialsError,
    MissingDataError,
    MissingTrialsError,
    NWBFileError,
    NWBLoadError,
    TimeGrid,
    UnsupportedSeriesError,
    bin_spike_times,
    describe_nwb,
    read_nwb,
    synthetic_nwb,
    synthetic_nwbfile,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def make_nwbfile(spikes=None, trials=(), columns=None, obs_intervals=None, epochs=()):
    """Small NWBFile: ``trials`` rows are dicts; ``spikes`` a list of spike-time arrays (one per unit)."""
    nwb = pynwb.NWBFile(
        session_description="test", identifier="test-file", session_start_time=T0,
        subject=Subject(subject_id="s1", species="Mus musculus", sex="U", age="P90D"),
    )
    for name in columns or []:
        nwb.add_trial_column(name, f"column {name}")
    for row in trials:
        nwb.add_trial(**row)
    for start, stop in epochs:
        nwb.add_epoch(start_time=start, stop_time=stop, tags=["wake", "rest"])
    if spikes is not None:
        nwb.units = pynwb.misc.Units(name="units", description="u", resolution=1e-5)
        nwb.units.add_column("quality", "label")
        for i, times in enumerate(spikes):
            extra = {"obs_intervals": obs_intervals[i]} if obs_intervals is not None else {}
            nwb.add_unit(spike_times=np.asarray(times, float), quality=f"q{i}", **extra)
    return nwb


def regular_spikes(rate, start, stop, phase):
    return np.arange(start + phase, stop, 1.0 / rate)


@pytest.fixture()
def ragged():
    """3 ragged trials (1.0, 0.6, 0.83 s) with a go cue; unit 0 at 50 Hz, unit 1 at 100 Hz (mid-bin phases)."""
    trials = [
        {"start_time": 0.0, "stop_time": 1.0, "go_cue_time": 0.4, "condition": 1, "label": "a"},
        {"start_time": 2.0, "stop_time": 2.6, "go_cue_time": 2.3, "condition": 2, "label": "b"},
        {"start_time": 4.0, "stop_time": 4.83, "go_cue_time": 4.2, "condition": 1, "label": "c"},
    ]
    spikes = [regular_spikes(50, 0, 6, 0.005), regular_spikes(100, 0, 6, 0.0025)]
    return make_nwbfile(spikes, trials, columns=["go_cue_time", "condition", "label"])


def brute_force(spikes, align, window, bin_size):
    grid = TimeGrid.from_window(window, bin_size)
    edges = grid.absolute_edges(np.asarray(align))
    out = np.zeros((len(align), grid.n_bins, len(spikes)))
    for i, e in enumerate(edges):
        for u, times in enumerate(spikes):
            out[i, :, u] = np.histogram(times[times < e[-1]], bins=e)[0]
    return out


# ------------------------------------------------------------------------------------------ counts
def test_known_rates_give_exact_counts_per_bin(ragged):
    ds = read_nwb(ragged, window=(0.0, 0.6), bin_size=0.01)
    counts = ds.spike_count
    assert counts.dims == ("trial", "time", "unit")
    # unit 0: one spike every 20 ms in the first half of every other bin; unit 1: one spike per bin
    np.testing.assert_array_equal(counts.sel(unit=0).values, np.tile([1.0, 0.0], 30)[None].repeat(3, 0))
    np.testing.assert_array_equal(counts.sel(unit=1).values, np.ones((3, 60)))
    assert counts.dtype == np.float32 and counts.attrs["units"] == "1"


def test_binning_matches_histogram_on_synthetic_poisson_population():
    nwb = synthetic_nwbfile(n_units=12, n_trials=16, seed=3)
    ds = read_nwb(nwb, align_to="go_cue_time", window=(-0.5, 0.5), bin_size=0.01, clip_to_trial=False)
    spikes = [np.asarray(nwb.units.get_unit_spike_times(i)) for i in range(12)]
    expected = brute_force(spikes, np.asarray(nwb.trials["go_cue_time"].data), (-0.5, 0.5), 0.01)
    np.testing.assert_array_equal(ds.spike_count.values, expected)


def test_chunked_binning_equals_single_pass(monkeypatch):
    import neurokpflow.data.binning as binning

    rng = np.random.default_rng(0)
    rows = [np.sort(rng.uniform(0, 50, n)) for n in (0, 300, 1, 800, 50)]
    flat, bounds = np.concatenate(rows), np.r_[0, np.cumsum([r.size for r in rows])]
    grid, align = TimeGrid.from_window((-0.2, 0.3), 0.01), np.sort(rng.uniform(1, 49, 30))
    single = bin_spike_times(flat, bounds, grid, align)
    monkeypatch.setattr(binning, "_CHUNK_ELEMENTS", 2 * 30 * grid.n_bins)  # two units per pass
    np.testing.assert_array_equal(bin_spike_times(flat, bounds, grid, align), single)
    np.testing.assert_array_equal(single, brute_force(rows, align, (-0.2, 0.3), 0.01))


def test_synthetic_rates_match_ground_truth():
    nwb = synthetic_nwbfile(n_units=8, n_trials=200, n_conditions=2, seed=1)
    ds = read_nwb(nwb, align_to="go_cue_time", window=(0.0, 0.6), bin_size=0.05)
    rate = ds.spike_count.mean(["trial", "time"]) / 0.05
    tune = 0.5 * (1 + np.cos(ds.target_angle - ds.unit_preferred_angle))
    truth = (ds.unit_baseline_rate + ds.unit_movement_gain * tune).mean("trial")
    # Poisson: sd of the mean rate = sqrt(rate / total time); 5 sd tolerance
    sd = np.sqrt(truth / (200 * 0.6))
    assert (np.abs(rate - truth) < 5 * sd).all()


def test_bin_spike_times_counts_spike_on_edge_in_right_bin():
    grid = TimeGrid.from_window((0.0, 0.03), 0.01)
    counts = bin_spike_times(np.array([0.0, 0.01, 0.02, 0.03]), np.array([0, 4]), grid, np.array([0.0]))
    np.testing.assert_array_equal(counts[0, :, 0], [1, 1, 1])  # 0.03 is the excluded right edge


def test_overlapping_windows_count_a_spike_in_each_trial():
    grid = TimeGrid.from_window((0.0, 1.0), 0.5)
    counts = bin_spike_times(np.array([0.7]), np.array([0, 1]), grid, np.array([0.0, 0.5]))
    assert counts[0, 1, 0] == 1 and counts[1, 0, 0] == 1


# -------------------------------------------------------------------------------------- alignment
def test_alignment_to_event_shifts_exactly(ragged):
    by_start = read_nwb(ragged, window=(0.0, 0.6), bin_size=0.01, clip_to_trial=False)
    starts = np.array([0.0, 2.0, 4.0])
    shifted = read_nwb(ragged, align_to=starts + 0.1, window=(-0.1, 0.5), bin_size=0.01, clip_to_trial=False)
    np.testing.assert_array_equal(shifted.spike_count.values, by_start.spike_count.values)
    np.testing.assert_allclose(shifted.time.values, by_start.time.values - 0.1, atol=1e-12)
    np.testing.assert_allclose(shifted.align_time.values, starts + 0.1)


def test_alignment_to_column_and_events_table_agree(ragged):
    go = ragged.create_events_table(name="go_cue", description="go cues")
    for t in (0.4, 2.3, 4.2):
        go.add_row(timestamp=t)
    by_column = read_nwb(ragged, align_to="go_cue_time", window=(-0.3, 0.3), bin_size=0.02)
    by_event = read_nwb(ragged, align_to="go_cue", window=(-0.3, 0.3), bin_size=0.02)
    xr.testing.assert_equal(by_column.spike_count, by_event.spike_count)
    assert "time relative to go_cue_time" in by_column.time.attrs["long_name"]
    # a spike 15 ms after the go cue lands in the bin centred on +10 ms (bin [0, 20 ms))
    nwb = make_nwbfile([[0.415]], [{"start_time": 0.0, "stop_time": 1.0, "go_cue_time": 0.4}], ["go_cue_time"])
    one = read_nwb(nwb, align_to="go_cue_time", window=(-0.1, 0.1), bin_size=0.02).spike_count.squeeze()
    assert float(one.idxmax("time")) == pytest.approx(0.01)


def test_trial_without_event_is_kept_and_masked(ragged):
    go = ragged.create_events_table(name="go_cue", description="go cues")
    for t in (0.4, 4.2):  # none inside trial 1
        go.add_row(timestamp=t)
    ds = read_nwb(ragged, align_to="go_cue", window=(-0.2, 0.2), bin_size=0.02)
    assert ds.sizes["trial"] == 3
    assert not ds.valid.sel(trial=1).any() and np.isnan(ds.spike_count.sel(trial=1)).all()
    assert "[1]" in ds.attrs["trials_without_alignment"]


# ------------------------------------------------------------------------------ masks and coords
def test_ragged_trials_are_masked_and_nan_matches_valid(ragged):
    ds = read_nwb(ragged, bin_size=0.01)  # default window: covers the longest trial
    assert ds.attrs["window"] == [0.0, 1.0]
    np.testing.assert_array_equal(ds.valid.sum("time").values, [100, 60, 83])
    nan = np.isnan(ds.spike_count).any("unit")
    xr.testing.assert_equal(nan, ~ds.valid)
    # valid bins hold every spike of the trial (no bin straddles a stop time here)
    assert float(ds.spike_count.sel(trial=2, unit=1).sum()) == 83


def test_trial_and_unit_coordinates_survive(ragged):
    ds = read_nwb(ragged, window=(0.0, 0.5), bin_size=0.05)
    np.testing.assert_array_equal(ds.trial.values, [0, 1, 2])
    np.testing.assert_array_equal(ds.condition.values, [1, 2, 1])
    np.testing.assert_array_equal(ds.label.values, ["a", "b", "c"])
    np.testing.assert_allclose(ds.go_cue_time.values, [0.4, 2.3, 4.2])
    np.testing.assert_array_equal(ds.unit_quality.values, ["q0", "q1"])
    assert ds.time.attrs["units"] == "s" and ds.time.attrs["bounds"] == "time_bnds"
    np.testing.assert_allclose(ds.time_bnds.mean("nv"), ds.time)
    np.testing.assert_allclose(ds.time_bnds.diff("nv").squeeze(), 0.05)


def test_obs_intervals_mask_bins_per_unit():
    trials = [{"start_time": 0.0, "stop_time": 1.0}]
    nwb = make_nwbfile(
        [regular_spikes(100, 0, 1, 0.005)] * 2, trials, obs_intervals=[[[0.0, 1.0]], [[0.0, 0.3], [0.6, 1.0]]]
    )
    ds = read_nwb(nwb, window=(0.0, 1.0), bin_size=0.1)
    np.testing.assert_array_equal(ds.observed.sel(unit=1).squeeze().values, [1, 1, 1, 0, 0, 0, 1, 1, 1, 1])
    assert np.isnan(ds.spike_count.sel(unit=1)).sum() == 3 and not np.isnan(ds.spike_count.sel(unit=0)).any()


def test_selection_is_recorded_not_silent(ragged):
    ds = read_nwb(ragged, window=(0.0, 0.5), bin_size=0.05, trial_ids=[0, 2], unit_ids=[1])
    np.testing.assert_array_equal(ds.trial.values, [0, 2])
    np.testing.assert_array_equal(ds.unit.values, [1])
    assert "[1]" in ds.attrs["excluded_trials"] and "[0]" in ds.attrs["excluded_units"]


def test_ragged_trials_column_is_joined_not_dropped():
    nwb = make_nwbfile([[0.5]], epochs=[(0.0, 1.0)])
    ds = read_nwb(nwb, intervals="epochs", bin_size=0.1)
    assert ds.tags.values.tolist() == ["wake;rest"]


def test_provenance_attrs_and_netcdf_round_trip(tmp_path, ragged):
    ds = read_nwb(ragged, window=(0.0, 0.5), bin_size=0.05)
    for key in ("nwb_identifier", "session_start_time", "pynwb_version", "created_by", "history", "Conventions"):
        assert ds.attrs[key]
    assert ds.attrs["nwb_identifier"] == "test-file" and ds.attrs["bin_size"] == 0.05
    assert ds.spike_count.attrs["nwb_object_path"] == "/units"
    ds.to_netcdf(tmp_path / "out.nc", engine="h5netcdf")
    with xr.open_dataset(tmp_path / "out.nc", engine="h5netcdf") as back:
        xr.testing.assert_identical(back.load(), ds)


# ------------------------------------------------------------------------------------ TimeSeries
def series_file(ts, trials):
    nwb = make_nwbfile(None, trials)
    module = nwb.create_processing_module("behavior", "test series")
    module.add(ts)
    return nwb


def test_rate_series_applies_conversion_offset_and_mean():
    ramp = pynwb.TimeSeries(
        name="ramp", data=np.arange(5000, dtype=np.int32), unit="V", rate=1000.0, starting_time=0.0,
        conversion=0.5, offset=1.0, description="ramp",
    )
    nwb = series_file(ramp, [{"start_time": 1.0, "stop_time": 2.0}, {"start_time": 3.0, "stop_time": 4.0}])
    ds = read_nwb(nwb, series="ramp", window=(0.0, 1.0), bin_size=0.01)
    first = 1000 * np.array([1.0, 3.0])[:, None] + 10 * np.arange(100)[None, :]
    np.testing.assert_allclose(ds.ramp.values, 0.5 * (first + 4.5) + 1.0)
    assert ds.ramp.attrs["units"] == "V" and ds.ramp.attrs["resample_method"] == "mean"
    summed = read_nwb(nwb, series="ramp", window=(0.0, 1.0), bin_size=0.01, resample="sum")
    np.testing.assert_allclose(summed.ramp.values, 10 * ds.ramp.values)


def test_starting_time_offsets_the_clock():
    ts = pynwb.TimeSeries(name="step", data=np.r_[np.zeros(100), np.ones(100)], unit="a.u.", rate=100.0,
                          starting_time=0.5, description="step at 1.5 s")
    nwb = series_file(ts, [{"start_time": 1.0, "stop_time": 2.0}])
    ds = read_nwb(nwb, series="step", window=(0.0, 1.0), bin_size=0.1)
    np.testing.assert_array_equal(ds.step.squeeze().values, [0] * 5 + [1] * 5)


def test_electrical_series_channel_conversion_and_electrode_ids():
    nwb = make_nwbfile(None, [{"start_time": 0.1, "stop_time": 0.9}])
    device = nwb.create_device(name="probe")
    group = nwb.create_electrode_group(name="shank", description="s", location="M1", device=device)
    for electrode_id in (100, 101, 102, 103):
        nwb.add_electrode(id=electrode_id, group=group, location="M1")
    region = nwb.create_electrode_table_region([3, 1], "two channels")
    nwb.add_acquisition(pynwb.ecephys.ElectricalSeries(
        name="raw", data=np.ones((1000, 2), dtype=np.int16), electrodes=region, rate=1000.0,
        conversion=2.0, offset=0.5, channel_conversion=[1.0, 3.0],
    ))
    ds = read_nwb(nwb, series={"raw": "channel"}, window=(0.0, 0.5), bin_size=0.1)
    np.testing.assert_allclose(ds.raw.isel(trial=0).values, np.tile([2.5, 6.5], (5, 1)))
    np.testing.assert_array_equal(ds.channel_electrode_id.values, [103, 101])


def test_timestamp_series_with_gap_gives_nan_in_gap():
    stamps = np.r_[np.arange(0, 1, 0.001), np.arange(2, 3, 0.001)]
    ts = pynwb.TimeSeries(name="gappy", data=np.column_stack([stamps, -stamps]), unit="m", timestamps=stamps,
                          description="two channels with a gap")
    nwb = series_file(ts, [{"start_time": 0.5, "stop_time": 2.5}])
    for method in ("mean", "linear"):
        ds = read_nwb(nwb, series={"gappy": "axis"}, window=(0.0, 2.0), bin_size=0.1, resample=method)
        values = ds.gappy.sel(axis=0).squeeze()
        gap = (values.time > 0.5) & (values.time < 1.5)  # absolute 1 s .. 2 s
        assert np.isnan(values.where(gap, drop=True)).all(), method
        np.testing.assert_allclose(values.where(~gap, drop=True), 0.5 + values.time.where(~gap, drop=True), atol=1e-3)
        np.testing.assert_allclose(ds.gappy.sel(axis=1), -ds.gappy.sel(axis=0))


def test_series_is_read_only_inside_windows():
    reads = []

    class Recording(np.ndarray):
        def __getitem__(self, key):
            if isinstance(key, slice):
                reads.append(key.stop - key.start)
            return np.asarray(self).__getitem__(key)

    data = np.arange(100_000, dtype=float).view(Recording)
    ts = pynwb.TimeSeries(name="long", data=data, unit="a.u.", rate=1000.0, description="100 s")
    trials = [{"start_time": 10.0 * k, "stop_time": 10.0 * k + 1.0} for k in range(10)]
    read_nwb(series_file(ts, trials), series="long", window=(0.0, 1.0), bin_size=0.01)
    assert sum(reads) == 10 * 1000


def test_describe_lists_units_series_and_tables(tmp_path):
    path = synthetic_nwb(tmp_path / "s.nwb", n_units=3, n_trials=4)
    summary = describe_nwb(path)
    assert summary.units.n_units == 3 and summary.units.has_obs_intervals
    (velocity,) = summary.series
    assert velocity.path == "/processing/behavior/hand_velocity" and velocity.rate == 100.0
    assert velocity.conversion == pytest.approx(1e-3) and velocity.shape[1] == 2
    assert [t.name for t in summary.intervals] == ["trials"] and summary.intervals[0].n_rows == 4
    assert [t.name for t in summary.events] == ["go_cue"]
    text = str(summary)
    assert "hand_velocity" in text and "go_cue" in text and "3 units" in text


def test_file_read_lazily_matches_eager_and_is_not_modified(tmp_path):
    path = synthetic_nwb(tmp_path / "s.nwb", n_units=10, n_trials=12, seed=2)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    options = dict(align_to="go_cue_time", window=(-0.5, 0.5), bin_size=0.02, series={"hand_velocity": "axis"})
    eager = read_nwb(path, **options)
    with read_nwb(path, lazy=True, units_per_chunk=3, **options) as lazy:
        assert lazy.spike_count.chunks is not None and lazy.hand_velocity.chunks is not None
        xr.testing.assert_identical(lazy.compute(), eager)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    # velocity really is converted: 0.3 m/s peak in the target direction
    assert 0.25 < float(np.nanmax(np.hypot(eager.hand_velocity.sel(axis=0), eager.hand_velocity.sel(axis=1)))) <= 0.3


# ---------------------------------------------------------------------------------- bad input
def test_all_errors_share_the_base_class():
    for cls in (NWBFileError, MissingDataError, MissingTrialsError, EventAlignmentError, InvalidSpikeTimesError,
                InvalidTrialsError, BinningError, UnsupportedSeriesError):
        assert issubclass(cls, NWBLoadError)
    # the alignment error the reader raises belongs to the package-wide alignment family
    assert issubclass(EventAlignmentError, AlignmentError) and AlignmentError is neurokpflow.errors.AlignmentError


def test_path_that_is_not_hdf5(tmp_path):
    path = tmp_path / "notes.nwb"
    path.write_text("not an nwb file")
    with pytest.raises(NWBFileError, match="not an HDF5 file"):
        read_nwb(path)
    with pytest.raises(NWBFileError, match="does not exist"):
        describe_nwb(tmp_path / "missing.nwb")


def test_hdf5_that_is_not_nwb(tmp_path):
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(NWBFileError, match="not NWB"):
        describe_nwb(path)


def test_truncated_file(tmp_path):
    path = synthetic_nwb(tmp_path / "s.nwb", n_units=2, n_trials=2)
    cut = tmp_path / "cut.nwb"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(NWBFileError, match="truncated"):
        read_nwb(cut)


def test_no_units_and_no_series():
    nwb = make_nwbfile(None, [{"start_time": 0.0, "stop_time": 1.0}])
    with pytest.raises(MissingDataError, match="series"):
        read_nwb(nwb)
    with pytest.raises(MissingDataError, match="no Units"):
        read_nwb(nwb, units=True, series="x")


def test_missing_series_lists_what_exists():
    ts = pynwb.TimeSeries(name="speed", data=np.zeros(10), unit="m/s", rate=10.0, description="s")
    nwb = series_file(ts, [{"start_time": 0.0, "stop_time": 1.0}])
    with pytest.raises(MissingDataError, match="/processing/behavior/speed"):
        read_nwb(nwb, series="velocity")


@pytest.mark.parametrize("times, message", [([0.1, np.nan], "non-finite"), ([np.inf, 0.2], "non-finite")])
def test_bad_spike_times_name_the_unit(times, message):
    nwb = make_nwbfile([[0.1, 0.2], times], [{"start_time": 0.0, "stop_time": 1.0}])
    with pytest.raises(InvalidSpikeTimesError, match=f"unit id 1.*{message}|{message}.*unit id 1"):
        read_nwb(nwb, window=(0.0, 1.0), bin_size=0.1)


def test_trial_with_stop_before_start():
    nwb = make_nwbfile([[0.1]], [{"start_time": 0.0, "stop_time": 1.0}, {"start_time": 3.0, "stop_time": 2.0}])
    with pytest.raises(InvalidTrialsError, match=r"stop_time < start_time for ids \[1\]"):
        read_nwb(nwb, window=(0.0, 1.0), bin_size=0.1)


def test_overlapping_windows_when_non_overlapping_requested(ragged):
    read_nwb(ragged, window=(0.0, 1.0), bin_size=0.1, non_overlapping=True)  # trials 2 s apart: fine
    with pytest.raises(InvalidTrialsError, match="overlap"):
        read_nwb(ragged, window=(0.0, 2.5), bin_size=0.1, non_overlapping=True)


def test_alignment_column_that_does_not_exist(ragged):
    with pytest.raises(AlignmentError, match="go_cue_time"):
        read_nwb(ragged, align_to="move_onset_time", window=(0.0, 1.0), bin_size=0.1)
    with pytest.raises(AlignmentError, match="not times"):
        read_nwb(ragged, align_to="label", window=(0.0, 1.0), bin_size=0.1)
    with pytest.raises(AlignmentError, match="one absolute time per trial"):
        read_nwb(ragged, align_to=[0.0, 1.0], window=(0.0, 1.0), bin_size=0.1)


@pytest.mark.parametrize(
    "window, bin_size, message",
    [((0.0, 0.05), 0.1, "larger than the window"), ((0.0, 1.0), 0.3, "whole number"), ((1.0, 0.0), 0.1, "start < stop"),
     ((0.0, 1.0), -0.1, "positive")],
)
def test_bad_grid(ragged, window, bin_size, message):
    with pytest.raises(BinningError, match=message):
        read_nwb(ragged, window=window, bin_size=bin_size)


def test_file_without_trials_lists_interval_tables():
    nwb = make_nwbfile([[0.5]], epochs=[(0.0, 1.0)])
    with pytest.raises(MissingTrialsError, match=r"\['epochs'\].*intervals='epochs'.*intervals='session'"):
        read_nwb(nwb, intervals="trials", bin_size=0.1)
    ds = read_nwb(nwb, bin_size=0.1)  # no trials table: the whole session, and the other tables are named
    assert ds.attrs["alignment"] == "session" and ds.attrs["interval_tables"] == "['/intervals/epochs']"


def test_unknown_trial_and_unit_ids(ragged):
    with pytest.raises(MissingDataError, match=r"trial_ids \[7\]"):
        read_nwb(ragged, trial_ids=[7], window=(0.0, 1.0), bin_size=0.1)
    with pytest.raises(MissingDataError, match=r"unit_ids \[9\]"):
        read_nwb(ragged, unit_ids=[9], window=(0.0, 1.0), bin_size=0.1)


def test_three_dimensional_series_is_refused():
    ts = pynwb.TimeSeries(name="movie", data=np.zeros((10, 2, 2)), unit="a.u.", rate=10.0, description="m")
    nwb = series_file(ts, [{"start_time": 0.0, "stop_time": 1.0}])
    with pytest.raises(UnsupportedSeriesError, match="movie"):
        read_nwb(nwb, series="movie", window=(0.0, 1.0), bin_size=0.1)


def test_series_with_unsorted_timestamps_is_refused():
    ts = pynwb.TimeSeries(name="jumbled", data=np.zeros(3), unit="a.u.", timestamps=[0.0, 0.2, 0.1], description="j")
    with pytest.raises(UnsupportedSeriesError, match="ascending"):
        read_nwb(series_file(ts, [{"start_time": 0.0, "stop_time": 1.0}]), series="jumbled", window=(0, 1), bin_size=0.5)


def test_read_only_copy_is_never_written(tmp_path):
    path = synthetic_nwb(tmp_path / "s.nwb", n_units=2, n_trials=3)
    read_only = tmp_path / "ro.nwb"
    shutil.copy(path, read_only)
    read_only.chmod(0o444)
    ds = read_nwb(read_only, bin_size=0.05)
    assert ds.sizes["trial"] == 3
