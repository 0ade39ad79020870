"""Trial-aligned spike binning: neurokpflow vs a numpy.histogram-per-unit-per-trial baseline.

Workload (issue target): 10^7 spikes from 500 units (10 Hz Poisson over a 2000 s session),
1000 trials aligned to an event every 2 s, window (-0.5, 0.5) s, 10 ms bins -> a
(1000, 100, 500) array.  Printed, all measured in this run:

* ``bin_spike_times`` on in-memory spike times (the binning kernel);
* ``read_nwb`` end to end from an NWB file on disk (open, read Units, bin, build the Dataset);
* the baseline ``numpy.histogram(unit_spikes, bins=trial_edges)`` for every (unit, trial) pair,
  timed on a subset of units and extrapolated linearly to all 500 (stated in the output),
  after checking it gives the same counts on that subset;
* the ratios baseline / neurokpflow (goal >= 10x).

Usage (from the repository root):  python benchmarks/bench_nwb.py [--units 500] [--trials 1000] [--spikes 1e7]
        [--baseline-units 20] [--no-file] [--repeats 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import numpy as np
import pynwb
from hdmf.common import VectorData, VectorIndex

from neurokpflow.data import TimeGrid, bin_spike_times, read_nwb

WINDOW, BIN_SIZE, PERIOD = (-0.5, 0.5), 0.01, 2.0


def make_spikes(n_units: int, n_spikes: int, duration: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    per_unit = rng.multinomial(n_spikes, np.full(n_units, 1.0 / n_units))
    rows = [np.sort(rng.uniform(0.0, duration, n)) for n in per_unit]
    return rows, np.concatenate(rows), np.r_[0, np.cumsum(per_unit)]


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, result = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def histogram_baseline(rows, edges):
    out = np.empty((edges.shape[0], edges.shape[1] - 1, len(rows)))
    for u, spikes in enumerate(rows):
        for i, trial_edges in enumerate(edges):
            counts, _ = np.histogram(spikes, bins=trial_edges)
            out[i, :, u] = counts
    return out


def write_file(path: Path, flat: np.ndarray, bounds: np.ndarray, align: np.ndarray) -> None:
    """Units written column-wise (flat spike times + index): add_unit per unit is far slower."""
    nwb = pynwb.NWBFile(
        session_description="binning benchmark", identifier="bench-nwb",
        session_start_time=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
    )
    for t in align:
        nwb.add_trial(start_time=t - PERIOD / 2, stop_time=t + PERIOD / 2)
    spike_times = VectorData(name="spike_times", description="spike times (s)", data=flat)
    index = VectorIndex(name="spike_times_index", data=bounds[1:], target=spike_times)
    nwb.units = pynwb.misc.Units(
        name="units", description="Poisson units", resolution=1e-5, id=np.arange(bounds.size - 1),
        columns=[spike_times, index],
    )
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--spikes", type=float, default=1e7)
    parser.add_argument("--baseline-units", type=int, default=20, help="units timed for the baseline (extrapolated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-file", action="store_true", help="skip the end-to-end read_nwb timing")
    args = parser.parse_args()

    duration = args.trials * PERIOD
    align = PERIOD * np.arange(args.trials) + PERIOD / 2
    grid = TimeGrid.from_window(WINDOW, BIN_SIZE)
    rows, flat, bounds = make_spikes(args.units, int(args.spikes), duration)
    print(
        f"workload: {flat.size:.3g} spikes, {args.units} units, {args.trials} trials, window {WINDOW} s, "
        f"{BIN_SIZE * 1e3:g} ms bins -> ({args.trials}, {grid.n_bins}, {args.units})"
    )

    kernel_s, counts = best_time(lambda: bin_spike_times(flat, bounds, grid, align), args.repeats)
    print(f"neurokpflow bin_spike_times (in memory):   {kernel_s:8.3f} s  (best of {args.repeats})")

    file_s = None
    if not args.no_file:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.nwb"
            t0 = time.perf_counter()
            write_file(path, flat, bounds, align)
            print(f"(writing the benchmark NWB file took {time.perf_counter() - t0:.1f} s; not part of any ratio)")
            file_s, ds = best_time(
                lambda: read_nwb(path, align_to=align, window=WINDOW, bin_size=BIN_SIZE, clip_to_trial=False),
                args.repeats,
            )
            assert np.array_equal(ds.spike_count.values, counts), "read_nwb disagrees with bin_spike_times"
        print(f"neurokpflow read_nwb (file -> Dataset):    {file_s:8.3f} s  (best of {args.repeats})")

    n_base = min(args.baseline_units, args.units)
    edges = grid.absolute_edges(align)
    base_s, base = best_time(lambda: histogram_baseline(rows[:n_base], edges), 1)
    assert np.array_equal(base, counts[:, :, :n_base]), "baseline disagrees with neurokpflow"
    scale = args.units / n_base
    base_total = base_s * scale
    print(
        f"baseline numpy.histogram per unit per trial: {base_s:8.3f} s for {n_base} units x {args.trials} trials "
        f"(counts identical); extrapolated x{scale:g} to {args.units} units: {base_total:8.1f} s"
    )
    print(f"ratio baseline / bin_spike_times: {base_total / kernel_s:8.1f}x  (goal >= 10x)")
    if file_s is not None:
        print(f"ratio baseline / read_nwb:        {base_total / file_s:8.1f}x  (goal >= 10x)")


if __name__ == "__main__":
    main()
