"""Delay / Memory / React × Pro / Anti with the Driscoll, Shenoy & Sussillo (2024) I/O.

Inputs (5): ``fixation``, then ``(sin θ, cos θ)`` for modality 1 and modality 2 (stimulus
strength 1, only the stimulus modality is non-zero).  Outputs (3): ``fixation``, ``sin``,
``cos`` (linear readout).  Anti tasks respond at θ + π.  Rule inputs are added by
:func:`neurokpflow.tasks.mix` (one one-hot unit per task of the mix, on for the whole trial).

Epochs (durations in seconds, ``U(a, b)`` drawn continuously then rounded to steps):

=========  ==============================================================================
family     epochs
=========  ==============================================================================
memory     fix1 U(.3,.7) · stim1 U(.2,1.6) · delay1 U(.2,1.6) · go1 U(.3,.7)
delay      fix1 U(.3,.7) · stim1 U(.2,1.5) · go1 U(.3,.7); the stimulus stays on during go1
react      fix1 U(.5,2.5) · go1 U(.3,1.7); stimulus onset is the go cue, fixation input stays on
=========  ==============================================================================

The fixation input is 1 until the go cue (whole trial for react), the fixation target is
0.8 before the go cue and 0 after it, and the response target ``(sin, cos)`` of the response
angle is on from the go cue.  Cost mask: 0 for the first 100 ms, 1 until the go cue, 0 for a
100 ms grace period, 5 afterwards; ×2 on the fixation channel (values {0, 1, 2, 5, 10}).

Input noise (on every input channel, inside the trial): SD ``input_noise · sqrt(2 / α)`` with
``α = dt / tau`` (Yang's convention; Driscoll σ_x = 0.1, τ = 100 ms).
"""
from __future__ import annotations

import math

import numpy as np

from .base import Task, as_rng, assemble, check_batch_size, window
from .scoring import ResponseCriterion, score_response_angle_within
from ..errors import InputError

__all__ = ["DriscollTask", "DRISCOLL_TASKS", "DEFAULT_DURATIONS"]

#: duration ranges (s) per family, in epoch order
DEFAULT_DURATIONS = {
    "memory": {"fixation": (0.3, 0.7), "stimulus": (0.2, 1.6), "delay": (0.2, 1.6), "response": (0.3, 0.7)},
    "delay": {"fixation": (0.3, 0.7), "stimulus": (0.2, 1.5), "response": (0.3, 0.7)},
    "react": {"fixation": (0.5, 2.5), "response": (0.3, 1.7)},
}

#: task name -> (family, anti)
DRISCOLL_TASKS = {
    "memory_pro": ("memory", False), "memory_anti": ("memory", True),
    "delay_pro": ("delay", False), "delay_anti": ("delay", True),
    "react_pro": ("react", False), "react_anti": ("react", True),
}

_EPOCH = {"fixation": "fix1", "stimulus": "stim1", "delay": "delay1", "response": "go1"}
_MASK_EDGE = 0.1  # s: initial unmasked period and post-go grace period


class DriscollTask(Task):
    """One of memory_pro, memory_anti, delay_pro, delay_anti, react_pro, react_anti.

    Parameters
    ----------
    name : str
    dt : float, default 0.02
        Time step (s); must not exceed the shortest epoch duration.
    durations : dict, optional
        Overrides of the ``(low, high)`` duration ranges in seconds, keyed by
        ``"fixation"``, ``"stimulus"``, ``"delay"``, ``"response"`` (those of the family).
    sample_timing : {"per_batch", "per_trial"}, default "per_batch"
        Draw epoch durations and the stimulus modality once per batch (Yang/Driscoll) or per trial.
    modality : {None, 1, 2}
        Stimulus modality; ``None`` draws it at random.
    input_noise : float, default 0.1
        σ_x; the noise SD is ``σ_x·sqrt(2/α)`` with ``α = dt/tau``.  0 disables noise.
    tau : float, default 0.1
        Time constant (s) used only to scale the input noise.
    tolerance : float, default 0.1π
        Angular tolerance of :func:`score_response_angle_within`.
    fixation_threshold : float, default 0.5
    """

    input_names = ("fixation", "mod1_sin", "mod1_cos", "mod2_sin", "mod2_cos")
    output_names = ("fixation", "sin", "cos")

    def __init__(self, name, *, dt=0.02, durations=None, sample_timing="per_batch", modality=None,
                 input_noise=0.1, tau=0.1, **criterion):
        c = ResponseCriterion.resolve(None, criterion, "DriscollTask")
        tolerance, fixation_threshold = c.tolerance, c.fixation_threshold
        if name not in DRISCOLL_TASKS:
            raise InputError(f"unknown Driscoll task {name!r}; known: {sorted(DRISCOLL_TASKS)}")
        super().__init__(dt=dt, durations=durations, sample_timing=sample_timing, modality=modality,
                         input_noise=input_noise, tau=tau, tolerance=tolerance,
                         fixation_threshold=fixation_threshold)
        self.name = name
        self.family, self.anti = DRISCOLL_TASKS[name]
        if not (isinstance(dt, (int, float)) and dt > 0):
            raise InputError(f"dt must be a positive number of seconds, got {dt!r}")
        self.dt = float(dt)
        ranges = dict(DEFAULT_DURATIONS[self.family])
        unknown = set(durations or {}) - set(ranges)
        if unknown:
            raise InputError(f"durations for {name!r} accept the keys {list(ranges)}, got unknown {sorted(unknown)}")
        ranges.update({k: tuple(float(x) for x in v) for k, v in (durations or {}).items()})
        for key, (lo, hi) in ranges.items():
            if not 0 < lo <= hi:
                raise InputError(f"duration range {key}={lo, hi} must satisfy 0 < low <= high")
            if lo < dt:
                raise InputError(f"inconsistent dt/durations: the {key} epoch can last {lo} s, "
                                 f"shorter than dt = {dt} s; lower dt or raise durations[{key!r}]")
        self.durations = ranges
        if sample_timing not in ("per_batch", "per_trial"):
            raise InputError(f"sample_timing must be 'per_batch' or 'per_trial', got {sample_timing!r}")
        if modality not in (None, 1, 2):
            raise InputError(f"modality must be None (random), 1 or 2, got {modality!r}")
        if input_noise < 0 or tau <= 0:
            raise InputError(f"input_noise must be >= 0 and tau > 0, got {input_noise}, {tau}")
        self.sample_timing, self.modality = sample_timing, modality
        self.input_noise, self.tau = float(input_noise), float(tau)
        self.tolerance, self.fixation_threshold = float(tolerance), float(fixation_threshold)
        self.epoch_names = tuple(_EPOCH[k] for k in ranges)
        self._freeze()

    @property
    def noise_std(self) -> float:
        """SD of the input noise actually added: ``input_noise·sqrt(2/α)``, ``α = dt/tau``."""
        return self.input_noise * math.sqrt(2 * self.tau / self.dt)

    def max_steps(self) -> int:
        """Longest possible trial, in steps."""
        return int(sum(round(hi / self.dt) for _, hi in self.durations.values()))

    def _steps(self, seconds):
        return np.maximum(np.rint(np.asarray(seconds) / self.dt).astype(np.int64), 1)

    def sample(self, batch_size: int, seed=None):
        """Random trials: angles ``U[0, 2π)`` per trial; ``meta["condition"]`` is -1."""
        B = check_batch_size(batch_size)
        rng = as_rng(seed)
        n_draw = 1 if self.sample_timing == "per_batch" else B
        durations = {k: np.broadcast_to(rng.uniform(lo, hi, n_draw), (B,)) for k, (lo, hi) in self.durations.items()}
        modality = np.broadcast_to(rng.integers(1, 3, n_draw), (B,)) if self.modality is None \
            else np.full(B, self.modality)
        angle = rng.uniform(0, 2 * np.pi, B)
        return self._trials(angle, modality, durations, np.full(B, -1), rng if self.input_noise > 0 else None)

    def test_grid(self, n_angles: int = 16, modalities=(1, 2), noise: bool = False, seed=0):
        """Deterministic trials: ``n_angles`` evenly spaced angles ``2πk/n`` × ``modalities``, each
        epoch at the midpoint of its duration range.  ``meta["condition"]`` is the angle index
        ``k`` (shared across modalities and between pro/anti).  Input noise only if ``noise``."""
        if n_angles < 1:
            raise InputError(f"n_angles must be >= 1, got {n_angles}")
        modalities = [int(m) for m in modalities]
        if not modalities or set(modalities) - {1, 2}:
            raise InputError(f"modalities must be a non-empty subset of (1, 2), got {modalities}")
        k = np.tile(np.arange(n_angles), len(modalities))
        modality = np.repeat(modalities, n_angles)
        B = len(k)
        durations = {key: np.full(B, (lo + hi) / 2) for key, (lo, hi) in self.durations.items()}
        rng = as_rng(seed) if noise and self.input_noise > 0 else None
        return self._trials(2 * np.pi * k / n_angles, modality, durations, k, rng)

    def _trials(self, angle, modality, durations, condition, noise_rng):
        B = len(angle)
        steps = {key: self._steps(d) for key, d in durations.items()}
        bounds, t0 = [], np.zeros(B, dtype=np.int64)
        for key, n in steps.items():
            bounds.append((_EPOCH[key], t0, t0 + n))
            t0 = t0 + n
        n_steps = t0
        T = int(n_steps.max())
        start = {name: s for name, s, _ in bounds}
        go = start["go1"]
        stim_on = start.get("stim1", go)  # react: the stimulus onset is the go cue
        stim_off = n_steps if self.family in ("delay", "react") else start["delay1"]
        fix_off = n_steps if self.family == "react" else go
        response = angle + np.pi if self.anti else angle

        x = np.zeros((B, T, 5))
        x[:, :, 0] = window(0, fix_off, T)
        stim = window(stim_on, stim_off, T)
        cols = 1 + 2 * (np.asarray(modality) - 1)
        rows = np.arange(B)
        x[rows, :, cols] = stim * np.sin(angle)[:, None]
        x[rows, :, cols + 1] = stim * np.cos(angle)[:, None]
        inside = window(0, n_steps, T)
        if noise_rng is not None:
            x += noise_rng.normal(0.0, self.noise_std, x.shape) * inside[..., None]

        after_go = window(go, n_steps, T)
        y = np.zeros((B, T, 3))
        y[:, :, 0] = 0.8 * window(0, go, T)
        y[:, :, 1] = after_go * np.sin(response)[:, None]
        y[:, :, 2] = after_go * np.cos(response)[:, None]

        edge = int(round(_MASK_EDGE / self.dt))
        m = window(edge, go, T) * 1.0 + window(go + edge, n_steps, T) * 5.0
        mask = np.repeat(m[..., None], 3, axis=2)
        mask[:, :, 0] *= 2

        meta = {"condition": np.asarray(condition, dtype=np.int64), "stimulus_angle": np.mod(angle, 2 * np.pi),
                "response_angle": np.mod(response, 2 * np.pi), "modality": np.asarray(modality, dtype=np.int64),
                "n_steps": n_steps}
        return assemble(self.name, x, y, mask, bounds, meta, self.dt, self.input_names, self.output_names)

    def score(self, outputs, batch):
        """:func:`score_response_angle_within` with this task's tolerance and fixation threshold."""
        return score_response_angle_within(outputs, batch, tolerance=self.tolerance,
                                           fixation_threshold=self.fixation_threshold)
