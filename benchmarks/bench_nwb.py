"""NWB reading benchmarks: binning vs numpy.histogram, loading and binning vs pynapple, lazy memory.

Three parts, chosen by name on the command line (default: all three), each measured in this run.

``histogram``: trial-aligned spike binning against a numpy.histogram-per-unit-per-trial baseline.
Workload: 10^7 spikes from 500 units (10 Hz Poisson over a 2000 s session),
1000 trials aligned to an event every 2 s, window (-0.5, 0.5) s, 10 ms bins -> a
(1000, 100, 500) array.  Printed, all measured in this run:

* ``bin_spike_times`` on in-memory spike times (the binning kernel);
* ``read_nwb`` end to end from an NWB file on disk (open, read Units, bin, build the Dataset);
* the baseline ``numpy.histogram(unit_spikes, bins=trial_edges)`` for every (unit, trial) pair,
  timed on a subset of units and extrapolated linearly to all 500 (stated in the output),
  after checking it gives the same counts on that subset;
* the ratios baseline / neurokpflow (goal >= 10x).

``pynapple``: one synthetic NWB file (pynwb, temporary folder) with a Units table of ``--nap-units``
(default 100) units and ``--nap-spikes`` (10^6) spikes over ``--nap-duration`` s; both libraries
load it from disk and count spikes in the same ``--nap-bin`` (10 ms) bins over the whole session:
``read_nwb(path, window=(0, T), bin_size)`` vs ``nap.load_file(path)["units"].count(bin_size, ep)``.
The counts are checked to be identical; pynapple's numba functions are compiled before timing
(its first-call time is printed separately).  Goal: neurokpflow / pynapple <= 1.

``memory``: a float32 TimeSeries larger than RAM/4 (``--ram-gb``, default the machine's RAM) is
written to an NWB file in ``--tmpdir``, read lazily (``read_nwb(..., lazy=True)``, trials tiling
the series) and reduced to its trial mean in a child process, whose peak RSS
(``VmHWM``, or ``resource.getrusage`` off Linux) is compared with RAM/8 (goal).  A few trials are checked against an
eager read.  The file is deleted afterwards.

Usage (from the repository root):  python benchmarks/bench_nwb.py [histogram] [pynapple] [memory]
        [--units 500] [--trials 1000] [--spikes 1e7] [--baseline-units 20] [--no-file] [--repeats 3]
        [--nap-units 100] [--nap-spikes 1e6] [--nap-duration 1000] [--nap-bin 0.01]
        [--ram-gb GB] [--tmpdir DIR]
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
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


def _new_file(description: str) -> pynwb.NWBFile:
    return pynwb.NWBFile(
        session_description=description, identifier="bench-nwb",
        session_start_time=dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
    )


def write_file(path: Path, flat: np.ndarray, bounds: np.ndarray, align: np.ndarray | None = None,
               trials: tuple | None = None) -> None:
    """Units written column-wise (flat spike times + index): add_unit per unit is far slower.

    Trials: ``align`` +- PERIOD / 2, or ``trials=(start, stop)``."""
    nwb = _new_file("binning benchmark")
    start, stop = trials if trials is not None else (align - PERIOD / 2, align + PERIOD / 2)
    for a, b in zip(start, stop):
        nwb.add_trial(start_time=float(a), stop_time=float(b))
    spike_times = VectorData(name="spike_times", description="spike times (s)", data=flat)
    index = VectorIndex(name="spike_times_index", data=bounds[1:], target=spike_times)
    nwb.units = pynwb.misc.Units(
        name="units", description="Poisson units", resolution=1e-5, id=np.arange(bounds.size - 1),
        columns=[spike_times, index],
    )
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def bench_histogram(args) -> None:
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



def bench_pynapple(args) -> None:
    import pynapple as nap

    duration, bin_size = float(args.nap_duration), float(args.nap_bin)
    rows, flat, bounds = make_spikes(args.nap_units, int(args.nap_spikes), duration, seed=1)
    n_bins = round(duration / bin_size)
    print(f"\n[pynapple] {flat.size:.3g} spikes, {args.nap_units} units, {duration:g} s session, "
          f"{bin_size * 1e3:g} ms bins -> {n_bins} bins x {args.nap_units} units, from one NWB file on disk")
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "units.nwb"
        write_file(path, flat, bounds, trials=(np.array([0.0]), np.array([duration])))

        def ours():
            return read_nwb(path, window=(0.0, duration), bin_size=bin_size).spike_count

        def theirs():
            group = nap.load_file(str(path))["units"]
            return group.count(bin_size, nap.IntervalSet(0.0, duration))

        t0 = time.perf_counter()
        theirs()
        first = time.perf_counter() - t0
        nap_s, counts_nap = best_time(theirs, args.repeats)
        ours_s, counts_ours = best_time(ours, args.repeats)
    same = np.array_equal(counts_ours.values[0], np.asarray(counts_nap.values))
    centres = np.allclose(counts_ours.time.values, np.asarray(counts_nap.index), rtol=0, atol=1e-9)
    assert same and centres, "neurokpflow and pynapple disagree on the counts"
    print(f"pynapple load_file -> TsGroup -> count:  {nap_s:8.3f} s  (best of {args.repeats}; first call incl. "
          f"numba compilation {first:.3f} s)")
    print(f"neurokpflow read_nwb -> spike_count:     {ours_s:8.3f} s  (best of {args.repeats})")
    print(f"counts identical in all {counts_ours.size} bins: {same}; same bin centres: {centres}")
    print(f"ratio neurokpflow / pynapple: {ours_s / nap_s:6.2f}x  (goal <= 1)")


def _physical_ram_gb() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def _write_big_series(path: Path, n_samples: int, n_channels: int, rate: float, trial_s: float) -> None:
    from hdmf.backends.hdf5 import H5DataIO
    from hdmf.data_utils import GenericDataChunkIterator

    class Noise(GenericDataChunkIterator):
        def _get_data(self, selection):
            rows = selection[0]
            rng = np.random.default_rng(rows.start)
            return rng.standard_normal((rows.stop - rows.start, n_channels), dtype=np.float32)[:, selection[1]]

        def _get_maxshape(self):
            return (n_samples, n_channels)

        def _get_dtype(self):
            return np.dtype(np.float32)

    nwb = _new_file("lazy-read memory benchmark")
    data = Noise(buffer_gb=0.25, chunk_shape=(int(rate) * 4, n_channels), display_progress=False)
    nwb.add_acquisition(pynwb.TimeSeries(name="big", data=H5DataIO(data), unit="V", rate=rate, starting_time=0.0))
    n_trials = int(n_samples / rate // trial_s)
    for k in range(n_trials):
        nwb.add_trial(start_time=k * trial_s, stop_time=(k + 1) * trial_s)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)


def _peak_rss() -> int:
    """Peak resident memory of this process in bytes: VmHWM (Linux; reset by exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory_child(path: str, trial_s: float, bin_size: float, chunk: int) -> None:
    """Run in a fresh process: lazy read + trial mean; prints peak RSS (JSON) on the last line."""
    before = _peak_rss()
    t0 = time.perf_counter()
    ds = read_nwb(path, series="big", units=False, window=(0.0, trial_s), bin_size=bin_size, lazy=True,
                  units_per_chunk=chunk)
    mean = ds["big"].mean("trial").compute()
    elapsed = time.perf_counter() - t0
    last = ds.sizes["trial"] - 1
    check = [0, last // 2, last]
    lazy_part = ds["big"].isel(trial=check).values
    ds.close()
    eager = read_nwb(path, series="big", units=False, window=(0.0, trial_s), bin_size=bin_size, trial_ids=check)
    agree = bool(np.array_equal(lazy_part, eager["big"].values)) and bool(np.isfinite(mean.values).all())
    peak = _peak_rss()
    print(json.dumps({"peak": peak, "after_imports": before, "seconds": elapsed, "trials": last + 1,
                      "agree": agree, "shape": list(ds["big"].shape)}))


def bench_memory(args) -> None:
    ram = (args.ram_gb or _physical_ram_gb()) * 2**30
    n_channels, rate, trial_s, bin_size = 32, 1000.0, 10.0, 0.1
    seconds = math.ceil(1.02 * ram / 4 / (4 * n_channels * rate) / trial_s) * trial_s
    n_samples = int(seconds * rate)
    size = n_samples * n_channels * 4
    print(f"\n[memory] RAM {ram / 2**30:.1f} GiB ({'given' if args.ram_gb else 'this machine'}): float32 series "
          f"({n_samples}, {n_channels}) = {size / 2**30:.2f} GiB (RAM/4 = {ram / 4 / 2**30:.2f} GiB), "
          f"{int(seconds // trial_s)} trials of {trial_s:g} s tiling it, {bin_size:g} s bins, resample='mean'")
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "big.nwb"
        t0 = time.perf_counter()
        _write_big_series(path, n_samples, n_channels, rate, trial_s)
        on_disk = path.stat().st_size
        print(f"(writing {on_disk / 2**30:.2f} GiB took {time.perf_counter() - t0:.0f} s; not part of any ratio)")
        child = subprocess.run(
            [sys.executable, __file__, "_memory_child", str(path), str(trial_s), str(bin_size), "16"],
            capture_output=True, text=True, check=False,
        )
    if child.returncode != 0:
        raise SystemExit(f"memory child failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak = result["peak"]
    print(f"lazy read_nwb + trial mean of a {result['shape']} series: {result['seconds']:.0f} s; "
          f"three trials equal to an eager read: {result['agree']}")
    print(f"peak RSS {peak / 2**30:.2f} GiB (of which {result['after_imports'] / 2**30:.2f} GiB after imports) = "
          f"{peak / on_disk:.3f} x the file, RAM/{ram / peak:.0f}  (goal: <= RAM/8 = {ram / 8 / 2**30:.2f} GiB: "
          f"{'met' if peak <= ram / 8 else 'NOT met'})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_memory_child":
        _memory_child(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = {"histogram": bench_histogram, "pynapple": bench_pynapple, "memory": bench_memory}
    parser.add_argument("parts", nargs="*", metavar="part", help=f"any of {list(parts)} (default: all)")
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--spikes", type=float, default=1e7)
    parser.add_argument("--baseline-units", type=int, default=20, help="units timed for the baseline (extrapolated)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-file", action="store_true", help="skip the end-to-end read_nwb timing")
    parser.add_argument("--nap-units", type=int, default=100)
    parser.add_argument("--nap-spikes", type=float, default=1e6)
    parser.add_argument("--nap-duration", type=float, default=1000.0)
    parser.add_argument("--nap-bin", type=float, default=0.01)
    parser.add_argument("--ram-gb", type=float, default=None, help="RAM figure for the memory part (default: this machine)")
    parser.add_argument("--tmpdir", default=None, help="folder for the temporary NWB files (default: the system's)")
    args = parser.parse_args()
    unknown = set(args.parts) - set(parts)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; choose from {list(parts)}")
    for part in dict.fromkeys(args.parts or parts):
        parts[part](args)


if __name__ == "__main__":
    main()
