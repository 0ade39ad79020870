"""Turning numpy/torch/xarray inputs into matched, condition-averaged representations.

Layout conventions (shared with the rest of neurokpflow): recordings are ``(trial, time, unit)``
with a time coordinate in seconds and per-trial coordinates such as ``condition`` or ``target``;
condition-averaged data may instead carry a ``condition`` (or any other sample) dimension.
Two recordings are matched by coordinate *values*; plain arrays, which carry no coordinates,
are matched by position and must then have the same number of samples.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Hashable
from typing import Any, Sequence

import numpy as np
import torch
import xarray as xr

from ._result import AlignmentError, DegenerateInputError
from ..errors import InputError, InputTypeError, UnknownNameError

TRIAL_DIM, TIME_DIM, UNIT_DIM = "trial", "time", "unit"


@dataclass(frozen=True, eq=False)
class Representation:
    """Condition-averaged activity, shape ``(condition, time, unit)``, with the trials behind it.

    ``means`` is float64 and never shares memory with the caller's array. ``trials`` (optional)
    is ``(trial, time, unit)`` with NaN allowed for padding, and ``trial_condition[k]`` is the
    index into ``conditions`` of trial ``k``. ``has_coords`` is False for plain arrays.
    """

    means: torch.Tensor
    conditions: np.ndarray
    times: np.ndarray | None = None
    trials: torch.Tensor | None = None
    trial_condition: np.ndarray | None = None
    has_coords: bool = False
    from_matrix: bool = False

    @property
    def n_conditions(self) -> int:
        return self.means.shape[0]

    @property
    def n_times(self) -> int:
        return self.means.shape[1]

    @property
    def n_units(self) -> int:
        return self.means.shape[2]

    @property
    def has_trials(self) -> bool:
        return self.trials is not None

    def matrix(self) -> torch.Tensor:
        """Samples x units, samples ordered condition-major (all times of condition 0 first)."""
        return self.means.reshape(-1, self.n_units)

    def row_groups(self) -> np.ndarray:
        """Condition index of every row of :meth:`matrix` (equal values = same condition value)."""
        _, codes = np.unique(self.conditions, return_inverse=True)
        return np.repeat(codes.ravel(), self.n_times)

    def take_conditions(self, index: Sequence[int] | np.ndarray) -> "Representation":
        """Conditions in the given order; repeats allowed (their trials are repeated too)."""
        index = np.asarray(index, dtype=int)
        trials = trial_condition = None
        if self.trials is not None:
            picks = [np.flatnonzero(self.trial_condition == c) for c in index]
            trial_condition = np.concatenate([np.full(len(p), k) for k, p in enumerate(picks)])
            trials = self.trials[torch.as_tensor(np.concatenate(picks))]
        return replace(self, means=self.means[torch.as_tensor(index)], conditions=self.conditions[index],
                       trials=trials, trial_condition=trial_condition)

    def take_times(self, index: Sequence[int] | np.ndarray) -> "Representation":
        index_t = torch.as_tensor(np.asarray(index, dtype=int))
        return replace(self, means=self.means[:, index_t],
                       times=None if self.times is None else self.times[np.asarray(index, dtype=int)],
                       trials=None if self.trials is None else self.trials[:, index_t])

    def with_trials(self, trials: torch.Tensor, trial_condition: np.ndarray) -> "Representation":
        """A representation whose means are recomputed from the given trials."""
        means = condition_means(trials, trial_condition, self.n_conditions, self.conditions, self.times)
        return replace(self, means=means, trials=trials, trial_condition=np.asarray(trial_condition))


def condition_means(trials: torch.Tensor, trial_condition: np.ndarray, n_conditions: int,
                    conditions: np.ndarray | None = None, times: np.ndarray | None = None) -> torch.Tensor:
    """NaN-aware mean of trials within each condition; errors when a (condition, time) has no data.

    ``conditions`` (values) and ``times`` (seconds) only serve the error message, which names the
    empty cell by its coordinate values and the time window that every condition covers.
    """
    valid = ~torch.isnan(trials)
    index = torch.as_tensor(np.asarray(trial_condition, dtype=np.int64))
    shape = (n_conditions,) + tuple(trials.shape[1:])
    sums = torch.zeros(shape, dtype=trials.dtype).index_add_(0, index, torch.where(valid, trials, 0.0))
    counts = torch.zeros(shape, dtype=trials.dtype).index_add_(0, index, valid.to(trials.dtype))
    if bool((counts == 0).any()):
        raise DegenerateInputError(_empty_cell_message((counts == 0).any(-1).numpy(), conditions, times))
    return sums / counts


def _empty_cell_message(empty: np.ndarray, conditions: np.ndarray | None, times: np.ndarray | None) -> str:
    """One line naming an empty (condition, time) cell by value and the selection that avoids it:
    the longest run of time bins in which every condition has data."""
    cond, time = np.argwhere(empty)[0]
    cond_name = repr(conditions[cond].item() if hasattr(conditions[cond], "item") else conditions[cond]) \
        if conditions is not None else f"#{cond}"
    covered = ~empty.any(0)
    runs, start = [], None
    for t, ok in enumerate(list(np.asarray(covered)) + [False]):
        if ok and start is None:
            start = t
        elif not ok and start is not None:
            runs.append((start, t - 1))
            start = None
    where = f"time {times[time]:g} s" if times is not None else f"time bin #{time}"
    if not runs:
        return (f"condition {cond_name} has no valid (non-NaN) trial at {where}, and no time bin has data in every "
                "condition; drop the conditions with short trials (e.g. data.where(..., drop=True))")
    lo, hi = max(runs, key=lambda r: r[1] - r[0])
    fix = (f"data.sel(time=slice({times[lo]:g}, {times[hi]:g}))" if times is not None
           else f"data[:, {lo}:{hi + 1}] (time bins {lo}..{hi})")
    return (f"condition {cond_name} has no valid (non-NaN) trial at {where}; every condition has data in "
            f"{'times' if times is not None else 'bins'} {times[lo] if times is not None else lo:g}..."
            f"{times[hi] if times is not None else hi:g}: select them with {fix}")


def fold_means(rep: "Representation", n_folds: int, what: str = "this estimator") -> torch.Tensor:
    """Condition means of ``n_folds`` disjoint trial sets, shape ``(fold, condition * time, unit)``.

    Trial k of a condition (in stored order) goes to fold ``k % n_folds``, so the folds hold
    independent noise. A representation without trials (deterministic, e.g. a model) gives its means
    in every fold: no noise, nothing to correct.
    """
    if rep.trials is None:
        return rep.matrix()[None].expand(n_folds, -1, -1)
    assert rep.trial_condition is not None  # set together with trials
    fold = np.empty(len(rep.trial_condition), dtype=np.int64)
    for c in range(rep.n_conditions):
        members = np.flatnonzero(rep.trial_condition == c)
        if len(members) < n_folds:
            raise DegenerateInputError(
                f"{what} splits trials into {n_folds} folds, but condition {rep.conditions[c]!r} has "
                f"{len(members)} trial(s); pass n_folds={max(2, len(members))} or fewer")
        fold[members] = np.arange(len(members)) % n_folds
    groups = fold * rep.n_conditions + np.asarray(rep.trial_condition)          # (fold, condition) cells
    means = condition_means(rep.trials, groups, n_folds * rep.n_conditions,
                            np.tile(rep.conditions, n_folds), rep.times)
    return means.reshape(n_folds, rep.n_conditions * rep.n_times, rep.n_units)


def _as_numpy(obj: Any, name: str) -> np.ndarray:
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    arr = np.asarray(obj)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputTypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def _tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.tensor(np.array(arr, dtype=np.float64, copy=True))


def _check_finite(means: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(means).all()):
        raise DegenerateInputError(
            f"{name} contains NaN or inf; remove or impute them (padded trials are averaged NaN-aware "
            "only when given as an xarray object with a trial dimension)")


def _from_trials(values: np.ndarray, labels: np.ndarray, times, has_coords: bool, name: str) -> Representation:
    conditions, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    trials = _tensor(values)
    if bool(torch.isinf(trials).any()):
        raise DegenerateInputError(f"{name} contains inf")
    means = condition_means(trials, codes, len(conditions), conditions, times)
    keep_trials = np.bincount(codes).max() > 1 or bool(torch.isnan(trials).any())
    return Representation(means=means, conditions=conditions, times=times,
                          trials=trials if keep_trials else None,
                          trial_condition=codes if keep_trials else None, has_coords=has_coords)


def _pick_variable(ds: xr.Dataset, var: str | None, name: str) -> xr.DataArray:
    if var is not None:
        if var not in ds.data_vars:
            raise UnknownNameError(f"{name} has no variable {var!r}; variables: {list(ds.data_vars)}")
        return ds[var]
    candidates = [v for v in ds.data_vars if UNIT_DIM in ds[v].dims] or list(ds.data_vars)
    if len(candidates) != 1:
        raise InputError(f"{name} is a Dataset with variables {list(ds.data_vars)}; name the one to compare "
                         f"with var=... (e.g. var='hidden' or var='spike_count')")
    return ds[candidates[0]]


def _from_dataarray(da: xr.DataArray, condition: Hashable | None, unit_dim: str, name: str) -> Representation:
    if unit_dim not in da.dims:
        raise InputError(f"{name} has dims {da.dims}; it needs a {unit_dim!r} dimension (pass unit_dim=...)")
    sample_dims = [d for d in da.dims if d not in (unit_dim, TIME_DIM)]
    if len(sample_dims) != 1:
        raise InputError(
            f"{name} has dims {da.dims}; expected one sample dimension (e.g. 'trial' or 'condition') besides "
            f"{TIME_DIM!r} and {unit_dim!r}. Select or stack the others first; for checkpoints use along_training")
    sample = sample_dims[0]
    if condition is None:
        if sample == TRIAL_DIM and "condition" not in da.coords:
            raise InputError(f"{name} has a 'trial' dimension but no 'condition' coordinate; name the per-trial "
                             f"coordinate that defines conditions, e.g. condition='target'")
        condition = "condition" if "condition" in da.coords else sample
    if condition not in da.coords:
        raise UnknownNameError(f"{name} has no coordinate {condition!r}; coordinates: {list(da.coords)}")
    if da[condition].dims != (sample,):
        raise InputError(f"coordinate {condition!r} of {name} must lie along {sample!r}, has dims {da[condition].dims}")
    labels = np.asarray(da[condition].values)
    has_time = TIME_DIM in da.dims
    da = da.transpose(sample, *([TIME_DIM] if has_time else []), unit_dim)
    values = _as_numpy(da.values, name)
    if not has_time:
        values = values[:, None, :]
    times = np.asarray(da[TIME_DIM].values, dtype=float) if has_time else None
    return _from_trials(values, labels, times, True, name)


def as_representation(obj: Any, *, condition: Any = None, var: str | None = None,
                      unit_dim: str = UNIT_DIM, name: str = "input") -> Representation:
    """Convert one input to a :class:`Representation` (no alignment).

    Accepted: an xarray DataArray / Dataset (+ ``var``) with a ``unit`` dim and one sample dim
    (``trial`` with a per-trial ``condition`` coordinate, or ``condition``) and optionally ``time``;
    a 2-D array ``(sample, unit)``; a 3-D array ``(condition, time, unit)``, or ``(trial, time, unit)``
    when ``condition`` is an array of per-trial labels.
    """
    if isinstance(obj, Representation):
        return obj
    if isinstance(obj, xr.Dataset):
        obj = _pick_variable(obj, var, name)
    if isinstance(obj, xr.DataArray):
        if condition is not None and not isinstance(condition, str):
            raise InputTypeError(f"for xarray inputs condition must be a coordinate name, got {type(condition).__name__}")
        return _from_dataarray(obj, condition, unit_dim, name)
    arr = _as_numpy(obj, name)
    if arr.ndim == 3 and condition is not None:
        labels = np.asarray(condition)
        if labels.shape != (arr.shape[0],):
            raise InputError(f"condition labels for {name} must have shape ({arr.shape[0]},), got {labels.shape}")
        return _from_trials(arr, labels, None, False, name)
    if arr.ndim == 2:
        means = _tensor(arr)[:, None, :]
        from_matrix = True
    elif arr.ndim == 3:
        means, from_matrix = _tensor(arr), False
    else:
        raise InputError(f"{name} must be 2-D (sample, unit) or 3-D (condition, time, unit), got shape {arr.shape}")
    _check_finite(means, name)
    if means.shape[0] == 0 or means.shape[-1] == 0:
        raise DegenerateInputError(f"{name} is empty (shape {tuple(arr.shape)})")
    return Representation(means=means, conditions=np.arange(means.shape[0]), from_matrix=from_matrix)


def _per_side(value: Any, what: str) -> tuple[Any, Any]:
    if isinstance(value, tuple):
        if len(value) != 2:
            raise InputError(f"{what} given as a tuple must be a pair (first input, second input), got {value!r}")
        return value
    return value, value


def _time_tolerance(times: np.ndarray) -> float:
    step = np.median(np.diff(times)) if len(times) > 1 else 1.0
    return 1e-6 * abs(step) + 1e-12


def _match_times(a: Representation, b: Representation, time: str) -> tuple[Representation, Representation]:
    if a.times is None or b.times is None:
        if a.n_times != b.n_times:
            raise AlignmentError(f"the inputs have {a.n_times} and {b.n_times} time bins and no time coordinate "
                                 "on both sides to match them by value")
        return a, b
    ta, tb = a.times, b.times
    tol = _time_tolerance(tb)
    if time == "exact":
        if len(ta) != len(tb) or not np.allclose(ta, tb, rtol=0, atol=tol):
            raise AlignmentError(
                f"time coordinates differ (first: {len(ta)} bins {ta[:1]}..{ta[-1:]} s, second: {len(tb)} bins "
                f"{tb[:1]}..{tb[-1:]} s); pass time='intersect' to keep common bins or time='resample' to "
                "interpolate the first input onto the second's bins")
        return a, b
    if time == "intersect":
        dist = np.abs(ta[:, None] - tb[None, :])
        ia, ib = np.nonzero(dist <= tol)
        if len(ia) == 0:
            raise AlignmentError("time='intersect': the inputs share no time bin")
        return a.take_times(ia), b.take_times(ib)
    if time == "resample":
        inside = np.flatnonzero((tb >= ta.min() - tol) & (tb <= ta.max() + tol))
        if len(inside) == 0:
            raise AlignmentError("time='resample': the second input's times lie outside the first input's range")
        b = b.take_times(inside)
        assert b.times is not None  # take_times keeps the (non-None) times
        return _interpolate_times(a, b.times), b
    raise InputError(f"time must be 'exact', 'intersect' or 'resample', got {time!r}")


def _interpolate_times(rep: Representation, new_times: np.ndarray) -> Representation:
    """Linear interpolation along time of means and trials (NaN propagates to neighbouring bins)."""
    assert rep.times is not None  # only called on inputs with a time coordinate
    order = np.argsort(rep.times)
    old = rep.times[order]
    hi = np.clip(np.searchsorted(old, new_times, side="left"), 1, len(old) - 1) if len(old) > 1 else np.zeros(len(new_times), int)
    lo = np.maximum(hi - 1, 0)
    span = np.where(old[hi] > old[lo], old[hi] - old[lo], 1.0)
    w = torch.as_tensor(np.clip((new_times - old[lo]) / span, 0.0, 1.0))[None, :, None]
    lo_t, hi_t = torch.as_tensor(order[lo]), torch.as_tensor(order[hi])

    def interp(x: torch.Tensor) -> torch.Tensor:
        return x[:, lo_t] * (1 - w) + x[:, hi_t] * w

    return replace(rep, means=interp(rep.means), times=np.asarray(new_times, dtype=float),
                   trials=None if rep.trials is None else interp(rep.trials))


def align(first: Any, second: Any, *, condition: Any = None, var: Any = None, conditions: str = "exact",
          time: str = "exact", unit_dim: str = UNIT_DIM) -> tuple[Representation, Representation]:
    """Match two inputs sample by sample; unit counts may differ.

    Parameters
    ----------
    condition : per-trial coordinate defining conditions; a name for both or a pair
        ``(first_name, second_name)``, e.g. ``("condition", "target")``.
    var : Dataset variable to use; a name or a pair.
    conditions : ``"exact"`` (the sets of condition values must be equal; error otherwise) or
        ``"intersect"`` (keep the common values).
    time : ``"exact"`` (time values must agree), ``"intersect"`` (keep common bins) or ``"resample"``
        (interpolate the first input linearly onto the second's bins inside its range; the second
        input's bins outside that range are dropped).
    """
    cond_a, cond_b = _per_side(condition, "condition")
    var_a, var_b = _per_side(var, "var")
    a = as_representation(first, condition=cond_a, var=var_a, unit_dim=unit_dim, name="first input")
    b = as_representation(second, condition=cond_b, var=var_b, unit_dim=unit_dim, name="second input")
    if conditions not in ("exact", "intersect"):
        raise InputError(f"conditions must be 'exact' or 'intersect', got {conditions!r}")
    if not (a.has_coords and b.has_coords):
        if a.n_conditions != b.n_conditions:
            raise AlignmentError(
                f"the inputs have {a.n_conditions} and {b.n_conditions} samples/conditions; plain arrays are "
                "matched by position, so these counts must agree (or pass xarray objects with coordinates)")
    else:
        common = np.intersect1d(a.conditions, b.conditions)
        if conditions == "exact" and (len(common) != a.n_conditions or len(common) != b.n_conditions):
            raise AlignmentError(
                f"condition values differ: only in first {np.setdiff1d(a.conditions, common).tolist()}, only in "
                f"second {np.setdiff1d(b.conditions, common).tolist()}; pass conditions='intersect' to keep the "
                "common ones, or name the right coordinate with condition=(first, second)")
        if len(common) == 0:
            raise AlignmentError("the inputs share no condition value")
        a = a.take_conditions(np.searchsorted(a.conditions, common))
        b = b.take_conditions(np.searchsorted(b.conditions, common))
    return _match_times(a, b, time)
