"""The trial-aligned time grid and fast spike binning.

Conventions
-----------
* A grid is ``n_bins`` half-open bins ``[left_k, left_k + bin_size)`` with
  ``left_k = window[0] + k * bin_size`` in seconds relative to the alignment event;
  the ``time`` coordinate holds bin **centres**.
* For trial ``i`` aligned at absolute session time ``a_i`` the absolute edges are
  ``a_i + window[0] + k * bin_size`` (exactly this expression, so every function here agrees on
  which bin a spike on an edge belongs to: the right-hand one, as in ``numpy.histogram`` except
  that the last edge is excluded too).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._checks import READ_RULES, check_options
from .errors import BinningError, InvalidSpikeTimesError

#: relative tolerance (in bins) when deciding that a window is a whole number of bins.
_GRID_TOL = 1e-6


@dataclass(frozen=True)
class TimeGrid:
    """A regular grid of ``n_bins`` bins of ``bin_size`` seconds starting ``start`` s after the event."""

    start: float
    bin_size: float
    n_bins: int

    @classmethod
    def from_window(cls, window, bin_size) -> "TimeGrid":
        """Validate ``window=(before, after)`` (seconds relative to the event) and ``bin_size``."""
        if window is None:
            raise BinningError("window=None: expected (start, stop) in seconds relative to the event; e.g. window=(-0.5, 1.0)")
        check_options(READ_RULES, bin_size=bin_size, window=window)
        (w0, w1), bs = (float(w) for w in window), float(bin_size)
        length = w1 - w0
        if bs > length * (1 + _GRID_TOL):
            raise BinningError(
                f"bin_size={bs} s is larger than the window {window!r} ({length:g} s long); "
                "use a smaller bin_size or a wider window"
            )
        n = length / bs
        n_int = round(n)
        if abs(n - n_int) > _GRID_TOL * max(1.0, n):
            raise BinningError(
                f"window {window!r} is {length:g} s long, not a whole number of {bs:g} s bins ({n:.4f}); "
                f"use window=({w0:g}, {w0 + math.ceil(n) * bs:g}) or a bin_size that divides the window"
            )
        return cls(start=w0, bin_size=bs, n_bins=int(n_int))

    @property
    def lefts(self) -> np.ndarray:
        return self.start + np.arange(self.n_bins) * self.bin_size

    @property
    def centres(self) -> np.ndarray:
        return self.lefts + 0.5 * self.bin_size

    @property
    def bounds(self) -> np.ndarray:
        """(n_bins, 2) CF cell bounds ``[left, right]``."""
        lefts = self.lefts
        return np.stack([lefts, self.start + np.arange(1, self.n_bins + 1) * self.bin_size], axis=1)

    @property
    def stop(self) -> float:
        return self.start + self.n_bins * self.bin_size

    def absolute_edges(self, align_times: np.ndarray) -> np.ndarray:
        """(n_trials, n_bins + 1) absolute edges; NaN rows for trials without an alignment time."""
        return (np.asarray(align_times, float)[:, None] + self.start) + np.arange(self.n_bins + 1) * self.bin_size


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def check_unit_index(unit_bounds: np.ndarray, n_spikes: int) -> None:
    """Raise :class:`InvalidSpikeTimesError` unless ``unit_bounds`` (0, then ``spike_times_index``) is a
    non-decreasing index into ``n_spikes`` spike times."""
    bounds = np.asarray(unit_bounds, dtype=np.int64)
    steps = np.diff(bounds)
    if (steps < 0).any():
        unit = int(np.flatnonzero(steps < 0)[0])
        raise InvalidSpikeTimesError(
            f"Units: spike_times_index decreases at row {unit} ({int(bounds[unit])} -> {int(bounds[unit + 1])}); "
            "the file's Units table is corrupt, re-write it"
        )
    if bounds.size and (bounds[0] < 0 or bounds[-1] > n_spikes):
        raise InvalidSpikeTimesError(
            f"Units: spike_times_index ends at {int(bounds[-1])} but spike_times holds {n_spikes} values; "
            "the file's Units table is truncated or corrupt, re-write it"
        )


def check_spike_times(times: np.ndarray, unit_bounds: np.ndarray, unit_ids) -> np.ndarray:
    """Raise :class:`InvalidSpikeTimesError` naming the unit if a spike time is NaN/inf; return the positions
    of the units whose spike times are not ascending (empty units at any position are handled)."""
    finite = np.isfinite(times)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        unit = int(np.searchsorted(unit_bounds, bad, side="right") - 1)
        raise InvalidSpikeTimesError(
            f"Units: unit id {_plain(unit_ids[unit])} has a non-finite spike time ({float(times[bad])} at row position "
            f"{bad - unit_bounds[unit]}); remove NaN/inf spike times from the Units table"
        )
    if times.size < 2:
        return np.empty(0, dtype=np.int64)
    decreasing = np.diff(times) < 0
    # A new unit may start earlier than the last spike of the previous one: clear the pairs that straddle
    # a unit boundary.  Empty units repeat a boundary; boundaries at 0 or at the end straddle nothing.
    inner = np.asarray(unit_bounds[1:-1], dtype=np.int64)
    inner = inner[(inner > 0) & (inner < times.size)]
    decreasing[inner - 1] = False
    pairs = np.flatnonzero(decreasing)
    return np.unique(np.searchsorted(unit_bounds, pairs, side="right") - 1)


#: (trial x bin x unit) elements handled per vectorised pass of :func:`bin_spike_times`.
_CHUNK_ELEMENTS = 1 << 22


def bin_spike_times(times: np.ndarray, unit_bounds: np.ndarray, grid: TimeGrid, align_times: np.ndarray) -> np.ndarray:
    """Spike counts on a trial-aligned grid, vectorised over units, trials and bins.

    Parameters
    ----------
    times : (n_spikes,) float
        All spike times (s, session clock), unit after unit, each unit's row sorted ascending.
    unit_bounds : (n_units + 1,) int
        Row ``u`` is ``times[unit_bounds[u]:unit_bounds[u + 1]]`` (the NWB VectorIndex with a leading 0).
    grid : TimeGrid
    align_times : (n_trials,) float
        Absolute alignment time per trial; NaN gives an all-zero trial (mask it separately).

    Returns
    -------
    (n_trials, n_bins, n_units) int32 counts of spikes in ``[left edge, right edge)``.  A spike counts
    in every trial whose window holds it (overlapping windows count it more than once).
    Work and temporary memory are proportional to the spikes inside the windows plus the output.
    """
    times = np.asarray(times, dtype=float)
    unit_bounds = np.asarray(unit_bounds, dtype=np.int64)
    check_unit_index(unit_bounds, times.size)
    n_units = unit_bounds.size - 1
    edges = grid.absolute_edges(align_times)
    n_trials, nb = edges.shape[0], grid.n_bins
    present = np.isfinite(edges[:, 0])
    starts = np.where(present, edges[:, 0], np.inf)
    stops = np.where(present, edges[:, -1], np.inf)
    out = np.zeros((n_trials, nb, n_units), dtype=np.int32)
    per_pass = max(1, _CHUNK_ELEMENTS // max(1, n_trials * nb))
    for u0 in range(0, n_units, per_pass):
        u1 = min(n_units, u0 + per_pass)
        counts = _bin_units(times, unit_bounds[u0 : u1 + 1], starts, stops, grid.bin_size, nb)
        out[:, :, u0:u1] = counts.reshape(u1 - u0, n_trials, nb).transpose(1, 2, 0)
    return out


def _bin_units(times, unit_bounds, starts, stops, bin_size: float, nb: int) -> np.ndarray:
    """Flat (unit, trial, bin) counts for the units delimited by ``unit_bounds``."""
    n_units, n_trials = unit_bounds.size - 1, starts.size
    # Exact per-unit window boundaries (spike >= window start, spike < window stop).
    lo = np.empty((n_units, n_trials), dtype=np.int64)
    hi = np.empty((n_units, n_trials), dtype=np.int64)
    for u in range(n_units):
        a, b = unit_bounds[u], unit_bounds[u + 1]
        row = times[a:b]
        lo[u] = a + np.searchsorted(row, starts, side="left")
        hi[u] = a + np.searchsorted(row, stops, side="left")
    lengths = (hi - lo).ravel()
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(n_units * n_trials * nb, dtype=np.int64)
    # Gather the spikes of every (unit, trial) window without a Python loop.
    group_start = np.cumsum(lengths) - lengths
    spike_index = np.arange(total, dtype=np.int64) + np.repeat(lo.ravel() - group_start, lengths)
    group = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
    t = times[spike_index]
    first = starts[group % n_trials]
    k = np.floor((t - first) / bin_size).astype(np.int64)
    # Correct floor() rounding against the exact edge expression.
    k -= t < first + k * bin_size
    k += t >= first + (k + 1) * bin_size
    np.clip(k, 0, nb - 1, out=k)
    return np.bincount(group * nb + k, minlength=n_units * n_trials * nb)


def bins_inside(edges: np.ndarray, intervals_start: np.ndarray, intervals_stop: np.ndarray, tol: float) -> np.ndarray:
    """Bool mask over ``edges[..., :-1]``: bin lies entirely inside one of the intervals.

    ``intervals_*`` are 1-D, sorted by start and non-overlapping; ``edges`` is (..., n_bins + 1).
    """
    left, right = edges[..., :-1], edges[..., 1:]
    idx = np.searchsorted(intervals_start - tol, left, side="right") - 1
    ok = idx >= 0
    idx = np.clip(idx, 0, None)
    return ok & (right <= intervals_stop[idx] + tol) & np.isfinite(left)
