"""Regression tests of the data layer's reading core: binning with empty units anywhere, a corrupt
spike_times_index, option validation before any computation, whole-session reads, objects found
anywhere NWB allows them, and unsupported schema versions."""
import datetime as dt

import h5py
import numpy as np
import pynwb
import pytest

from neurokpflow.data import (
    BinningError,
    InvalidSpikeTimesError,
    MissingTrialsError,
    NWBLoadError,
    read_nwb,
)

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


def units_file(spikes, trials=((0.0, 1.0), (1.0, 2.0))):
    """In-memory NWBFile with one Units row per spike array and a trials table."""
    nwb = pynwb.NWBFile(session_description="core", identifier="core", session_start_time=T0)
    for start, stop in trials:
        nwb.add_trial(start_time=start, stop_time=stop)
    nwb.units = pynwb.misc.Units(name="units", description="u", resolution=1e-5)
    for times in spikes:
        nwb.add_unit(spike_times=np.asarray(times, float))
    return nwb


def oracle(spikes, align, window, bin_size):
    """Independent count: np.searchsorted of the exact edges on each unit's sorted spike times."""
    edges = (np.asarray(align, float)[:, None] + window[0]) + np.arange(round((window[1] - window[0]) / bin_size) + 1) * bin_size
    out = np.zeros((edges.shape[0], edges.shape[1] - 1, len(spikes)))
    for u, times in enumerate(spikes):
        pos = np.searchsorted(np.sort(np.asarray(times, float)), edges, side="left")
        out[:, :, u] = np.diff(pos, axis=1)
    return out


@pytest.mark.parametrize("per_chunk", [2, 3, 64])
def test_last_unit_of_a_chunk_without_spikes_reads(per_chunk):
    # was: IndexError in check_spike_times when a chunk's last unit is empty
    spikes = [[0.1, 0.5], [0.2], [], [1.5], [0.3, 1.2], []]
    spikes = spikes[: per_chunk] if per_chunk < len(spikes) else spikes
    spikes[-1] = []
    nwb = units_file(spikes + [[0.7]] * (per_chunk == 2))
    ds = read_nwb(nwb, window=(0.0, 1.0), bin_size=0.25, units_per_chunk=per_chunk)
    truth = spikes + [[0.7]] * (per_chunk == 2)
    np.testing.assert_array_equal(ds.spike_count.values, oracle(truth, [0.0, 1.0], (0.0, 1.0), 0.25))


def test_first_unit_of_a_chunk_without_spikes_keeps_the_sort_check():
    # was: the empty first unit cleared the check of the chunk's last pair, so this unsorted unit was
    # binned silently wrong (one spike dropped, one spurious count); now it is sorted (a copy) and named
    spikes = [[], [0.2, 1.5, 0.9]]
    nwb = units_file(spikes)
    ds = read_nwb(nwb, window=(0.0, 1.0), bin_size=0.25)
    np.testing.assert_array_equal(ds.spike_count.values, oracle(spikes, [0.0, 1.0], (0.0, 1.0), 0.25))
    assert ds.attrs["units_with_unsorted_spike_times"].startswith("ids [1]:")
    assert list(nwb.units["spike_times"][1]) == [0.2, 1.5, 0.9]  # the input is untouched


def test_spike_times_index_past_the_end_is_a_typed_error(tmp_path):
    path = tmp_path / "bad_index.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(units_file([[0.1, 0.2], [0.3]]))
    with h5py.File(path, "a") as h5:
        h5["units/spike_times_index"][-1] = 7  # 3 spike times stored
    with pytest.raises(InvalidSpikeTimesError, match="spike_times_index ends at 7 but spike_times holds 3"):
        read_nwb(path, window=(0.0, 1.0), bin_size=0.25)


@pytest.mark.parametrize(
    "options, builtin, name",
    [
        ({"bin_size": 0}, ValueError, "bin_size"),
        ({"bin_size": float("nan")}, ValueError, "bin_size"),
        ({"bin_size": None}, TypeError, "bin_size"),
        ({"bin_size": "10ms"}, TypeError, "bin_size"),
        ({"bin_size": -0.01}, ValueError, "bin_size"),
        ({"bin_size": True}, TypeError, "bin_size"),
        ({"bin_size": 1e-320}, ValueError, "bin_size"),  # was OverflowError from the default window
        ({"window": (1.0, 0.0)}, ValueError, "window"),
        ({"window": "all"}, TypeError, "window"),
        ({"resample": "median"}, ValueError, "resample"),
        ({"units": 3}, TypeError, "units"),
        ({"intervals": 0}, TypeError, "intervals"),
        ({"trial_ids": [0.5]}, ValueError, "trial_ids"),
        ({"lazy": "yes"}, TypeError, "lazy"),
        ({"units_per_chunk": 0}, ValueError, "units_per_chunk"),
        ({"align_to": {"a": 1}}, TypeError, "align_to"),
        ({"series": 5}, TypeError, "series"),
    ],
)
def test_bad_options_raise_the_packages_error_naming_the_option(options, builtin, name):
    # was: raw ValueError / OverflowError / TypeError from the default window, computed before validation;
    # bin_size=-0.01 blamed the (default) window; resample='median' a builtin ValueError
    nwb = units_file([[0.1, 0.5], [1.2]])
    with pytest.raises(NWBLoadError) as info:
        read_nwb(nwb, **options)
    err = info.value
    assert isinstance(err, builtin) and str(err).startswith(f"{name}=") and "\n" not in str(err)


def test_bad_option_is_refused_before_the_file_is_opened(tmp_path):
    with pytest.raises(BinningError, match="bin_size=0: expected a positive"):
        read_nwb(tmp_path / "does_not_exist.nwb", bin_size=0)


def bare_file():
    return pynwb.NWBFile(session_description="bare", identifier="bare", session_start_time=T0)


def test_units_without_interval_table_read_as_the_whole_session():
    spikes = [[0.31, 2.0, 7.49], [], [5.0]]
    nwb = units_file(spikes, trials=())
    ds = read_nwb(nwb, bin_size=0.5)
    assert ds.attrs["alignment"] == ds.attrs["intervals"] == "session" and ds.sizes["trial"] == 1
    assert ds.attrs["window"] == [0.0, 7.5] and ds.time.values[0] == 0.25  # session clock, whole bins
    np.testing.assert_array_equal(ds.spike_count.values, oracle(spikes, [0.0], (0.0, 7.5), 0.5))
    assert float(ds.spike_count.sum()) == 4 and bool(ds.valid.all())
    lazy = read_nwb(nwb, bin_size=0.5, lazy=True)
    np.testing.assert_array_equal(lazy.spike_count.values, ds.spike_count.values)
    lazy.close()


def test_session_read_is_explicit_too_and_refuses_an_alignment_it_cannot_honour():
    nwb = units_file([[0.5, 3.2]])  # has trials; intervals='session' ignores them
    ds = read_nwb(nwb, intervals="session", window=(0.0, 4.0), bin_size=1.0)
    assert ds.spike_count.values[0, :, 0].tolist() == [1, 0, 0, 1]
    from neurokpflow.data import AlignmentError

    with pytest.raises(AlignmentError, match="align_to='go'.*intervals="):
        read_nwb(nwb, intervals="session", align_to="go")
    with pytest.raises(MissingTrialsError, match="intervals='session'"):
        read_nwb(nwb, intervals="blocks")


def test_series_only_file_reads_every_gridable_series_on_the_session_clock():
    nwb = bare_file()
    nwb.add_acquisition(pynwb.TimeSeries(name="speed", data=np.arange(8.0), unit="m/s", rate=4.0, starting_time=1.0,
                                         description="s"))
    nwb.add_acquisition(pynwb.TimeSeries(name="movie", data=np.zeros((3, 2, 2)), unit="a.u.", rate=1.0, description="m"))
    ds = read_nwb(nwb, bin_size=0.25)
    assert set(ds.data_vars) == {"valid", "time_bnds", "speed"} and "/acquisition/movie (shape (3, 2, 2))" in ds.attrs["series_not_loaded"]
    assert ds.attrs["window"] == [1.0, 3.0]
    np.testing.assert_allclose(ds.speed.values[0], np.arange(8.0))


def test_event_table_alone_is_counted_per_bin():
    nwb = bare_file()
    table = nwb.create_events_table(name="licks", description="lick times (s)")
    for t in (0.1, 0.2, 0.2, 1.6):
        table.add_row(timestamp=t)
    ds = read_nwb(nwb, bin_size=0.5)
    assert ds.licks_count.values[0].tolist() == [3, 0, 0, 1]


def test_units_and_interval_tables_found_outside_their_usual_place():
    nwb = bare_file()
    module = nwb.create_processing_module("ecephys", "sorted units")
    units = pynwb.misc.Units(name="sorted", description="u")
    units.add_unit(spike_times=[0.2, 1.2, 1.3])
    module.add(units)
    blocks = pynwb.epoch.TimeIntervals(name="blocks", description="task blocks")
    blocks.add_interval(start_time=1.0, stop_time=2.0)
    module.add(blocks)
    ds = read_nwb(nwb, intervals="blocks", window=(0.0, 1.0), bin_size=0.5)
    assert ds.spike_count.attrs["nwb_object_path"] == "/processing/ecephys/sorted"
    assert ds.spike_count.values[0, :, 0].tolist() == [2, 0] and ds.attrs["intervals"] == "/processing/ecephys/blocks"
    by_path = read_nwb(nwb, units="/processing/ecephys/sorted", intervals="/processing/ecephys/blocks",
                       window=(0.0, 1.0), bin_size=0.5)
    assert by_path.spike_count.identical(ds.spike_count)
    from neurokpflow.data import MissingDataError, describe_nwb

    with pytest.raises(MissingDataError, match=r"/processing/ecephys/sorted"):
        read_nwb(nwb, units="units")
    summary = describe_nwb(nwb)
    assert summary.units.path == "/processing/ecephys/sorted"
    assert [t.path for t in summary.intervals] == ["/processing/ecephys/blocks"]
    assert "whole session" in str(summary)


def test_long_id_lists_are_capped_in_messages():
    nwb = units_file([[0.1]], trials=[(float(i), float(i) + 0.5) for i in range(1700)])
    from neurokpflow.data import MissingDataError

    with pytest.raises(MissingDataError) as info:
        read_nwb(nwb, trial_ids=range(5000, 7000), window=(0.0, 0.5), bin_size=0.5)
    assert "2,000 trials, e.g. 5000, 5001, 5002 …" in str(info.value) and len(str(info.value)) < 200


def test_unsupported_schema_versions_are_named(tmp_path):
    from neurokpflow.data import UnsupportedSchemaError
    from neurokpflow.data._schema import unsupported_schema_error

    old = tmp_path / "nwb1.nwb"
    with h5py.File(old, "w") as h5:  # the root of an NWB 1.x file
        h5["nwb_version"] = "NWB-1.0.6"
        h5["identifier"] = "x"
    with pytest.raises(UnsupportedSchemaError, match=r"NWB 1\.0\.6 files are not supported; .*NeuroConv"):
        read_nwb(old)
    matnwb = tmp_path / "matnwb.nwb"
    with pynwb.NWBHDF5IO(str(matnwb), "w") as io:
        io.write(units_file([[0.1]]))
    assert unsupported_schema_error(matnwb) is None  # a current file is fine
    with h5py.File(matnwb, "a") as h5:
        h5.attrs["nwb_version"] = np.array([b"2.0b"])  # how early MatNWB stored its attributes
    with pytest.raises(UnsupportedSchemaError, match="early MatNWB") as info:
        read_nwb(matnwb)
    assert "truncated" not in str(info.value) and "\n" not in str(info.value)


def test_the_resample_rule_accepts_exactly_the_documented_methods():
    from neurokpflow.data._checks import READ_RULES
    from neurokpflow.data.series import RESAMPLING

    rule = READ_RULES["resample"]
    assert all(rule.accepts(m) for m in RESAMPLING) and not rule.accepts("median") and not rule.accepts(True)


def test_an_opening_error_never_dumps_a_builder(monkeypatch):
    from neurokpflow.data import NWBFileError, _schema

    dump = "pynwb could not read 'x.nwb': ConstructError: (root GroupBuilder {'attributes': {" + "'a': 1, " * 300 + "}})\nmore"
    monkeypatch.setattr(_schema, "_open", lambda source: (_ for _ in ()).throw(NWBFileError(dump)))
    with pytest.raises(NWBFileError) as info:
        read_nwb("x.nwb")
    assert "\n" not in str(info.value) and len(str(info.value)) <= 400 and "Builder" not in str(info.value)
    assert str(info.value).startswith("pynwb could not read 'x.nwb': ConstructError")


def test_roi_series_gets_roi_ids_columns_and_pixel_mask_centroids():
    from pynwb.ophys import RoiResponseSeries
    from pynwb.testing.mock.ophys import mock_ImagingPlane, mock_PlaneSegmentation

    nwb = bare_file()
    module = nwb.create_processing_module("ophys", "ophys")
    plane = mock_PlaneSegmentation(imaging_plane=mock_ImagingPlane(nwbfile=nwb), n_rois=0, nwbfile=None)
    plane.add_column("accepted", "curated")
    plane.add_roi(pixel_mask=[(1, 2, 1.0), (3, 2, 1.0)], accepted=True)
    plane.add_roi(pixel_mask=[(10, 0, 3.0), (14, 4, 1.0)], accepted=False)
    module.add(plane)
    region = plane.create_roi_table_region(region=[1, 0], description="both, reversed")
    module.add(RoiResponseSeries(name="dff", data=np.ones((5, 2)), rois=region, unit="n.a.", rate=2.0))
    ds = read_nwb(nwb, bin_size=0.5)
    assert ds.dff_channel_roi_id.values.tolist() == [1, 0]
    assert ds.dff_channel_roi_accepted.values.tolist() == [False, True]
    np.testing.assert_allclose(ds.dff_channel_roi_x.values, [11.0, 2.0])
    np.testing.assert_allclose(ds.dff_channel_roi_y.values, [1.0, 2.0])


def test_schema_check_leaves_a_file_objects_position_alone(tmp_path):
    from neurokpflow.data._schema import unsupported_schema_error

    path = tmp_path / "s.nwb"
    from neurokpflow.data import synthetic_nwb

    synthetic_nwb(path)
    with open(path, "rb") as handle:
        handle.seek(123)
        assert unsupported_schema_error(handle) is None
        assert handle.tell() == 123


def test_every_nwb_object_kind_is_read_by_the_reader_its_type_declares():
    import pynwb
    from pynwb.ecephys import ElectricalSeries
    from pynwb.ophys import RoiResponseSeries

    from neurokpflow.data import NWB_READERS, UnsupportedSeriesError, reader_for

    assert reader_for("Units") is NWB_READERS["units"]
    assert reader_for("EventsTable") is NWB_READERS["events"]
    # subclasses resolve through their MRO: every TimeSeries kind goes to the series reader
    for cls in (pynwb.TimeSeries, ElectricalSeries, RoiResponseSeries, pynwb.behavior.SpatialSeries):
        assert reader_for(cls) is NWB_READERS["series"]
    ts = pynwb.TimeSeries(name="x", data=[1.0, 2.0], unit="m", rate=10.0)
    assert reader_for(ts) is NWB_READERS["series"]
    with pytest.raises(UnsupportedSeriesError, match="no reader puts a"):
        reader_for("ImagingPlane")
    for entry in NWB_READERS.values():
        assert entry.capabilities["neurodata_types"] and entry.capabilities["variable"] and entry.description
