"""Putting any NWB ``TimeSeries`` on the trial-aligned grid.

Time base: ``timestamps`` when stored, else ``starting_time + i / rate``.  Physical values are
``data * conversion * channel_conversion + offset`` (applied here, to the slices read).  Only the
samples inside the requested windows are read from disk (overlapping or nearby windows are merged
into one read); stored timestamps are read in full (one float per sample).

Resampling methods (the grid's bins are ``[left, left + bin_size)``):

``"mean"``   mean of the samples whose time falls in the bin; NaN where a bin holds no sample
             (choose it when the series is sampled at least as fast as the bins);
``"sum"``    sum of those samples, NaN where a bin holds none (counts: binned spikes, events);
``"linear"`` linear interpolation at the bin centre between the two neighbouring samples; NaN
             outside the series or where those samples are more than 1.5 median sampling
             intervals apart (a gap).
"""
from __future__ import annotations

import numpy as np
import pynwb

from ._checks import READ_RULES, check_options
from .binning import TimeGrid
from .errors import UnsupportedSeriesError

RESAMPLING = {
    "mean": "mean of the samples whose time falls in [bin start, bin end); NaN where a bin holds none",
    "sum": "sum of the samples whose time falls in [bin start, bin end); NaN where a bin holds none",
    "linear": (
        "linear interpolation at the bin centre between the neighbouring samples; NaN outside the series "
        "and across gaps longer than 1.5 median sampling intervals"
    ),
}

#: windows closer than this many samples are read from disk in one slice.
_MERGE_GAP = 4096


class SeriesClock:
    """Sample times of a TimeSeries without reading its data."""

    def __init__(self, ts: pynwb.TimeSeries):
        self.n = int(ts.data.shape[0]) if hasattr(ts.data, "shape") else len(ts.data)
        self.timestamps: np.ndarray | None
        if ts.timestamps is not None:
            self.timestamps = np.asarray(ts.timestamps[:], dtype=float)
            self.rate = None
            self.start = None
            if not (np.diff(self.timestamps) >= 0).all() or not np.isfinite(self.timestamps).all():
                raise UnsupportedSeriesError(
                    f"TimeSeries {ts.name!r}: timestamps are not finite and ascending, as NWB requires; fix the file"
                )
            span = float(np.max(np.abs(self.timestamps[[0, -1]]))) if self.n else 1.0
            self._tol = 1e-9 * max(1.0, span)
        else:
            self.timestamps = None
            self.rate = float(ts.rate)
            self.start = float(ts.starting_time or 0.0)

    def index_of(self, t: np.ndarray) -> np.ndarray:
        """Number of samples whose time is < ``t`` (to within a millionth of a sample)."""
        t = np.asarray(t, dtype=float)
        if self.timestamps is None:
            assert self.start is not None and self.rate is not None  # set when timestamps is None
            pos = np.ceil((t - self.start) * self.rate - 1e-6)
            return np.clip(np.nan_to_num(pos, nan=0.0), 0, self.n).astype(np.int64)
        return np.searchsorted(self.timestamps, np.nan_to_num(t, nan=-np.inf) - self._tol, side="left")

    def times(self, lo: int, hi: int) -> np.ndarray:
        if self.timestamps is None:
            assert self.start is not None and self.rate is not None  # set when timestamps is None
            return self.start + np.arange(lo, hi) / self.rate
        return self.timestamps[lo:hi]

    def median_interval(self) -> float:
        if self.timestamps is None:
            assert self.rate is not None  # set when timestamps is None
            return 1.0 / self.rate
        return float(np.median(np.diff(self.timestamps))) if self.n > 1 else np.inf


def physical_scale(ts: pynwb.TimeSeries, n_channels: int) -> tuple[np.ndarray, float]:
    """(per-channel multiplier, offset) turning stored values into ``ts.unit``."""
    scale = np.full(n_channels, float(ts.conversion if ts.conversion is not None else 1.0))
    channel_conversion = getattr(ts, "channel_conversion", None)
    if channel_conversion is not None:
        scale = scale * np.asarray(channel_conversion[:], dtype=float)
    offset = float(getattr(ts, "offset", 0.0) or 0.0)
    return scale, offset


def _read_ranges(data, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Read ``data[lo_i:hi_i]`` for every i, merging nearby ranges into single disk reads."""
    out: list = [None] * lo.size
    order = np.argsort(lo, kind="stable")
    i = 0
    while i < order.size:
        block_lo, block_hi = lo[order[i]], hi[order[i]]
        j = i + 1
        while j < order.size and lo[order[j]] <= block_hi + _MERGE_GAP:
            block_hi = max(block_hi, hi[order[j]])
            j += 1
        block = np.asarray(data[block_lo:block_hi]) if block_hi > block_lo else None
        for m in order[i:j]:
            if hi[m] > lo[m]:
                assert block is not None  # hi[m] > lo[m] implies block_hi > block_lo
                out[m] = block[lo[m] - block_lo : hi[m] - block_lo]
        i = j
    return out


def series_on_grid(ts: pynwb.TimeSeries, grid: TimeGrid, align_times: np.ndarray, method: str) -> np.ndarray:
    """(n_trials, n_bins[, n_channels]) float64 values of ``ts`` on the grid, in ``ts.unit``."""
    check_options(READ_RULES, resample=method)
    shape = tuple(ts.data.shape) if hasattr(ts.data, "shape") else np.shape(ts.data)
    if len(shape) > 2:
        raise UnsupportedSeriesError(
            f"TimeSeries {ts.name!r} has shape {shape}; only (time,) and (time, channel) series can be put on "
            "the trial grid (reshape image / volume series to (time, pixel) first)"
        )
    n_channels = shape[1] if len(shape) == 2 else 1
    clock = SeriesClock(ts)
    edges = grid.absolute_edges(align_times)
    n_trials, nb = edges.shape[0], grid.n_bins
    out = np.full((n_trials, nb, n_channels), np.nan)
    if method == "linear":
        centres = edges[:, :-1] + 0.5 * grid.bin_size
        lo = np.maximum(clock.index_of(centres[:, 0]) - 1, 0)
        hi = np.minimum(clock.index_of(centres[:, -1]) + 2, clock.n)
    else:
        lo, hi = clock.index_of(edges[:, 0]), clock.index_of(edges[:, -1])
    lo = np.where(np.isfinite(edges[:, 0]), lo, 0)
    hi = np.maximum(np.where(np.isfinite(edges[:, 0]), hi, 0), lo)
    scale, offset = physical_scale(ts, n_channels)
    gap = 1.5 * clock.median_interval()
    for i, raw in enumerate(_read_ranges(ts.data, lo, hi)):
        if raw is None:
            continue
        values = raw.reshape(raw.shape[0], n_channels).astype(float) * scale + offset
        if method == "linear":
            out[i] = _interpolate(clock.times(lo[i], hi[i]), values, centres[i], gap)
        else:
            # bin of each sample: number of interior edges at or before it.
            bins = np.searchsorted(clock.index_of(edges[i, 1:-1]), np.arange(lo[i], hi[i]), side="right")
            out[i] = _reduce(values, bins, nb, method)
    return out if len(shape) == 2 else out[..., 0]


def _reduce(values: np.ndarray, bins: np.ndarray, nb: int, method: str) -> np.ndarray:
    result = np.full((nb, values.shape[1]), np.nan)
    starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
    sums = np.add.reduceat(values, starts, axis=0)
    if method == "mean":
        sums = sums / np.diff(np.r_[starts, bins.size])[:, None]
    result[bins[starts]] = sums
    return result


def _interpolate(t: np.ndarray, values: np.ndarray, centres: np.ndarray, gap: float) -> np.ndarray:
    j = np.searchsorted(t, centres, side="right")
    inside = (j > 0) & (j < t.size) | ((j == t.size) & (t.size > 0) & np.isclose(centres, t[-1]))
    jl = np.clip(j - 1, 0, t.size - 1)
    jr = np.clip(j, 0, t.size - 1)
    inside &= (t[jr] - t[jl]) <= gap
    result = np.full((centres.size, values.shape[1]), np.nan)
    span = np.where(t[jr] > t[jl], t[jr] - t[jl], 1.0)
    w = ((centres - t[jl]) / span)[:, None]
    interp = values[jl] * (1 - w) + values[jr] * w
    result[inside] = interp[inside]
    return result
