"""A realistic synthetic recording: a cosine-tuned Poisson population in a delayed center-out task.

Each trial: fixation from ``start_time``; the target (one of ``n_conditions`` angles) appears at
``target_on_time`` = start + 0.3 s; after a random delay (0.4–0.8 s) the ``go_cue_time``; the reach
lasts 0.6–0.8 s until ``stop_time``; 0.25 s inter-trial intervals separate trials (so trials are
ragged).  Unit ``u`` fires as an inhomogeneous Poisson process with piecewise-constant rate (Hz)

    baseline_rate_u                                             outside the target/go epochs,
    baseline_rate_u + preparatory_gain_u · tuning_u(angle)      from target onset to the go cue,
    baseline_rate_u + movement_gain_u · tuning_u(angle)         from the go cue to stop_time,

with ``tuning_u(angle) = (1 + cos(angle − preferred_angle_u)) / 2``.  These ground-truth
parameters are columns of the Units table.  The file also has an ``EventsTable`` ``go_cue``, a
hand-velocity TimeSeries (100 Hz, stored as int16 with ``conversion`` = 1e-3 m/s) and a Subject.
"""
from __future__ import annotations

import datetime as _dt

import numpy as np
import pynwb
from pynwb.file import Subject

from ._nwbio import write_nwbfile
from ..errors import InputError
from .._validation import numpy_rng

TARGET_ON_DELAY = 0.3
INTER_TRIAL_INTERVAL = 0.25
SPIKE_RESOLUTION = 1.0 / 30000.0
BEHAVIOUR_RATE = 100.0


def tuning(angle, preferred_angle):
    """Cosine tuning in [0, 1]: ``(1 + cos(angle - preferred_angle)) / 2``."""
    return 0.5 * (1.0 + np.cos(np.asarray(angle) - np.asarray(preferred_angle)))


def _trials(rng, n_trials: int, n_conditions: int) -> dict:
    condition = rng.permutation(np.arange(n_trials) % n_conditions)
    delay = rng.uniform(0.4, 0.8, n_trials)
    reach = rng.uniform(0.6, 0.8, n_trials)
    duration = TARGET_ON_DELAY + delay + reach
    start = np.r_[0.0, np.cumsum(duration + INTER_TRIAL_INTERVAL)[:-1]] + INTER_TRIAL_INTERVAL
    target_on = start + TARGET_ON_DELAY
    go_cue = target_on + delay
    return {
        "start_time": start,
        "stop_time": go_cue + reach,
        "condition": condition.astype(np.int64),
        "target_angle": 2 * np.pi * condition / n_conditions,
        "target_on_time": target_on,
        "go_cue_time": go_cue,
    }


def _unit_spikes(rng, trials: dict, session_end: float, baseline, prep_gain, move_gain, preferred) -> np.ndarray:
    """Exact sampling of a piecewise-constant-rate Poisson process over the session."""
    tune = tuning(trials["target_angle"], preferred)
    bounds = np.column_stack([trials["target_on_time"], trials["go_cue_time"], trials["stop_time"]])
    extra = np.column_stack([prep_gain * tune, move_gain * tune])
    pieces = [(0.0, session_end, baseline)]
    for (a, b, c), (prep, move) in zip(bounds, extra):
        pieces += [(a, b, prep), (b, c, move)]
    spikes = []
    for lo, hi, rate in pieces:
        n = rng.poisson(rate * (hi - lo))
        spikes.append(rng.uniform(lo, hi, n))
    times = np.sort(np.concatenate(spikes))
    return np.round(times / SPIKE_RESOLUTION) * SPIKE_RESOLUTION


def _velocity(trials: dict, session_end: float) -> np.ndarray:
    """Bell-shaped reach speed profile after each go cue, in m/s, as (time, [x, y])."""
    t = np.arange(int(session_end * BEHAVIOUR_RATE)) / BEHAVIOUR_RATE
    velocity = np.zeros((t.size, 2))
    for go, stop, angle in zip(trials["go_cue_time"], trials["stop_time"], trials["target_angle"]):
        inside = (t >= go) & (t < stop)
        phase = (t[inside] - go) / (stop - go)
        speed = 0.3 * np.sin(np.pi * phase) ** 2
        velocity[inside] = speed[:, None] * np.array([np.cos(angle), np.sin(angle)])
    return velocity


def synthetic_nwbfile(
    *,
    n_units: int = 30,
    n_trials: int = 40,
    n_conditions: int = 4,
    seed: int = 0,
    baseline_rate: tuple[float, float] = (2.0, 15.0),
    preparatory_gain: tuple[float, float] = (0.0, 15.0),
    movement_gain: tuple[float, float] = (10.0, 40.0),
) -> pynwb.NWBFile:
    """Build the synthetic recording in memory (see the module docstring); same ``seed``, same file.

    ``baseline_rate``, ``preparatory_gain`` and ``movement_gain`` are (low, high) ranges in Hz from
    which each unit's parameter is drawn uniformly.
    """
    for name, value in (("n_units", n_units), ("n_trials", n_trials), ("n_conditions", n_conditions)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise InputError(f"{name}={value!r} must be a positive integer")
    rng = numpy_rng(seed)
    trials = _trials(rng, n_trials, n_conditions)
    session_end = float(trials["stop_time"][-1] + INTER_TRIAL_INTERVAL)
    nwbfile = pynwb.NWBFile(
        session_description=f"synthetic cosine-tuned Poisson population, delayed center-out task (seed {seed})",
        identifier=f"neurokpflow-synthetic-seed{seed}-u{n_units}-t{n_trials}-c{n_conditions}",
        session_start_time=_dt.datetime(2000, 1, 1, tzinfo=_dt.timezone.utc),
        experiment_description="simulated recording generated by neurokpflow.data.synthetic_nwb",
        subject=Subject(subject_id="synthetic", description="simulated Poisson population", sex="U", age="P0D/"),
    )
    nwbfile.add_trial_column("condition", "target index (0 .. n_conditions - 1)")
    nwbfile.add_trial_column("target_angle", "reach target direction (rad)")
    nwbfile.add_trial_column("target_on_time", "target onset (s)")
    nwbfile.add_trial_column("go_cue_time", "go cue (s)")
    for i in range(n_trials):
        nwbfile.add_trial(**{key: values[i] for key, values in trials.items()})

    units = pynwb.misc.Units(name="units", description="simulated units", resolution=SPIKE_RESOLUTION)
    nwbfile.units = units
    for column, description in (
        ("baseline_rate", "ground truth: rate outside the task epochs (Hz)"),
        ("preparatory_gain", "ground truth: extra rate at the preferred angle between target onset and go cue (Hz)"),
        ("movement_gain", "ground truth: extra rate at the preferred angle between go cue and stop_time (Hz)"),
        ("preferred_angle", "ground truth: preferred target angle (rad)"),
        ("quality", "sorting quality label"),
    ):
        units.add_column(column, description)
    params = {
        "baseline_rate": rng.uniform(*baseline_rate, n_units),
        "preparatory_gain": rng.uniform(*preparatory_gain, n_units),
        "movement_gain": rng.uniform(*movement_gain, n_units),
        "preferred_angle": rng.uniform(0, 2 * np.pi, n_units),
    }
    for u in range(n_units):
        spikes = _unit_spikes(
            rng, trials, session_end, params["baseline_rate"][u], params["preparatory_gain"][u],
            params["movement_gain"][u], params["preferred_angle"][u],
        )
        units.add_unit(
            spike_times=spikes, obs_intervals=[[0.0, session_end]], quality="good",
            **{key: float(values[u]) for key, values in params.items()},
        )

    go_cue = nwbfile.create_events_table(name="go_cue", description="go cue onsets (s)")
    for t in trials["go_cue_time"]:
        go_cue.add_row(timestamp=float(t))

    behavior = nwbfile.create_processing_module("behavior", "hand kinematics")
    behavior.add(
        pynwb.TimeSeries(
            name="hand_velocity",
            data=np.round(_velocity(trials, session_end) / 1e-3).astype(np.int16),
            unit="m/s",
            conversion=1e-3,
            rate=BEHAVIOUR_RATE,
            starting_time=0.0,
            description="hand velocity (x, y)",
        )
    )
    return nwbfile


def synthetic_nwb(path, *, overwrite: bool = False, **options):
    """Write :func:`synthetic_nwbfile` ``(**options)`` (``n_units``, ``n_trials``, ``n_conditions``,
    ``seed``, rate ranges) to ``path`` atomically; returns the path."""
    return write_nwbfile(synthetic_nwbfile(**options), path, overwrite=overwrite)
