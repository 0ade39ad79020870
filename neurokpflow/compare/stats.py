"""Statistics for every measure: split-half reliability and noise ceilings, bootstrap confidence
intervals, permutation nulls and cross-validated (held-out) scores."""
from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.special
import torch

from ._inputs import Representation, align
from ._measure import Measure, check_option
from ._registry import get_measure
from ._replicates import kept_values, run_indexed, run_replicates
from ._result import BootstrapBiasWarning, DegenerateInputError, Score
from ._reliability import _rep, condition_folds, spearman_brown, split_half_reliability, split_halves
from .sessions import is_multi_session, split_sessions
from ..errors import InputError, InputTypeError
from .._validation import numpy_rng

__all__ = ["spearman_brown", "split_halves", "split_half_reliability", "noise_ceiling", "bootstrap",
           "permutation_test", "cross_validated", "BootstrapResult", "PermutationResult", "NoiseCeiling",
           "bca_interval", "BIAS_WARNING_FRACTION"]


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


def _score_quietly(m: Measure, a: Representation, b: Representation) -> float:
    return float(m.score(a, b, in_sample_warning=False))


class _HalvesScore:
    """One split-half replicate of the noise ceiling (picklable for process workers)."""

    def __init__(self, m: Measure, rep: Representation):
        self.m, self.rep = m, rep

    def __call__(self, rng: np.random.Generator) -> float:
        return float(self.m.score(*split_halves(self.rep, rng), in_sample_warning=False))


def noise_ceiling(measure: Any, data: Any, *, n_splits: int = 10, seed: int = 0, condition: Any = None,
                  var: str | None = None, n_jobs: int | None = 1, backend: str = "auto") -> NoiseCeiling:
    """How similar the recording is to itself under the measure: the best a model can score.

    Split ``i`` uses its own random stream (see :func:`bootstrap`), so any ``n_jobs`` gives the same value.
    """
    m = get_measure(measure)
    rep = _rep(data, condition, var)
    if m.convention == "score":
        attainable_r = np.sqrt(np.clip(split_half_reliability(rep, n_splits=n_splits, seed=seed), 0.0, None))
        agg = float(np.median(attainable_r))
        return NoiseCeiling(agg, agg, f"{m.estimator}-ceiling=sqrt_split_half_reliability", attainable_r)
    split_halves(rep, numpy_rng(seed))  # fails early, with its own message, on unsplittable data
    values = kept_values(run_replicates(_HalvesScore(m, rep), seed, n_splits, n_jobs=n_jobs, backend=backend),
                         "split halves")
    half = float(values.mean())
    if m.convention == "similarity":
        value = spearman_brown(half)
    elif m.convention == "angle":
        value = float(np.arccos(np.clip(spearman_brown(np.cos(half)), -1, 1)))
    else:
        value = half / np.sqrt(2.0)
    return NoiseCeiling(float(value), half, f"{m.estimator}-ceiling=split_half", values)


#: a bootstrap whose |bias| exceeds this fraction of its standard error warns (Efron & Tibshirani's rule of
#: thumb: below 0.25 SE the bias is negligible next to the sampling error)
BIAS_WARNING_FRACTION = 0.25
INTERVALS = ("bca", "bias_corrected", "percentile", "basic")
OVERS = ("conditions", "trials", "both", "sessions")


@dataclass(frozen=True)
class BootstrapResult:
    """A bootstrap confidence interval.

    ``estimate`` is the value on the full data (for several sessions: the mean of the per-session
    values in ``session_estimates``); ``bias`` = mean(replicates) - estimate; ``se`` = SD of the
    replicates; ``low``/``high`` the interval at level ``ci`` by ``method``.

    ``reference``: for an estimator that is not the plug-in value of its target (the noise-corrected
    Procrustes distance, see ``Measure.plug_in_target``), the resampled population's own target value,
    the target measure on the data's condition means; then ``bias`` = mean(replicates) - reference
    (Efron & Tibshirani 1993, section 10.2: the bootstrap bias is measured against the parameter of the
    resampled population, not against the estimate), and every interval below uses the replicates
    shifted by estimate - reference. Each trial is then drawn from all of its condition's trials (the
    draws are independent, so the folds built from them stay independent). Resampling within
    (condition, fold) cells instead, with the estimate as the reference, makes the resampled population's
    four fold means differ, and on simulated populations (8 conditions x 16 trials) it measured the
    noise-corrected Procrustes angle's bias as 1.7 times its true bias (-0.020 vs -0.012 rad); against
    the plug-in reference the bootstrap bias is -0.008 rad.

    - ``"bca"``: bias-corrected and accelerated (Efron 1987): percentiles of the replicates at
      Phi(z0 + (z0 + z) / (1 - a (z0 + z))), z0 = Phi^-1(share of replicates below the estimate,
      ties half), a = the acceleration from jackknife influence values over the resampled units
      (single trials within their strata, conditions or sessions; see ``_Design.acceleration``). It follows scipy.stats.bootstrap's definition. It contains the
      estimate only while the median bias is moderate (about |z0| < z_(1+ci)/2 for small a): an
      estimator whose replicates lie mostly on one side of it is corrected past its own value.
    - ``"bias_corrected"``: for estimators whose bias is large next to their SE (the rank correlation
      of crossnobis RDMs, attenuated by the RDMs' noise; the noise-corrected Procrustes angle, biased
      low by about 1 SD). With a bias of about a SE or more, z0 puts BCa's end at a percentile beyond
      the replicates' range (Phi(2 z0 + 1.96) > 0.999 for z0 > 0.7), so BCa can only return the
      extreme replicate there and excludes the truth. ``estimate`` is the
      bootstrap bias-corrected value 2 theta - mean(replicates) (Efron & Tibshirani 1993, section
      10.3), ``raw_estimate`` the measure on the full data, and the interval is the basic one,
      [2 theta - q_high, 2 theta - q_low], the interval whose centre is that bias-corrected value.
      It contains that value whenever the replicates' mean lies between q_low and q_high.
    - ``"basic"``: [2 estimate - q_high, 2 estimate - q_low]; reported with the reason when BCa is
      undefined (every replicate on one side of the estimate: a biased estimator).
    - ``"percentile"``: [q_low, q_high] of the replicates (only on request: it ignores bias).
    """

    estimate: float
    bias: float
    se: float
    low: float
    high: float
    method: str
    ci: float
    over: str
    samples: np.ndarray = field(repr=False)
    session_estimates: np.ndarray | None = field(default=None, repr=False)
    raw_estimate: float | None = None
    reference: float | None = None

    @property
    def bias_corrected(self) -> float:
        """2 theta - mean(replicates), theta the measure on the full data (``raw_estimate`` when set)."""
        return float(self.estimate) if self.raw_estimate is not None else float(self.estimate - self.bias)

    def __float__(self) -> float:
        return float(self.estimate)


def _trial_draw(rep: Representation, rng: np.random.Generator, n_folds: int) -> Representation:
    """One trial resample of ``rep`` (see :class:`TrialResampler`)."""
    return TrialResampler(rep, n_folds)(rng)


class TrialResampler:
    """Trials resampled with replacement within each resampling cell, with variance-corrected residuals.

    The cells are the conditions or, for fold-based estimators, (condition, fold) pairs (positions k,
    k + n_folds, ... of a condition keep their fold), so that the folds stay independent.

    Resampling n trials of a cell with replacement gives its mean a bootstrap variance of
    (n - 1)/n s^2/n instead of s^2/n: with 4 trials per (condition, fold) cell the trial-noise part of
    every replicate's variance is 25 % short. Each trial is therefore resampled as a modified residual,
    cell mean + sqrt(n / (n - 1)) (trial - cell mean) (Davison & Hinkley 1997, Bootstrap Methods and
    their Application, section 6.2.3: residuals r / sqrt(1 - h) with leverage h = 1/n of a cell-mean
    model), which makes the bootstrap variance of every cell mean exactly the unbiased s^2/n while
    keeping the cell means themselves. n counts the non-missing values of each (cell, time, unit).
    The cell means and modified residuals are computed once; a replicate only draws and adds them.
    """

    def __init__(self, rep: Representation, n_folds: int):
        self.rep, self.n_folds = rep, n_folds
        if rep.trials is None:
            return
        _, self.cell = _trial_draw_index(rep, np.random.default_rng(0), n_folds)
        trials = rep.trials
        valid = ~torch.isnan(trials)
        index = torch.as_tensor(self.cell)
        shape = (rep.n_conditions * n_folds,) + tuple(trials.shape[1:])
        counts = torch.zeros(shape, dtype=trials.dtype).index_add_(0, index, valid.to(trials.dtype))
        sums = torch.zeros(shape, dtype=trials.dtype).index_add_(0, index, torch.where(valid, trials, 0.0))
        means = (sums / counts.clamp_min(1.0))[index]
        inflation = torch.where(counts > 1, torch.sqrt(counts / (counts - 1).clamp_min(1.0)), torch.ones_like(counts))
        self.base, self.residuals = means, inflation[index] * (trials - means)

    def __call__(self, rng: np.random.Generator) -> Representation:
        if self.rep.trials is None:
            return self.rep
        picked, _ = _trial_draw_index(self.rep, rng, self.n_folds, self.cell)
        assert self.rep.trial_condition is not None  # set together with trials
        return self.rep.with_trials(self.base + self.residuals[torch.as_tensor(picked)], self.rep.trial_condition)


def _trial_draw_index(rep: Representation, rng: np.random.Generator, n_folds: int,
                      cell: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(picked, cell)``: trial i is replaced by trial ``picked[i]``, drawn uniformly from its own
    resampling cell ``cell[i]`` = condition * n_folds + (position of i within its condition) % n_folds."""
    if cell is None:
        labels = np.asarray(rep.trial_condition)
        order = np.argsort(labels, kind="stable")                # trials grouped by condition, stored order kept
        starts = np.searchsorted(labels[order], np.arange(rep.n_conditions))
        position = np.arange(len(order)) - np.repeat(starts, np.bincount(labels, minlength=rep.n_conditions))
        cell = np.empty(len(order), dtype=np.int64)
        cell[order] = labels[order] * n_folds + position % n_folds   # (condition, fold) of every trial
    cell_order = np.argsort(cell, kind="stable")
    sizes = np.bincount(cell, minlength=rep.n_conditions * n_folds)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    draw = first[cell] + (rng.random(len(cell)) * sizes[cell]).astype(np.int64)   # uniform within its cell
    return cell_order[draw], cell


class _Design:
    """What a bootstrap resamples. ``pairs`` holds one aligned (first, second) per session; the
    statistic is the mean of the measure over the pairs."""

    def __init__(self, m: Measure, pairs: list[tuple[Representation, Representation]], over: str):
        self.m, self.pairs, self.over = m, pairs, over
        # an estimator with a plug-in target (see Measure.plug_in_target) draws each trial from all of its
        # condition's trials; the others keep every draw inside its (condition, fold) cell
        self.target = m.plug_in_target() if over in ("trials", "both", "sessions") else None
        self.folds = 1 if self.target is not None else max(1, int(getattr(m, "trial_folds", 1)))
        # "trials"/"sessions" resample the stored pairs' trials: their cell means and residuals are fixed
        self.resamplers = [tuple(TrialResampler(rep, self.folds) for rep in pair) for pair in pairs] \
            if over in ("trials", "sessions") else None

    def statistic(self, pairs) -> float:
        return float(np.mean([_score_quietly(self.m, a, b) for a, b in pairs]))

    def reference(self) -> float | None:
        """The resampled population's own value of the estimator's target (the plug-in target on the
        data's condition means, averaged over sessions), or None when the estimator is its own plug-in."""
        if self.target is None:
            return None
        return float(np.mean([_score_quietly(self.target, a, b) for a, b in self.pairs]))

    def _draw_pair(self, k, rng):
        a, b = self.pairs[k]
        if self.resamplers is not None:
            ra, rb = self.resamplers[k]
            return ra(rng), rb(rng)
        if self.over in ("conditions", "both"):
            idx = rng.integers(0, a.n_conditions, a.n_conditions)
            a, b = a.take_conditions(idx), b.take_conditions(idx)
        if self.over == "both":
            a, b = _trial_draw(a, rng, self.folds), _trial_draw(b, rng, self.folds)
        return a, b

    def __call__(self, rng: np.random.Generator) -> float:
        chosen: Iterable[int] = range(len(self.pairs))
        if self.over == "sessions":
            chosen = rng.integers(0, len(self.pairs), len(self.pairs))
        return self.statistic([self._draw_pair(k, rng) for k in chosen])

    def acceleration(self, n_jobs: int | None = 1, backend: str = "auto") -> float:
        """The BCa acceleration a from jackknife influence values over the resampled units.

        ``"trials"``: the units are the single trials, resampled within independent strata (the
        (condition, fold) cells of either side). Trial j of cell s is left out by masking it (NaN), so
        every other trial keeps its fold; with l_sj = (n_s - 1)(mean over the cell's leave-one-out
        values - theta_(sj)) the multi-sample formula is a = sum_s n_s^-3 sum_j l_sj^3 /
        (6 (sum_s n_s^-2 sum_j l_sj^2)^(3/2)) (Davison & Hinkley 1997, section 3.2 and eq. 5.23; Efron
        1987). One value per trial, not one per block of trials: a skewness from a handful of
        delete-a-block values is itself too noisy to shift the interval by.
        Conditions and sessions: the ordinary jackknife over them.
        """
        if self.over == "trials":
            return _stratified_acceleration(self._trial_influence(n_jobs, backend))
        return _acceleration(self.jackknife())

    def _trial_influence(self, n_jobs: int | None, backend: str) -> list[np.ndarray]:
        assert self.resamplers is not None  # built for over="trials", the only caller
        trials = [(side, j) for side, resampler in enumerate(self.resamplers[0]) if resampler.rep.trials is not None
                  for j in range(len(resampler.cell))]
        values = run_indexed(_LeaveOneTrialOut(self, trials), len(trials), n_jobs=n_jobs, backend=backend)
        strata: dict[tuple[int, int], list[float | None]] = {}
        for (side, j), value in zip(trials, values):
            strata.setdefault((side, int(self.resamplers[0][side].cell[j])), []).append(value)
        influence = []
        for cell_values in strata.values():
            if len(cell_values) < 2 or any(v is None for v in cell_values):
                continue
            v = np.asarray(cell_values)
            influence.append((len(v) - 1) * (v.mean() - v))
        return influence

    def jackknife(self) -> np.ndarray:
        """Leave-one-out values over the resampled conditions or sessions."""
        if self.over == "sessions":
            if len(self.pairs) < 3:
                return np.zeros(0)
            return np.array([self.statistic(self.pairs[:i] + self.pairs[i + 1:]) for i in range(len(self.pairs))])
        (a, b), = self.pairs
        if a.n_conditions < 3:
            return np.zeros(0)
        keep = [np.delete(np.arange(a.n_conditions), i) for i in range(a.n_conditions)]
        values = [_value_or_none(self.statistic, [(a.take_conditions(k), b.take_conditions(k))]) for k in keep]
        values = [v for v in values if v is not None]
        return np.asarray(values) if len(values) >= 3 else np.zeros(0)


def _acceleration(jackknife: np.ndarray) -> float:
    """Efron's acceleration from ordinary jackknife values: sum d^3 / (6 (sum d^2)^1.5), d = mean - value."""
    if len(jackknife) < 3:
        return 0.0
    d = jackknife.mean() - jackknife
    ss = np.sum(d ** 2)
    return float(np.sum(d ** 3) / (6.0 * ss ** 1.5)) if ss > 0 else 0.0


def _stratified_acceleration(strata: list[np.ndarray]) -> float:
    """Multi-sample acceleration from per-stratum influence values (see ``_Design.acceleration``)."""
    if not strata:
        return 0.0
    cube = sum(np.sum(l ** 3) / len(l) ** 3 for l in strata)
    square = sum(np.sum(l ** 2) / len(l) ** 2 for l in strata)
    return float(cube / (6.0 * square ** 1.5)) if square > 0 else 0.0


class _LeaveOneTrialOut:
    """The statistic with trial j of one side left out (masked), for index i of ``trials`` = [(side, j)]
    (picklable for process workers)."""

    def __init__(self, design: "_Design", trials: list[tuple[int, int]]):
        self.design, self.trials = design, trials

    def __call__(self, i: int) -> float | None:
        side, j = self.trials[i]
        pair = list(self.design.pairs[0])
        rep = pair[side]
        assert rep.trials is not None and rep.trial_condition is not None  # only sides with trials are listed
        masked = rep.trials.clone()
        masked[j] = float("nan")
        pair[side] = rep.with_trials(masked, rep.trial_condition)
        return _value_or_none(self.design.statistic, [tuple(pair)])


def _value_or_none(fn, *args):
    try:
        return fn(*args)
    except DegenerateInputError:
        return None


def bca_interval(samples: np.ndarray, estimate: float, jackknife: np.ndarray, ci: float,
                 acceleration: float | None = None) -> tuple[float, float] | None:
    """BCa interval (scipy.stats.bootstrap's definition); None when every replicate lies on one side.
    The acceleration comes from the ordinary ``jackknife`` values unless given."""
    share = (np.sum(samples < estimate) + np.sum(samples <= estimate)) / (2.0 * len(samples))
    if share <= 0.0 or share >= 1.0:
        return None
    z0 = scipy.special.ndtri(share)               # the standard normal quantile (scipy.stats.norm.ppf)
    if acceleration is None:
        acceleration = _acceleration(jackknife)
    z = scipy.special.ndtri(np.array([(1 - ci) / 2, (1 + ci) / 2]))
    levels = scipy.special.ndtr(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
    low, high = np.percentile(samples, 100 * levels)
    return float(low), float(high)


def _workers(options: dict) -> tuple:
    """``(n_jobs, backend, the remaining keywords)``: the worker keywords and :func:`align`'s."""
    rest = dict(options)
    return rest.pop("n_jobs", 1), rest.pop("backend", "auto"), rest


def bootstrap(measure: Any, first: Any, second: Any, *, over: str = "auto", n_boot: int = 1000,
              ci: float = 0.95, seed: int = 0, interval: str | None = None, **options: Any) -> BootstrapResult:
    """Bootstrap confidence interval of a measure, by default BCa.

    Parameters
    ----------
    over : what is resampled, with replacement:
        ``"conditions"`` (the same draw on both sides; a condition drawn twice counts twice),
        ``"trials"`` (within each condition, independently per side, then re-averaged; fold-based
        estimators draw within each fold), ``"both"`` (hierarchical: conditions, then trials within
        them), ``"sessions"`` (multi-session input: sessions, then trials within them).
        ``"auto"``: sessions for multi-session input, trials for estimators that use trial folds
        (``cross_validated=True``, crossnobis), conditions otherwise. Resampling conditions
        underestimates fitted distances (duplicates are easier to align); resampling trials keeps
        the conditions, so the interval is about trial noise for this set of conditions.
    interval : ``"bca"`` (default for every measure, see :class:`BootstrapResult`), ``"basic"`` or
        ``"percentile"``; ``None`` uses the measure's ``interval`` attribute.
    n_jobs, backend : parallel replicates in ``"threads"``, ``"processes"`` or ``"auto"`` (processes when
        the estimated work exceeds the pool's start-up, see :mod:`neurokpflow.compare._replicates`).
        Replicate i draws from its own stream
        ``SeedSequence(seed).spawn(n_boot)[i]``, so the numbers are identical at every ``n_jobs``.
    second, first : either may be multi-session (see :mod:`neurokpflow.compare.sessions`): the measure is
        computed per session and averaged.

    Warns (:class:`BootstrapBiasWarning`) when |bias| > ``BIAS_WARNING_FRACTION`` x se, naming the
    bias-corrected estimate.
    """
    m = get_measure(measure)
    n_jobs, backend, align_options = _workers(options)
    pairs = aligned_sessions(first, second, **align_options)
    return bootstrap_aligned(m, pairs, over=over, n_boot=n_boot, ci=ci, seed=seed, interval=interval,
                             n_jobs=n_jobs, backend=backend)


def aligned_sessions(first: Any, second: Any, **align_options: Any) -> list[tuple[Representation, Representation]]:
    """One aligned pair per session (a single pair for single-session inputs)."""
    multi = [is_multi_session(x) for x in (first, second)]
    if multi[0] and multi[1]:
        raise InputError("both inputs have several sessions; give the model as one recording and the data as a "
                         "multi-session input")
    if not any(multi):
        return [align(first, second, **align_options)]
    if multi[1]:
        return [align(first, part, **align_options) for part in split_sessions(second)[1]]
    return [align(part, second, **align_options) for part in split_sessions(first)[1]]


def resolve_over(m: Measure, pairs, over: str) -> str:
    check_option("over", over, OVERS + ("auto",))
    if over == "auto":
        if len(pairs) > 1:
            return "sessions"
        has_trials = any(rep.trials is not None for rep in pairs[0])
        return "trials" if has_trials and getattr(m, "trial_folds", 1) > 1 else "conditions"
    if over == "sessions" and len(pairs) < 2:
        raise DegenerateInputError("bootstrap over='sessions' needs multi-session input (a DataTree with one child "
                                   "per session, or a 'session' dim); use over='trials' or 'conditions'")
    if over != "sessions" and len(pairs) > 1:
        raise InputError(f"multi-session input is resampled over='sessions' (then trials), not over={over!r}")
    if over in ("trials", "both") and all(rep.trials is None for rep in pairs[0]):
        raise DegenerateInputError(f"bootstrap over={over!r} needs trial-level data on at least one side; "
                                   "use over='conditions'")
    return over


def bootstrap_aligned(m: Measure, pairs, *, over: str = "auto", n_boot: int = 1000, ci: float = 0.95,
                      seed: int = 0, interval: str | None = None, n_jobs: int | None = 1,
                      backend: str = "auto") -> BootstrapResult:
    """:func:`bootstrap` on already aligned representations: ``pairs`` is one (first, second) pair or a
    list of them (one per session)."""
    if isinstance(pairs, tuple) and len(pairs) == 2 and isinstance(pairs[0], Representation):
        pairs = [pairs]
    over = resolve_over(m, pairs, over)
    interval = interval or m.interval
    check_option("interval", interval, INTERVALS)
    design = _Design(m, list(pairs), over)
    per_session = np.array([_score_quietly(m, a, b) for a, b in design.pairs])
    estimate = float(per_session.mean())
    samples = kept_values(run_replicates(design, seed, n_boot, n_jobs=n_jobs, backend=backend),
                          "bootstrap resamples")
    reference = design.reference()
    # the replicates' errors against the resampled population's target, placed around the estimate
    centred = samples if reference is None else samples + (estimate - reference)
    bias, se = float(centred.mean() - estimate), float(samples.std(ddof=1))
    q_low, q_high = np.percentile(centred, [50 * (1 - ci), 50 * (1 + ci)])
    method = interval
    if interval == "bca":
        bounds = bca_interval(centred, estimate, np.zeros(0), ci, acceleration=design.acceleration(n_jobs, backend))
        if bounds is None:
            method = "basic (BCa undefined: every replicate lies on one side of the estimate)"
            warnings.warn(f"{m.estimator}: every bootstrap replicate lies on one side of the estimate, so BCa is "
                          "undefined; reporting the basic interval. The estimator is strongly biased under this "
                          "resampling; prefer a noise-corrected estimator (cross_validated=True) or over='trials'",
                          BootstrapBiasWarning, stacklevel=3)
            interval = "basic"
        else:
            low, high = bounds
    raw_estimate = None
    if interval == "bias_corrected":
        raw_estimate, estimate = estimate, estimate - bias
        per_session = per_session - bias
        interval = "basic"
        low, high = 2 * raw_estimate - q_high, 2 * raw_estimate - q_low
    elif interval == "basic":
        low, high = 2 * estimate - q_high, 2 * estimate - q_low
    elif interval == "percentile":
        low, high = q_low, q_high
    if se > 0 and abs(bias) > BIAS_WARNING_FRACTION * se and raw_estimate is None:
        warnings.warn(f"{m.estimator}: bootstrap bias {bias:+.3g} is {abs(bias) / se:.2f} SE (> "
                      f"{BIAS_WARNING_FRACTION} SE); bias-corrected estimate {estimate - bias:.4g} "
                      f"(estimate {estimate:.4g})", BootstrapBiasWarning, stacklevel=3)
    return BootstrapResult(estimate, bias, se, float(low), float(high), method, ci, over, samples,
                           per_session if len(per_session) > 1 else None, raw_estimate, reference)


@dataclass(frozen=True)
class PermutationResult:
    """``p_value`` = (k + 1) / (n + 1), k the number of the n null values at least as extreme as the
    observed one (the observed labelling counts as one of the permutations, so p > 0), one-sided towards
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


class _Permuted:
    """One permutation replicate (picklable for process workers): the second input of every pair
    (session) permuted, the measure averaged over the pairs."""

    def __init__(self, m, pairs, over, block_length):
        self.m, self.pairs, self.over, self.block_length = m, pairs, over, block_length

    def __call__(self, rng: np.random.Generator) -> float:
        return float(np.mean([_score_quietly(self.m, a, _permute(b, self.over, self.block_length, rng))
                              for a, b in self.pairs]))


def permutation_test(measure: Any, first: Any, second: Any, *, over: str = "conditions", n_perm: int = 1000,
                     block_length: int | None = None, seed: int = 0, **options: Any) -> PermutationResult:
    """Null distribution by shuffling the second input's condition labels, or the order of contiguous
    time blocks of ``block_length`` bins (default n_times // 10), and recomputing the measure.
    Multi-session input: every session is shuffled and the mean over sessions compared.
    ``n_jobs``/``backend`` as in :func:`bootstrap` (same seed, same null at every n_jobs); the other
    keywords are :func:`align`'s."""
    n_jobs, backend, align_options = _workers(options)
    return permutation_aligned(get_measure(measure), aligned_sessions(first, second, **align_options), over=over,
                               n_perm=n_perm, block_length=block_length, seed=seed, n_jobs=n_jobs, backend=backend)


def permutation_aligned(m: Measure, pairs, b: Representation | None = None, *, over: str = "conditions",
                        n_perm: int = 1000, block_length: int | None = None, seed: int = 0,
                        n_jobs: int | None = 1, backend: str = "auto") -> PermutationResult:
    """:func:`permutation_test` on already aligned representations: ``(a, b)`` or a list of pairs."""
    if b is not None:
        pairs = [(pairs, b)]
    elif isinstance(pairs, tuple):
        pairs = [pairs]
    check_option("over", over, ("conditions", "time_blocks"))
    for _, second in pairs:
        units = second.n_conditions if over == "conditions" else \
            second.n_times // (block_length or max(1, second.n_times // 10))
        if units < 2:
            raise DegenerateInputError(f"a permutation over {over} needs at least 2 {over.replace('_', ' ')}, "
                                       f"got {units}")
    observed = float(np.mean([_score_quietly(m, a, b) for a, b in pairs]))
    null = kept_values(run_replicates(_Permuted(m, list(pairs), over, block_length), seed, n_perm, n_jobs=n_jobs,
                                      backend=backend), "permutations")
    larger = m.convention in ("similarity", "score")
    extreme = np.sum(null >= observed - 1e-12) if larger else np.sum(null <= observed + 1e-12)
    return PermutationResult(observed, float((1 + extreme) / (1 + len(null))), over, null)


def cross_validated(measure: Any, first: Any, second: Any, *, over: str = "conditions", n_splits: int | None = None,
                    seed: int = 0, **align_options: Any) -> Score:
    """Held-out score of a fitted measure (Procrustes, shape metric, CCA/SVCCA).

    This removes the bias of *fitting* an alignment to the scored samples. The trial-noise bias is
    removed by the estimators' own ``cross_validated=True`` option (``CKA``, ``Procrustes``), which
    builds its products from independent trial folds.

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
        raise InputTypeError(f"{m.estimator} fits nothing to the data; its in-sample value is already unbiased by fitting")
    rng = numpy_rng(seed)
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
