"""Per-trial scoring criteria.  Each returns a boolean array ``[B]`` (True = correct).

Every criterion reads only each trial's **final step** (``meta["n_steps"] - 1``, so padding is
ignored) — breaking fixation early is not punished, as in Yang 2019 / Driscoll 2024.
Outputs may be a torch tensor or numpy array ``[B, T, O]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from .batch import Batch
from .._validation import Interval, OptionsMixin, Rule
from ..errors import InputError

__all__ = [
    "final_step",
    "ResponseCriterion",
    "circular_distance",
    "score_response_angle_within",
    "score_final_channels_within",
    "score_final_sign_match",
]


def _numpy(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def final_step(values, batch: Batch) -> np.ndarray:
    """``values[b, n_steps[b] - 1]`` for every trial: ``[B, O]``."""
    values = _numpy(values)
    if values.shape[:2] != (batch.n_trials, batch.n_steps):
        raise InputError(f"outputs of shape {values.shape} do not match the batch "
                         f"({batch.n_trials} trials, {batch.n_steps} steps)")
    last = np.asarray(batch.meta["n_steps"]) - 1
    return values[np.arange(batch.n_trials), last]


def circular_distance(a, b) -> np.ndarray:
    """Absolute angular difference in radians, in ``[0, π]``."""
    d = np.mod(np.asarray(a) - np.asarray(b), 2 * np.pi)
    return np.minimum(d, 2 * np.pi - d)


def score_response_angle_within(outputs, batch: Batch, tolerance: float = 0.1 * math.pi,
                                fixation_threshold: float = 0.5) -> np.ndarray:
    """Driscoll/Yang criterion on outputs ``[fixation, sin θ, cos θ]``.

    At the final step the network *fixates* when ``output[fixation] > fixation_threshold``.
    A trial that needs no response (``meta["response_angle"]`` NaN) is correct when it
    fixates; a response trial is correct when it does not fixate and the decoded angle
    ``atan2(sin, cos)`` lies strictly within ``tolerance`` radians of the response angle
    (Driscoll 0.1π = 18°, Yang 0.2π = 36°).
    """
    y = final_step(outputs, batch)
    fixating = y[:, 0] > fixation_threshold
    target = np.asarray(batch.meta["response_angle"], dtype=np.float64)
    respond = ~np.isnan(target)
    error = circular_distance(np.arctan2(y[:, 1], y[:, 2]), np.where(respond, target, 0.0))
    return np.where(respond, ~fixating & (error < tolerance), fixating)


def score_final_channels_within(outputs, batch: Batch, tolerance: float = 0.1 * math.pi,
                                channels=slice(1, None)) -> np.ndarray:
    """KPFlow criterion: every selected output channel (default: all but fixation, channel 0)
    lies strictly within ``tolerance`` (absolute, per channel) of its target at the final step.
    Fixation is not checked.  For Memory-Pro this is ``|Δcos| < π/10 and |Δsin| < π/10``.
    """
    y = final_step(outputs, batch)[:, channels]
    target = final_step(batch.targets, batch)[:, channels]
    return np.all(np.abs(y - target) < tolerance, axis=1)


def score_final_sign_match(outputs, batch: Batch, zero_band: float = 0.5) -> np.ndarray:
    """Flip-flop criterion: at the final step every channel whose target is ±1 has the target's
    sign, and every channel whose target is 0 (no pulse yet) stays within ``±zero_band``."""
    y = final_step(outputs, batch)
    target = final_step(batch.targets, batch)
    ok = np.where(target == 0, np.abs(y) < zero_band, np.sign(y) == np.sign(target))
    return np.all(ok, axis=1)


@dataclass(frozen=True)
class ResponseCriterion(OptionsMixin):
    """When a response counts as correct (:func:`score_response_angle_within`), given to a task as keywords.

    ``tolerance``: the largest angular error (radians) of a correct response; ``fixation_threshold``:
    the fixation output must stay above it before the response and fall below it during it.
    """

    tolerance: float = 0.1 * math.pi
    fixation_threshold: float = 0.5

    RULES: ClassVar[dict] = {"tolerance": Rule(Interval(low=0, closed="neither")),
                             "fixation_threshold": Rule(Interval())}
