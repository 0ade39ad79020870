"""Statistics for every measure: split-half reliability and noise ceilings, bootstrap confidence
intervals, permutation nulls and cross-validated (held-out) scores."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ._inputs import Representation, align, as_representation
from ._measure import Measure, check_option
from ._registry import get_measure
from ._result import DegenerateInputError, Score
from .predictivity import condition_folds, pearson_columns, spearman_brown

__all__ = ["spearman_brown", "split_halves", "split_half_reliability", "noise_ceiling", "bootstrap",
           "permutation_test", "cross_validated", "BootstrapResult", "PermutationResult", "NoiseCeiling"]


def split_halves(rep: Representation, rng: np.random.Generator) -> tuple[Representation, Representation]:
    """Random split of every condition's trials into two halves (sizes differ by at most one)."""
    if rep.trials is None:
        raise DegenerateInputError("split halves need trial-level data: an xarray input with a 'trial' dimension "
                                   "and at least 2 trials per condition")
    halves = ([], []), ([], [])
    for c in range(rep.n_conditions):
        members = rng.permutation(np.flatnonzero(rep.trial_condition == c))
        if len(members) < 2:
            raise DegenerateInputError(f"condition {rep.conditions[c]!r} has {len(members)} trial(s); split halves "
                                       "need at least 2 per condition")
        for h, part in enumerate((members[: len(members) // 2], members[len(members) // 2:])):
            halves[h][0].append(part)
            halves[h][1].append(np.full(len(part), c))
    return tuple(rep.with_trials(rep.trials[torch.as_tensor(np.concatenate(p))], np.concatenate(l)) for p, l in halves)


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
    rng = np.random.default_rng(seed)
    rs = torch.stack([pearson_columns(h1.matrix(), h2.matrix()) for h1, h2 in
                      (split_halves(rep, rng) for _ in range(n_splits))]).mean(0).numpy()
    if np.isnan(rs).any():
        raise DegenerateInputError(f"unit(s) {np.flatnonzero(np.isnan(rs)).tolist()} are constant in a half; "
                                   "their reliability is undefined")
    return spearman_brown(rs, 2.0)


@dataclass(frozen=True)
class NoiseCeiling:
    """Measure-level noise ceiling of one recording.

    ``split_half`` is the measure between the two half-averages, averaged over splits; ``value``
    extrapolates it to the full data: Spearman-Brown (n = 2) for similarities,
    arccos(SB(cos)) for angles, and division by sqrt(2) for distances (noise variance halves).
    For predictivity (``score``) it is the median over units of sqrt(SB-corrected reliability), the
    correlation a perfect model would reach.
    """

    value: float
    split_half: float
    estimator: str
    values: np.ndarray = field(repr=False)

    def __float__(self) -> float:
        return float(self.value)


def noise_ceiling(measure: Any, data: Any, *, n_splits: int = 10, seed: int = 0, condition: Any = None,
                  var: str | None = None) -> NoiseCeiling:
    """How similar the recording is to itself under the measure: the best a model can score."""
    m = get_measure(measure)
    rep = _rep(data, condition, var)
    rng = np.random.default_rng(seed)
    if m.convention == "score":
        attainable_r = np.sqrt(np.clip(split_half_reliability(rep, n_splits=n_splits, seed=seed), 0.0, None))
        agg = float(np.median(attainable_r))
        return NoiseCeiling(agg, agg, f"{m.estimator}-ceiling=sqrt_split_half_reliability", attainable_r)
    values = np.array([float(m.score(*split_halves(rep, rng), in_sample_warning=False)) for _ in range(n_splits)])
    half = float(values.mean())
    if m.convention == "similarity":
        value = spearman_brown(half)
    elif m.convention == "angle":
        value = float(np.arccos(np.clip(spearman_brown(np.cos(half)), -1, 1)))
    else:
        value = half / np.sqrt(2.0)
    return NoiseCeiling(float(value), half, f"{m.estimator}-ceiling=split_half", values)


@dataclass(frozen=True)
class BootstrapResult:
    """Percentile bootstrap: ``estimate`` on the full data, ``low``/``high`` the (1 - ci)/2 quantiles."""

    estimate: float
    low: float
    high: float
    ci: float
    over: str
    samples: np.ndarray = field(repr=False)

    def __float__(self) -> float:
        return float(self.estimate)


def _resample(a: Representation, b: Representation, over: str, rng: np.random.Generator):
    if over in ("conditions", "both"):
        idx = rng.integers(0, a.n_conditions, a.n_conditions)
        a, b = a.take_conditions(idx), b.take_conditions(idx)
    if over in ("trials", "both"):
        out = []
        for rep in (a, b):
            if rep.trials is None:
                out.append(rep)
                continue
            picks, labels = [], []
            for c in range(rep.n_conditions):
                members = np.flatnonzero(rep.trial_condition == c)
                picks.append(rng.choice(members, len(members)))
                labels.append(np.full(len(members), c))
            out.append(rep.with_trials(rep.trials[torch.as_tensor(np.concatenate(picks))], np.concatenate(labels)))
        a, b = out
    return a, b


def _robust_values(fn: Callable[[np.random.Generator], float], n: int, rng, what: str) -> np.ndarray:
    """Evaluate fn n times; resamples on which the measure is undefined are counted, not hidden."""
    values, failed = [], 0
    for _ in range(n):
        try:
            values.append(fn(rng))
        except DegenerateInputError:
            failed += 1
    if failed > 0.1 * n:
        raise DegenerateInputError(f"the measure was undefined on {failed}/{n} {what}; too few conditions or trials")
    if failed:
        warnings.warn(f"{failed}/{n} {what} were degenerate and left out", RuntimeWarning, stacklevel=3)
    return np.asarray(values)


def _score_quietly(m: Measure, a: Representation, b: Representation) -> float:
    return float(m.score(a, b, in_sample_warning=False))


def bootstrap(measure: Any, first: Any, second: Any, *, over: str = "conditions", n_boot: int = 1000,
              ci: float = 0.95, seed: int = 0, **align_options: Any) -> BootstrapResult:
    """Percentile bootstrap CI, resampling conditions (same draw on both sides), trials within each
    condition (independently per side, then re-averaged), or both. Conditions drawn twice count twice."""
    return bootstrap_aligned(get_measure(measure), *align(first, second, **align_options), over=over,
                             n_boot=n_boot, ci=ci, seed=seed)


def bootstrap_aligned(m: Measure, a: Representation, b: Representation, *, over: str = "conditions",
                      n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> BootstrapResult:
    """:func:`bootstrap` on already aligned representations."""
    check_option("over", over, ("conditions", "trials", "both"))
    if over != "conditions" and a.trials is None and b.trials is None:
        raise DegenerateInputError(f"bootstrap over={over!r} needs trial-level data on at least one side")
    estimate = _score_quietly(m, a, b)
    samples = _robust_values(lambda rng: _score_quietly(m, *_resample(a, b, over, rng)), n_boot,
                             np.random.default_rng(seed), "bootstrap resamples")
    low, high = np.quantile(samples, [(1 - ci) / 2, (1 + ci) / 2])
    return BootstrapResult(estimate, float(low), float(high), ci, over, samples)


@dataclass(frozen=True)
class PermutationResult:
    """``p_value`` = (1 + #null at least as extreme as observed) / (1 + n_perm), one-sided towards
    more similar (larger similarities/scores, smaller distances/angles)."""

    observed: float
    p_value: float
    over: str
    null: np.ndarray = field(repr=False)

    def __float__(self) -> float:
        return float(self.p_value)


def _permute(b: Representation, over: str, block_length: int | None, rng: np.random.Generator) -> Representation:
    if over == "conditions":
        return b.take_conditions(rng.permutation(b.n_conditions))
    blocks = np.array_split(np.arange(b.n_times), max(1, b.n_times // (block_length or max(1, b.n_times // 10))))
    order = rng.permutation(len(blocks))
    return b.take_times(np.concatenate([blocks[i] for i in order]))


def permutation_test(measure: Any, first: Any, second: Any, *, over: str = "conditions", n_perm: int = 1000,
                     block_length: int | None = None, seed: int = 0, **align_options: Any) -> PermutationResult:
    """Null distribution by shuffling the second input's condition labels, or the order of contiguous
    time blocks of ``block_length`` bins (default n_times // 10), and recomputing the measure."""
    return permutation_aligned(get_measure(measure), *align(first, second, **align_options), over=over,
                               n_perm=n_perm, block_length=block_length, seed=seed)


def permutation_aligned(m: Measure, a: Representation, b: Representation, *, over: str = "conditions",
                        n_perm: int = 1000, block_length: int | None = None, seed: int = 0) -> PermutationResult:
    """:func:`permutation_test` on already aligned representations."""
    check_option("over", over, ("conditions", "time_blocks"))
    units = b.n_conditions if over == "conditions" else b.n_times // (block_length or max(1, b.n_times // 10))
    if units < 2:
        raise DegenerateInputError(f"a permutation over {over} needs at least 2 {over.replace('_', ' ')}, got {units}")
    observed = _score_quietly(m, a, b)
    null = _robust_values(lambda rng: _score_quietly(m, a, _permute(b, over, block_length, rng)), n_perm,
                          np.random.default_rng(seed), "permutations")
    larger = m.convention in ("similarity", "score")
    extreme = np.sum(null >= observed - 1e-12) if larger else np.sum(null <= observed + 1e-12)
    return PermutationResult(observed, float((1 + extreme) / (1 + len(null))), over, null)


def cross_validated(measure: Any, first: Any, second: Any, *, over: str = "conditions", n_splits: int | None = None,
                    seed: int = 0, **align_options: Any) -> Score:
    """Held-out score of a fitted measure (Procrustes, shape metric, CCA/SVCCA).

    ``over="conditions"``: K-fold over conditions (K = ``n_splits``, default min(5, n_conditions)), fit the alignment on K-1 folds, evaluate on the
    held-out conditions, average the K values. ``over="trials"``: ``n_splits`` (default 5) random trial halvings,
    fit on the condition means of one half and evaluate on those of the other.
    """
    return cross_validated_aligned(get_measure(measure), *align(first, second, **align_options), over=over,
                                   n_splits=n_splits, seed=seed)


def cross_validated_aligned(m: Measure, a: Representation, b: Representation, *, over: str = "conditions",
                            n_splits: int | None = None, seed: int = 0) -> Score:
    """:func:`cross_validated` on already aligned representations."""
    check_option("over", over, ("conditions", "trials"))
    if not m.fitted:
        raise TypeError(f"{m.estimator} fits nothing to the data; its in-sample value is already unbiased by fitting")
    rng = np.random.default_rng(seed)
    values = []
    if over == "conditions":
        for test in condition_folds(np.unique(a.conditions, return_inverse=True)[1].ravel(), n_splits, rng):
            train = np.setdiff1d(np.arange(a.n_conditions), test)
            values.append(m.held_out_score((a.take_conditions(train), b.take_conditions(train)),
                                           (a.take_conditions(test), b.take_conditions(test))))
    else:
        for _ in range(n_splits or 5):
            (a1, a2), (b1, b2) = split_halves(a, rng), split_halves(b, rng)
            values.append(m.held_out_score((a1, b1), (a2, b2)))
    details = {"fold_values": np.asarray(values)}
    return m.make_score(float(np.mean(values)), details, suffix=f"-cv={over}{len(values)}")
