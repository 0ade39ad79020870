"""A "virtual animal": a trained ground-truth network drives Poisson neurons, written as NWB.

The demo's synthetic recording is made in three steps:

1. a *teacher* RNN (its own seed and size) is trained on a task until it performs it;
2. on repeated noisy trials of the task's test grid (one stimulus angle per condition) its hidden
   state ``h(t)`` drives ``n_neurons`` log-linear Poisson neurons,
   ``rate_i(t) = min(r_max, r0_i · exp(g · w_iᵀ h(t)))`` with ``w_i ~ N(0, I/H)`` and baseline
   rates ``r0_i ~ U(2, 12)`` Hz;
3. spike counts are drawn per time bin (bin = the task's ``dt``) and spike times uniformly inside
   each bin; the trials (with ``condition``, ``stimulus_angle`` and the epoch times) and the units
   are written to NWB.

Everything is seeded: the same seed gives the same file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["AnimalSettings", "simulate_spikes", "write_nwb", "spike_times"]

@dataclass(frozen=True)
class AnimalSettings:
    """Sizes of the virtual animal."""

    n_neurons: int = 60
    n_conditions: int = 8
    trials_per_condition: int = 12
    teacher_hidden: int = 48
    teacher_steps: int = 300
    teacher_lr: float = 3e-3
    gain: float = 2.0
    max_rate: float = 120.0  # Hz


def simulate_spikes(teacher, task, settings: AnimalSettings, seed: int) -> xr.Dataset:
    """Poisson population driven by ``teacher`` on noisy test-grid trials.

    Returns an ``xarray.Dataset`` in the shared layout: ``rate`` (Hz) and ``spike_count`` with dims
    ("trial", "time", "unit"), ``time`` = bin centres in seconds from trial start, per-trial
    coordinates ``condition`` (angle index k, angle 2πk/n), ``stimulus_angle`` and the epoch
    boundaries in seconds (``fix1_start_time`` ...).
    """
    from ..tasks import Batch
    from .recording import bin_centres, record

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    grids = [task.test_grid(n_angles=settings.n_conditions, modalities=(1,), noise=True, seed=int(seed) * 1000 + r)
             for r in range(settings.trials_per_condition)]
    batch = Batch.concat(grids)
    hidden = record(teacher, batch)["hidden"].values  # (trial, time, H)
    H = hidden.shape[-1]
    weights = rng.normal(0.0, 1.0 / np.sqrt(H), size=(H, settings.n_neurons))
    baseline = rng.uniform(2.0, 12.0, size=settings.n_neurons)
    rate = np.minimum(settings.max_rate, baseline * np.exp(settings.gain * hidden @ weights))
    dt = batch.dt
    counts = rng.poisson(rate * dt)
    meta = batch.meta
    coords = {
        "trial": np.arange(batch.n_trials),
        "time": ("time", bin_centres(batch), {"units": "s", "long_name": "bin centre from trial start"}),
        "unit": np.arange(settings.n_neurons),
        "condition": ("trial", np.asarray(meta["condition"], dtype=np.int64)),
        "stimulus_angle": ("trial", np.asarray(meta["stimulus_angle"], dtype=np.float64), {"units": "rad"}),
    }
    for key in [k for k in meta if k.endswith("_start") or k.endswith("_stop")]:
        coords[key.replace("_start", "_start_time").replace("_stop", "_stop_time")] = (
            "trial", np.asarray(meta[key], dtype=np.float64) * dt, {"units": "s"})
    attrs = {"description": "virtual animal: Poisson neurons driven by a ground-truth RNN on MemoryPro",
             "bin_size": dt, "rate_model": "rate = min(max_rate, r0 * exp(gain * w.h))",
             "gain": settings.gain, "max_rate": settings.max_rate, "seed": int(seed)}
    return xr.Dataset({"rate": (("trial", "time", "unit"), rate, {"units": "Hz"}),
                       "spike_count": (("trial", "time", "unit"), counts.astype(np.int64))},
                      coords=coords, attrs=attrs)


#: seconds between the end of one trial and the start of the next in the written session
INTER_TRIAL = 0.5


def write_nwb(recording: xr.Dataset, path, seed: int):
    """Write the simulated population as NWB (atomic): a Units table of spike times and a trials
    table with ``condition``, ``stimulus_angle`` and the epoch times; trial ``i`` starts at
    ``i · (trial length + INTER_TRIAL)`` on the session clock."""
    from datetime import datetime, timezone
    from pathlib import Path

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.file import Subject
    from pynwb.misc import Units

    from .._version import __version__
    from .._io import atomic_write

    path = Path(path)
    dt = float(recording.attrs["bin_size"])
    counts = recording["spike_count"].values
    n_trials, n_bins, n_units = counts.shape
    period = n_bins * dt + INTER_TRIAL
    starts = np.arange(n_trials) * period
    nwb = NWBFile(
        session_description="virtual animal: Poisson population driven by a ground-truth RNN performing MemoryPro "
                            "(delayed reach to one of several directions)",
        identifier=f"neurokpflow-virtual-animal-seed-{seed}",
        session_start_time=datetime(2025, 1, 1, tzinfo=timezone.utc),
        source_script=f"neurokpflow {__version__} demo (seed {seed})", source_script_file_name="neurokpflow.cli",
        experiment_description="synthetic recording generated by the neurokpflow demo",
        keywords=["synthetic", "MemoryPro", "delayed reach", "Poisson"],
        subject=Subject(subject_id="virtual-animal", species="Homo sapiens", sex="U", age="P0D",
                        description="simulated population, not a real animal (age and species are placeholders)"))
    nwb.add_trial_column("condition", "stimulus direction index k (angle 2*pi*k/n_conditions)")
    nwb.add_trial_column("stimulus_angle", "stimulus direction (rad)")
    epochs = [str(c)[: -len("_start_time")] for c in recording.coords if str(c).endswith("_start_time")]
    for epoch in epochs:
        nwb.add_trial_column(f"{epoch}_time", f"onset of the {epoch} epoch (s, session clock)")
    for i in range(n_trials):
        row = {f"{e}_time": starts[i] + float(recording[f"{e}_start_time"][i]) for e in epochs}
        nwb.add_trial(start_time=starts[i], stop_time=starts[i] + n_bins * dt,
                      condition=int(recording["condition"][i]), stimulus_angle=float(recording["stimulus_angle"][i]),
                      **row)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    nwb.units = Units(name="units", description="simulated Poisson neurons", resolution=1e-4)
    for u, per_trial in enumerate(spike_times(counts, dt, rng)):
        times = np.concatenate([starts[i] + t for i, t in enumerate(per_trial)])
        nwb.units.add_unit(spike_times=np.round(times, 4), obs_intervals=[[0.0, starts[-1] + period]])
    def write(tmp):
        with NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)

    return atomic_write(path, write)


def spike_times(counts: np.ndarray, dt: float, rng) -> list:
    """Per unit, per trial: sorted spike times (s from trial start), uniform inside each bin."""
    n_trials, n_bins, n_units = counts.shape
    out = []
    for u in range(n_units):
        per_trial = []
        for tr in range(n_trials):
            bins = np.repeat(np.arange(n_bins), counts[tr, :, u])
            per_trial.append(np.sort((bins + rng.uniform(0, 1, bins.size)) * dt))
        out.append(per_trial)
    return out
