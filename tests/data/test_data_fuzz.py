"""Hypothesis fuzz of spike binning through read_nwb: empty units at random positions (chunk boundaries
included, with small chunks), unsorted and duplicate spikes, spikes exactly on bin edges, random windows
and bin sizes.  Every read either raises the package's typed error or equals a searchsorted oracle."""
import datetime as dt
from unittest import mock

import numpy as np
import pynwb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurokpflow.data import BinningError, InvalidSpikeTimesError, NWBLoadError, binning, read_nwb

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)


@st.composite
def recordings(draw):
    bin_size = draw(st.sampled_from([0.05, 0.1, 0.25, 0.3, 1 / 3]))
    n_bins = draw(st.integers(1, 8))
    w0 = draw(st.integers(-4, 4)) * bin_size
    window = (w0, w0 + n_bins * bin_size)
    if draw(st.booleans()) and draw(st.booleans()):  # sometimes a window that is not whole bins
        window = (w0, w0 + (n_bins + 0.5) * bin_size)
    starts = np.cumsum(draw(st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.7]), min_size=1, max_size=4)))
    stops = starts + np.asarray(draw(st.lists(st.sampled_from([0.1, 0.5, 1.0, 2.0]), min_size=starts.size,
                                               max_size=starts.size)))
    edges = (starts[:, None] + w0) + np.arange(n_bins + 1) * bin_size  # the grid's own edge expression
    on_edges = st.sampled_from(edges.ravel().tolist())
    anywhere = st.floats(float(edges.min()) - 1, float(edges.max()) + 1, allow_nan=False)
    units = []
    for _ in range(draw(st.integers(1, 9))):
        times = draw(st.lists(st.one_of(on_edges, anywhere), max_size=12)) if draw(st.integers(0, 3)) else []
        times = sorted(times)
        if times and draw(st.booleans()):
            times += [times[-1]] * draw(st.integers(1, 2))  # duplicate spikes
        if len(times) > 1 and draw(st.integers(0, 4)) == 0:
            times = draw(st.permutations(times))  # unsorted
        units.append(np.asarray(times, float))
    if draw(st.integers(0, 9)) == 0:
        u = draw(st.integers(0, len(units) - 1))
        units[u] = np.r_[units[u], np.nan]
    return dict(units=units, starts=starts, stops=stops, window=window, bin_size=bin_size,
                per_chunk=draw(st.integers(1, 4)), pass_elements=draw(st.sampled_from([1, 7, 1 << 22])),
                clip=draw(st.booleans()))


def oracle(units, align, window, bin_size):
    n = round((window[1] - window[0]) / bin_size)
    edges = (align[:, None] + window[0]) + np.arange(n + 1) * bin_size
    out = np.zeros((align.size, n, len(units)))
    for u, times in enumerate(units):
        out[:, :, u] = np.diff(np.searchsorted(np.sort(times), edges, side="left"), axis=1)
    return out, edges


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recordings())
def test_binning_equals_the_oracle_or_raises_a_typed_error(rec):
    nwb = pynwb.NWBFile(session_description="fuzz", identifier="fuzz", session_start_time=T0)
    for a, b in zip(rec["starts"], rec["stops"]):
        nwb.add_trial(start_time=float(a), stop_time=float(b))
    nwb.units = pynwb.misc.Units(name="units", description="u")
    for times in rec["units"]:
        nwb.add_unit(spike_times=times.copy())
    with mock.patch.object(binning, "_CHUNK_ELEMENTS", rec["pass_elements"]):
        try:
            ds = read_nwb(nwb, window=rec["window"], bin_size=rec["bin_size"], units_per_chunk=rec["per_chunk"],
                          clip_to_trial=rec["clip"])
        except NWBLoadError as err:
            has_nan = any(np.isnan(t).any() for t in rec["units"])
            n = (rec["window"][1] - rec["window"][0]) / rec["bin_size"]
            assert (isinstance(err, InvalidSpikeTimesError) and has_nan) or (
                isinstance(err, BinningError) and abs(n - round(n)) > 1e-6), repr(err)
            return
    assert not any(np.isnan(t).any() for t in rec["units"])
    expected, edges = oracle(rec["units"], rec["starts"], rec["window"], rec["bin_size"])
    valid = np.ones(expected.shape[:2], bool)
    if rec["clip"]:
        tol = 1e-6 * rec["bin_size"]
        valid = (edges[:, :-1] >= rec["starts"][:, None] - tol) & (edges[:, 1:] <= rec["stops"][:, None] + tol)
    counts = ds.spike_count.values
    np.testing.assert_array_equal(np.isnan(counts), np.broadcast_to(~valid[:, :, None], counts.shape))
    np.testing.assert_array_equal(counts[~np.isnan(counts)], expected[~np.isnan(counts)])
    for stored, times in zip(nwb.units["spike_times"][:], rec["units"]):  # the input is not mutated
        np.testing.assert_array_equal(stored, times)
