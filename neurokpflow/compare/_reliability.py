"""Split halves, reliability and condition folds: the resampling pieces that predictivity and the
statistics share (kept below both so neither imports the other)."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._validation import numpy_rng
from ._inputs import Representation, as_representation
from ._result import DegenerateInputError

__all__ = ["spearman_brown", "condition_folds", "pearson_columns", "split_halves", "split_half_reliability"]


def spearman_brown(r: Any, n: float = 2.0) -> Any:
    """Spearman-Brown prophecy n r / (1 + (n - 1) r): reliability of n times as much data."""
    r = np.asarray(r, dtype=float)
    out = n * r / (1.0 + (n - 1.0) * r)
    return float(out) if out.ndim == 0 else out


def condition_folds(groups: np.ndarray, n_splits: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Test-row index sets of a K-fold split that keeps each condition (group) in one fold.

    ``n_splits=None`` uses min(5, number of conditions) folds (leave-one-condition-out below 5).
    """
    unique = np.unique(groups)
    if n_splits is None:
        n_splits = min(5, len(unique))
    if n_splits < 2:
        raise DegenerateInputError(f"cross-validation needs at least 2 folds / conditions, got {n_splits}")
    if len(unique) < n_splits:
        raise DegenerateInputError(f"{n_splits}-fold cross-validation over conditions needs >= {n_splits} distinct "
                                   f"conditions, got {len(unique)}; lower n_splits")
    order = rng.permutation(unique)
    return [np.flatnonzero(np.isin(groups, part)) for part in np.array_split(order, n_splits)]


def pearson_columns(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-column Pearson r; NaN where a column is constant (callers turn that into an error)."""
    pc, tc = pred - pred.mean(0), target - target.mean(0)
    return torch.sum(pc * tc, 0) / (torch.linalg.norm(pc, dim=0) * torch.linalg.norm(tc, dim=0))


def split_halves(rep: Representation, rng: np.random.Generator) -> tuple[Representation, Representation]:
    """Random split of every condition's trials into two halves (sizes differ by at most one)."""
    if rep.trials is None:
        raise DegenerateInputError("split halves need trial-level data: an xarray input with a 'trial' dimension "
                                   "and at least 2 trials per condition")
    halves: tuple[tuple[list[np.ndarray], list[np.ndarray]], ...] = ([], []), ([], [])  # (trials, codes) per half
    for c in range(rep.n_conditions):
        members = rng.permutation(np.flatnonzero(rep.trial_condition == c))
        if len(members) < 2:
            raise DegenerateInputError(f"condition {rep.conditions[c]!r} has {len(members)} trial(s); split halves "
                                       "need at least 2 per condition")
        for h, part in enumerate((members[: len(members) // 2], members[len(members) // 2:])):
            halves[h][0].append(part)
            halves[h][1].append(np.full(len(part), c))
    first, second = (rep.with_trials(rep.trials[torch.as_tensor(np.concatenate(p))], np.concatenate(l))
                     for p, l in halves)
    return first, second


def _rep(data: Any, condition: Any, var: Any) -> Representation:
    return as_representation(data, condition=condition, var=var, name="data")


def split_half_reliability(data: Any, *, n_splits: int = 10, seed: int = 0, condition: Any = None,
                           var: str | None = None) -> np.ndarray:
    """Per-unit reliability of the trial-averaged response.

    For each of ``n_splits`` random halvings of every condition's trials, Pearson r across samples
    (condition x time) between the two half means, per unit; r is averaged over splits and then
    Spearman-Brown corrected with n = 2 (the reliability of the full-data average).
    """
    rep = _rep(data, condition, var)
    rng = numpy_rng(seed)
    rs = torch.stack([pearson_columns(h1.matrix(), h2.matrix()) for h1, h2 in
                      (split_halves(rep, rng) for _ in range(n_splits))]).mean(0).numpy()
    if np.isnan(rs).any():
        raise DegenerateInputError(f"unit(s) {np.flatnonzero(np.isnan(rs)).tolist()} are constant in a half; "
                                   "their reliability is undefined")
    return spearman_brown(rs, 2.0)
