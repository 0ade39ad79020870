"""Tasks of the KPFlow paper: Memory-Pro and variants, its 4-task context mix, 3-bit flip-flop.

Durations are in steps; ``dt`` (default 0.02 s) is nominal and only sets the time coordinate.
Input noise is drawn afresh on every ``sample`` call (a fixed noisy training set, as in the
reference code, is ``task.sample(n, seed=s)`` indexed with ``batch[idx]``).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .base import Task, as_rng, assemble, check_batch_size, window
from .batch import Batch
from .scoring import score_final_channels_within, score_final_sign_match
from .._validation import Interval, Rule, check_params
from ..errors import InputError, InputTypeError

__all__ = ["KPFlowMemoryTask", "KPFlowContextMix", "FlipFlopTask", "KPFLOW_VARIANTS"]

#: task name -> (anti, delay)
KPFLOW_VARIANTS = {
    "kpflow_memory_pro": (False, False), "kpflow_memory_anti": (True, False),
    "kpflow_delay_pro": (False, True), "kpflow_delay_anti": (True, True),
}
_NOISE = 0.1 * math.sqrt(2)


_STEPS = Rule(Interval(numbers.Integral, 1, None), "a positive number of time steps")
_DT = Rule(Interval(low=0, closed="neither"), "the step length in seconds, e.g. dt=0.05")


def _check_steps(**steps):
    check_params(dict.fromkeys(steps, _STEPS), **steps)


def _check_dt(dt):
    check_params({"dt": _DT}, dt=dt)
    return float(dt)


class KPFlowMemoryTask(Task):
    """KPFlow Memory-Pro (after Driscoll) and its ``anti`` / ``delay`` variants.

    Inputs ``[fixation, cos θ, sin θ]``: fixation 1 during stimulus and memory, 0 during the
    response; the stimulus (amplitude 1) only during the stimulus period (the whole trial for
    the ``delay`` variants).  Targets ``[fixation, cos, sin]``: fixation copies the fixation
    input, ``(cos, sin)`` of the response angle (θ, or θ+π for anti) during the response.
    Mask: all ones.  Noise ``N(0, noise_std²)`` on every input channel.  Scored with
    :func:`score_final_channels_within` (``|Δcos|, |Δsin| < tolerance``, default π/10).
    """

    input_names = ("fixation", "cos", "sin")
    output_names = ("fixation", "cos", "sin")
    epoch_names = ("stim1", "delay1", "go1")

    def __init__(self, name="kpflow_memory_pro", *, T_stim=30, T_memory=30, T_response=30, noise_std=_NOISE,
                 dt=0.02, tolerance=0.1 * math.pi):
        if name not in KPFLOW_VARIANTS:
            raise InputError(f"unknown KPFlow memory task {name!r}; known: {sorted(KPFLOW_VARIANTS)}")
        super().__init__(T_stim=T_stim, T_memory=T_memory, T_response=T_response, noise_std=noise_std, dt=dt,
                         tolerance=tolerance)
        _check_steps(T_stim=T_stim, T_memory=T_memory, T_response=T_response)
        if noise_std < 0:
            raise InputError(f"noise_std must be >= 0, got {noise_std}")
        self.name = name
        self.anti, self.delay = KPFLOW_VARIANTS[name]
        self.T_stim, self.T_memory, self.T_response = int(T_stim), int(T_memory), int(T_response)
        self.noise_std, self.dt, self.tolerance = float(noise_std), _check_dt(dt), float(tolerance)
        self._freeze()

    @property
    def n_steps(self) -> int:
        return self.T_stim + self.T_memory + self.T_response

    def sample(self, batch_size: int, seed=None):
        """Random trials, θ ~ U[0, 2π); ``meta["condition"]`` is -1."""
        B = check_batch_size(batch_size)
        rng = as_rng(seed)
        return self._trials(rng.uniform(0, 2 * np.pi, B), np.full(B, -1), rng)

    def test_grid(self, n_angles: int = 16, noise: bool = False, seed=0):
        """``n_angles`` evenly spaced θ = 2πk/n (condition k), noise-free unless ``noise``."""
        if n_angles < 1:
            raise InputError(f"n_angles must be >= 1, got {n_angles}")
        k = np.arange(n_angles)
        return self._trials(2 * np.pi * k / n_angles, k, as_rng(seed) if noise else None)

    def _arrays(self, angle, noise_rng):
        """Inputs ``[B, T, 3]``, targets ``[B, T, 3]`` and epoch bounds of the memory period."""
        B, T = len(angle), self.n_steps
        go = self.T_stim + self.T_memory
        x = np.zeros((B, T, 3))
        x[:, :go, 0] = 1.0
        stim_steps = T if self.delay else self.T_stim
        x[:, :stim_steps, 1] = np.cos(angle)[:, None]
        x[:, :stim_steps, 2] = np.sin(angle)[:, None]
        if noise_rng is not None and self.noise_std > 0:
            x += noise_rng.normal(0.0, self.noise_std, x.shape)
        sign = -1.0 if self.anti else 1.0
        y = np.zeros((B, T, 3))
        y[:, :go, 0] = 1.0
        y[:, go:, 1] = sign * np.cos(angle)[:, None]
        y[:, go:, 2] = sign * np.sin(angle)[:, None]
        bounds = [("stim1", 0, self.T_stim), ("delay1", self.T_stim, go), ("go1", go, T)]
        return x, y, bounds

    def _meta(self, angle, condition, n_steps):
        response = angle + np.pi if self.anti else angle
        return {"condition": np.asarray(condition, dtype=np.int64), "stimulus_angle": np.mod(angle, 2 * np.pi),
                "response_angle": np.mod(response, 2 * np.pi), "n_steps": np.full(len(angle), n_steps)}

    def _trials(self, angle, condition, noise_rng):
        x, y, bounds = self._arrays(angle, noise_rng)
        return assemble(self.name, x, y, np.ones_like(y), bounds, self._meta(angle, condition, self.n_steps),
                        self.dt, self.input_names, self.output_names)

    def score(self, outputs, batch):
        return score_final_channels_within(outputs, batch, tolerance=self.tolerance)


class KPFlowContextMix(Task):
    """The KPFlow 4-task mix (Memory/Delay × Pro/Anti) with a context period.

    A ``T_context``-step context period is prepended: fixation input 1 and a one-hot task cue
    on inputs 3–6, present **only** during the context; the fixation target is 1 during it.
    Inputs 7-D ``[fixation, cos, sin, cue_memory_pro, cue_memory_anti, cue_delay_pro,
    cue_delay_anti]``, targets 3-D, T = 120 with the defaults.  Noise on all seven channels
    throughout the trial.  ``sample(B)`` splits B as equally as possible over the four tasks
    (the first ones get the remainder) and returns the trials in task blocks, in that order.
    """

    name = "kpflow_multitask"
    output_names = KPFlowMemoryTask.output_names

    def __init__(self, *, T_context=30, T_stim=30, T_memory=30, T_response=30, noise_std=_NOISE, dt=0.02,
                 tolerance=0.1 * math.pi):
        super().__init__(T_context=T_context, T_stim=T_stim, T_memory=T_memory, T_response=T_response,
                         noise_std=noise_std, dt=dt, tolerance=tolerance)
        _check_steps(T_context=T_context)
        self.T_context = int(T_context)
        self.subtasks = tuple(KPFlowMemoryTask(n, T_stim=T_stim, T_memory=T_memory, T_response=T_response,
                                               noise_std=noise_std, dt=dt, tolerance=tolerance)
                              for n in KPFLOW_VARIANTS)
        self.input_names = KPFlowMemoryTask.input_names + tuple(f"cue_{n[len('kpflow_'):]}" for n in KPFLOW_VARIANTS)
        self.dt, self.noise_std = float(dt), float(noise_std)
        self.epoch_names = ("context",) + KPFlowMemoryTask.epoch_names
        self._freeze()

    @property
    def task_names(self):
        return tuple(t.name for t in self.subtasks)

    def sample(self, batch_size: int, seed=None):
        B = check_batch_size(batch_size)
        rng = as_rng(seed)
        counts = [B // 4 + (i < B % 4) for i in range(4)]
        angles = [rng.uniform(0, 2 * np.pi, n) for n in counts]
        return Batch.concat([self._block(i, a, np.full(len(a), -1), rng) for i, a in enumerate(angles) if len(a)])

    def test_grid(self, n_angles: int = 16, noise: bool = False, seed=0):
        """Each task's ``n_angles`` evenly spaced angles, in task blocks."""
        if n_angles < 1:
            raise InputError(f"n_angles must be >= 1, got {n_angles}")
        rng = as_rng(seed) if noise else None
        k = np.arange(n_angles)
        return Batch.concat([self._block(i, 2 * np.pi * k / n_angles, k, rng) for i in range(4)])

    def _block(self, index, angle, condition, noise_rng):
        task = self.subtasks[index]
        x_mem, y_mem, bounds = task._arrays(angle, None)
        B, C = len(angle), self.T_context
        T = C + task.n_steps
        x = np.zeros((B, T, 7))
        x[:, :C, 0] = 1.0
        x[:, :C, 3 + index] = 1.0
        x[:, C:, :3] = x_mem
        if noise_rng is not None and self.noise_std > 0:
            x += noise_rng.normal(0.0, self.noise_std, x.shape)
        y = np.zeros((B, T, 3))
        y[:, :C, 0] = 1.0
        y[:, C:] = y_mem
        bounds = [("context", 0, C)] + [(n, s + C, e + C) for n, s, e in bounds]
        return assemble(task.name, x, y, np.ones_like(y), bounds, task._meta(angle, condition, T), self.dt,
                        self.input_names, self.output_names)

    def score(self, outputs, batch):
        return score_final_channels_within(outputs, batch, tolerance=self.subtasks[0].tolerance)


class FlipFlopTask(Task):
    """``n_bits``-bit flip-flop.

    Each input channel receives ±1 pulses: at every step a channel pulses with probability
    ``1 / spike_interval`` (≈ T/spike_interval = 4.5 pulses per channel per trial with the
    defaults) with a random sign.  The target of a channel holds the sign of its last pulse
    (0 before the first).  Mask all ones; Gaussian input noise ``noise_std``.  Scored with
    :func:`score_final_sign_match`.

    ``initial_pulse=True`` makes every channel pulse with a random sign at ``t = 0`` (the later
    pulses as above), so every target is ±1 from the first step on and the ideal network has
    exactly the ``2**n_bits`` memory states (no "no pulse yet" state at 0).  The signs are drawn
    after the pulse pattern and before the noise; with the default ``False`` no extra draw is
    made and trials are identical to those of earlier versions.
    """

    name = "flip_flop"
    epoch_names = ("hold",)

    def __init__(self, *, n_bits=3, T=90, spike_interval=20, noise_std=0.03 * math.sqrt(2), dt=0.02,
                 initial_pulse=False):
        super().__init__(n_bits=n_bits, T=T, spike_interval=spike_interval, noise_std=noise_std, dt=dt,
                         initial_pulse=initial_pulse)
        _check_steps(n_bits=n_bits, T=T)
        if not isinstance(initial_pulse, (bool, np.bool_)):
            raise InputTypeError(f"initial_pulse must be True or False, got {initial_pulse!r}")
        if not spike_interval >= 1:
            raise InputError(f"spike_interval (mean steps between pulses) must be >= 1, got {spike_interval}")
        if noise_std < 0:
            raise InputError(f"noise_std must be >= 0, got {noise_std}")
        self.n_bits, self.T, self.spike_interval = int(n_bits), int(T), float(spike_interval)
        self.noise_std, self.dt, self.initial_pulse = float(noise_std), _check_dt(dt), bool(initial_pulse)
        self.input_names = tuple(f"bit{i}" for i in range(self.n_bits))
        self.output_names = self.input_names
        self._freeze()

    def sample(self, batch_size: int, seed=None):
        B = check_batch_size(batch_size)
        return self._trials(as_rng(seed), B, np.full(B, -1), noise=True)

    def test_grid(self, n_trials: int = 64, noise: bool = False, seed=0):
        """A fixed set of ``n_trials`` pulse sequences (deterministic for a given ``seed``)."""
        return self._trials(as_rng(seed), check_batch_size(n_trials), np.arange(n_trials), noise=noise)

    def _trials(self, rng, B, condition, noise):
        shape = (B, self.T, self.n_bits)
        pulses = (rng.random(shape) < 1 / self.spike_interval) * rng.choice([-1.0, 1.0], shape)
        if self.initial_pulse:
            pulses[:, 0] = rng.choice([-1.0, 1.0], (B, self.n_bits))
        # target: sign of the most recent pulse, carried forward
        idx = np.where(pulses != 0, np.arange(self.T)[None, :, None], -1)
        last = np.maximum.accumulate(idx, axis=1)
        held = np.take_along_axis(pulses, np.maximum(last, 0), axis=1) * (last >= 0)
        x = pulses.copy()
        if noise and self.noise_std > 0:
            x += rng.normal(0.0, self.noise_std, shape)
        nan = np.full(B, np.nan)
        meta = {"condition": np.asarray(condition, dtype=np.int64), "stimulus_angle": nan, "response_angle": nan,
                "n_steps": np.full(B, self.T)}
        return assemble(self.name, x, held, np.ones(shape), [("hold", 0, self.T)], meta, self.dt,
                        self.input_names, self.output_names)

    def score(self, outputs, batch):
        return score_final_sign_match(outputs, batch)
