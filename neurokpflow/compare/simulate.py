"""Simulated pairs of trial-level populations whose noise-free similarity is known.

Used to check that an estimator and its interval are calibrated (coverage of the noise-free truth):
two populations read out a shared low-dimensional latent condition structure with private
components, and every trial adds independent Gaussian noise. The truth of a measure is its value
on the noise-free condition means.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

__all__ = ["SimulatedPair", "simulate_pair"]


@dataclass(frozen=True)
class SimulatedPair:
    """``first``/``second``: (trial, time, unit) DataArrays with a per-trial ``condition`` coordinate;
    ``first_means``/``second_means``: the noise-free (condition, time, unit) means."""

    first: xr.DataArray
    second: xr.DataArray
    first_means: np.ndarray
    second_means: np.ndarray


def _trials(means: np.ndarray, n_trials: int, noise: float, rng: np.random.Generator) -> xr.DataArray:
    n_cond, n_time, n_units = means.shape
    labels = np.repeat(np.arange(n_cond), n_trials)
    values = means[labels] + noise * rng.standard_normal((len(labels), n_time, n_units))
    return xr.DataArray(values, dims=("trial", "time", "unit"),
                        coords={"condition": ("trial", labels), "time": 0.05 * (np.arange(n_time) + 0.5)})


def simulate_pair(rng: np.random.Generator, *, n_conditions: int = 8, n_trials: int = 16, n_times: int = 10,
                  units: tuple[int, int] = (20, 30), latent: int = 3, private: float = 0.6,
                  noise: float = 1.5) -> SimulatedPair:
    """Two populations over the same conditions.

    Condition means: a ``latent``-dim Gaussian structure (unit variance per dim) read out by random
    weights scaled to unit signal variance per unit, plus a private Gaussian part of SD ``private``
    per population. Trials add noise of SD ``noise`` per unit and bin (the default 1.5 makes the
    noise variance of a 16-trial mean about 14 % of the signal variance).
    """
    z = rng.standard_normal((n_conditions, n_times, latent))
    out = []
    for n_units in units:
        weights = rng.standard_normal((latent, n_units)) / np.sqrt(latent)
        means = z @ weights + private * rng.standard_normal((n_conditions, n_times, n_units))
        out.append(means)
    return SimulatedPair(_trials(out[0], n_trials, noise, rng), _trials(out[1], n_trials, noise, rng), out[0], out[1])
