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
    assert "window" not in str(err) or name == "window"


def test_bad_option_is_refused_before_the_file_is_opened(tmp_path):
    with pytest.raises(BinningError, match="bin_size=0: expected a positive"):
        read_nwb(tmp_path / "does_not_exist.nwb", bin_size=0)
