"""The single entry point: model recording + data recording -> one xarray.Dataset of scores."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import xarray as xr

from .._validation import InstanceOf, Options, OptionsMixin, Rule, split_fields
from ._measure import check_option
from ._registry import get_measure
from ._replicates import BACKENDS
from .sessions import is_multi_session, split_sessions
from .stats import (INTERVALS, OVERS, aligned_sessions, bootstrap_aligned, cross_validated_aligned, noise_ceiling,
                    permutation_aligned)
from .temporal import TRAINING_DIMS, split_checkpoints
from ..errors import InputError

STATS = ("bootstrap", "permutation", "noise_ceiling", "cross_validated")


@dataclass(frozen=True)
class StatsOptions(OptionsMixin):
    """How :func:`compare` computes its statistics.

    n_boot, n_perm : bootstrap replicates and permutations.
    ci : confidence level of the intervals.
    bootstrap_over : ``"auto"``, ``"conditions"``, ``"trials"``, ``"both"`` or ``"sessions"`` (see
        :func:`neurokpflow.compare.bootstrap`; ``"auto"`` resamples sessions for multi-session data,
        trials for estimators built on trial folds, conditions otherwise).
    interval : ``None`` (each measure's default: BCa, or ``"bias_corrected"`` for crossnobis RSA and the
        noise-corrected Procrustes distance),
        ``"bca"``, ``"bias_corrected"``, ``"basic"`` or ``"percentile"``.
    permute_over : ``"auto"`` (time blocks for dsa, conditions otherwise), ``"conditions"`` or ``"time_blocks"``.
    n_splits : folds of the held-out ``cross_validated`` statistic (default min(5, n_conditions)).
    seed : one seed for everything; replicate i of every statistic draws from its own stream, so
    n_jobs, backend : the workers (``"threads"``, ``"processes"`` or ``"auto"``: processes when the estimated
        work exceeds the process pool's start-up) change the speed, never the numbers.
    """

    n_boot: int = 200
    n_perm: int = 200
    ci: float = 0.95
    bootstrap_over: str = "auto"
    interval: str | None = None
    permute_over: str = "auto"
    n_splits: int | None = None
    seed: int = 0
    n_jobs: int | None = 1
    backend: str = "auto"

    def __post_init__(self):
        check_option("bootstrap_over", self.bootstrap_over, OVERS + ("auto",))
        check_option("permute_over", self.permute_over, ("auto", "conditions", "time_blocks"))
        check_option("interval", self.interval, (None,) + INTERVALS)
        check_option("backend", self.backend, BACKENDS)
        if not 0 < self.ci < 1:
            raise InputError(f"ci must lie in (0, 1), got {self.ci}")
        if self.n_boot < 2 or self.n_perm < 1:
            raise InputError(f"n_boot must be >= 2 and n_perm >= 1, got {self.n_boot}, {self.n_perm}")


def _cells(pairs, resolution: str):
    """(index tuple, [(first, second) per session]) for every score cell of the requested resolution."""
    if resolution == "overall":
        return [((), pairs)]
    n_a, n_b = pairs[0][0].n_times, pairs[0][1].n_times
    if resolution == "time":
        return [((t,), [(a.take_times([t]), b.take_times([t])) for a, b in pairs]) for t in range(n_a)]
    return [((i, j), [(a.take_times([i]), b.take_times([j])) for a, b in pairs])
            for i, j in itertools.product(range(n_a), range(n_b))]


_NONE_MEANS_DEFAULT = ("n_boot", "n_perm", "ci", "bootstrap_over", "permute_over", "seed")


@dataclass(frozen=True)
class AlignOptions(OptionsMixin):
    """How :func:`compare` matches the model's samples to the data's (see :func:`align`).

    ``condition``, ``var``: the per-trial condition coordinate and the variable (a name for both or
    a pair); ``conditions`` / ``time``: ``"exact"`` or ``"intersect"`` (``time`` also ``"resample"``);
    ``resolution``: ``"overall"``, ``"time"`` (a score per time bin) or ``"cross_temporal"``;
    ``along``: the model's training dimension when it is not ``step``/``checkpoint``/``epoch``.
    """

    condition: Any = None
    var: Any = None
    conditions: str = "exact"
    time: str = "exact"
    resolution: str = "overall"
    along: str | None = None

    RULES: ClassVar[dict] = {"resolution": Rule(Options("overall", "time", "cross_temporal")),
                             "along": Rule((None, InstanceOf(str, name="a dimension name")))}


def compare(model: Any, data: Any, measures: Sequence[Any] = ("procrustes", "cka", "rsa"),
            stats: Sequence[str] = ("bootstrap", "permutation"), *, align: AlignOptions | None = None,
            options: StatsOptions | None = None, **fields: Any) -> xr.Dataset:
    """Compare a model recording with a data recording under several measures, with statistics.

    Parameters
    ----------
    model, data : recordings (xarray DataArray/Dataset, e.g. ``neurokpflow.record(...)`` output and an
        NWB-loaded ``spike_count``), or arrays; see :func:`align` for ``condition``, ``var``,
        ``conditions`` and ``time``. A model with a ``checkpoint``/``step``/``epoch`` dim (or ``along``),
        a mapping or a list of recordings is compared checkpoint by checkpoint. ``data`` may hold several
        sessions (an ``xarray.DataTree`` with one child per session, or a ``session`` dim; see
        :mod:`neurokpflow.compare.sessions`): each session is scored on its own, ``session_score`` holds
        those values and ``score`` their mean, and the bootstrap resamples sessions, then trials.
    measures : names from :data:`neurokpflow.compare.MEASURES` or :class:`Measure` instances. For
        recordings with repeated trials prefer the noise-corrected estimators
        ``CKA(cross_validated=True)`` and ``Procrustes(cross_validated=True)`` (the similarity of the
        noise-free condition means).
    stats : any of ``"bootstrap"`` (a confidence interval, BCa by default), ``"permutation"``
        (null and p = (k + 1) / (n + 1)), ``"noise_ceiling"`` (split-half ceiling of the data,
        Spearman-Brown extrapolated) and ``"cross_validated"`` (K-fold over conditions, fitted measures only).
    align : :class:`AlignOptions` (``condition``, ``var``, ``conditions``, ``time``, ``resolution``,
        ``along``).
    options : :class:`StatsOptions` (replicates, level, what is resampled, interval method, seed, workers).
    fields : fields of either options object as keywords (``compare(m, d, condition="target", n_boot=500)``);
        they override the objects.

    Returns
    -------
    xarray.Dataset with dim ``measure`` (estimator names; coords ``convention`` and ``metric``) and
    variables ``score`` and, per requested statistic, ``ci_low``/``ci_high``/``bias``/``se`` (with the
    interval method in ``ci_method`` and the point estimate the interval belongs to in ``ci_estimate``:
    ``score``, or its bootstrap bias-corrected value for the ``"bias_corrected"`` interval), ``p_value``/``null_mean``/``null``, ``noise_ceiling``,
    ``cv_score``, and ``session_score`` for multi-session data. ``cv_score`` is NaN for measures that
    fit nothing (documented in its attrs); every other value is finite or an error is raised.
    """
    # older code passed None for "the default" to these keywords
    fields = {k: v for k, v in fields.items() if not (v is None and k in _NONE_MEANS_DEFAULT)}
    align_fields, stat_fields = split_fields(fields, "compare", AlignOptions, StatsOptions)
    how = AlignOptions.resolve(align, align_fields, "compare")
    opts = StatsOptions.resolve(options, stat_fields, "compare")
    resolution, along = how.resolution, how.along
    for s in stats:
        check_option("stats entry", s, STATS)
    ms = [get_measure(m) for m in measures]
    names = [m.estimator for m in ms]
    if len(set(names)) != len(names):
        raise InputError(f"measures repeat an estimator: {names}")
    align_opts = dict(condition=how.condition, var=how.var, conditions=how.conditions, time=how.time)

    has_training = along is not None or isinstance(model, (list, tuple, dict)) or (
        isinstance(model, (xr.DataArray, xr.Dataset)) and any(d in model.dims for d in TRAINING_DIMS))
    if has_training:
        train_dim, train_values, recordings = split_checkpoints(model, along)
    else:
        train_dim, train_values, recordings = None, [None], [model]
    session_names = split_sessions(data)[0] if is_multi_session(data) else None
    all_pairs = [aligned_sessions(rec, data, **align_opts) for rec in recordings]
    a0, b0 = all_pairs[0][0]
    if resolution != "overall" and len({(a.n_times, b.n_times) for a, b in all_pairs[0]}) > 1:
        raise InputError(f"resolution={resolution!r} needs the same time bins in every session; select a common "
                         "window first (e.g. data.sel(time=slice(...)))")

    grid_dims: list[str] = []
    grid_coords: dict[str, Any] = {}
    if train_dim:
        grid_dims.append(train_dim)
        grid_coords[train_dim] = train_values
    times_a = a0.times if a0.times is not None else np.arange(a0.n_times)
    times_b = b0.times if b0.times is not None else np.arange(b0.n_times)
    if resolution == "time":
        grid_dims.append("time")
        grid_coords["time"] = times_b
    elif resolution == "cross_temporal":
        grid_dims += ["time_model", "time_data"]
        grid_coords.update(time_model=times_a, time_data=times_b)
    shape = tuple(len(grid_coords[d]) for d in grid_dims)

    out: dict[str, np.ndarray] = {}
    methods: dict[str, set] = {}

    def put(var_name, k, index, value, extra=()):
        if var_name not in out:
            out[var_name] = np.full((len(ms),) + shape + tuple(extra), np.nan)
        out[var_name][(k,) + index] = value

    stat_kw = dict(seed=opts.seed, n_jobs=opts.n_jobs, backend=opts.backend)
    for c, pairs in enumerate(all_pairs):
        prefix = (c,) if train_dim else ()
        for index, cell in _cells(pairs, resolution):
            for k, m in enumerate(ms):
                idx = prefix + index
                per_session = [float(m.score(ca, cb)) for ca, cb in cell]
                put("score", k, idx, float(np.mean(per_session)))
                if session_names is not None:
                    put("session_score", k, idx, per_session, extra=(len(session_names),))
                if "bootstrap" in stats:
                    boot = bootstrap_aligned(m, cell, over=opts.bootstrap_over, n_boot=opts.n_boot, ci=opts.ci,
                                             interval=opts.interval, **stat_kw)
                    for name, value in (("ci_low", boot.low), ("ci_high", boot.high), ("bias", boot.bias),
                                        ("se", boot.se), ("ci_estimate", boot.estimate)):
                        put(name, k, idx, value)
                    methods.setdefault(names[k], set()).add(f"{boot.method} over {boot.over}")
                if "permutation" in stats:
                    over = opts.permute_over if opts.permute_over != "auto" else (
                        m.default_permutation)
                    perm = permutation_aligned(m, cell, over=over, n_perm=opts.n_perm, **stat_kw)
                    put("p_value", k, idx, perm.p_value)
                    put("null_mean", k, idx, float(perm.null.mean()))
                    put("null", k, idx, np.resize(perm.null, opts.n_perm), extra=(opts.n_perm,))
                if "cross_validated" in stats and m.fitted:
                    put("cv_score", k, idx, float(np.mean([float(cross_validated_aligned(
                        m, ca, cb, n_splits=opts.n_splits, seed=opts.seed)) for ca, cb in cell])))
                elif "cross_validated" in stats:
                    put("cv_score", k, idx, np.nan)

    dims = ("measure",) + tuple(grid_dims)
    extra_dims = {"null": ("permutation",), "session_score": ("session",)}
    variables: dict[str, tuple[Any, Any]] = {name: (dims + extra_dims.get(name, ()), values)
                                             for name, values in out.items()}
    if "noise_ceiling" in stats:
        data_reps = [b for _, b in all_pairs[0]]
        variables["noise_ceiling"] = ("measure", [float(np.mean([float(noise_ceiling(
            m, rep, seed=opts.seed, n_jobs=opts.n_jobs, backend=opts.backend)) for rep in data_reps])) for m in ms])
    if "bootstrap" in stats:
        variables["ci_method"] = ("measure", ["; ".join(sorted(methods[n])) for n in names])
    coords = dict(measure=names, convention=("measure", [m.convention for m in ms]),
                  metric=("measure", [m.metric for m in ms]), label=("measure", [m.label for m in ms]),
                  **grid_coords)
    if session_names is not None:
        coords["session"] = session_names
    ds = xr.Dataset(variables, coords=coords)
    attrs = {"score": "value of each measure (see convention); for several sessions the mean of session_score",
             "session_score": "value of each measure in each session",
             "ci_low": f"{opts.ci:.0%} bootstrap lower bound (method in ci_method)",
             "ci_high": f"{opts.ci:.0%} bootstrap upper bound (method in ci_method)",
             "bias": "bootstrap bias: mean of the replicates minus score, or minus the plug-in target's value "
                     "for the noise-corrected Procrustes distance (score - bias is bias-corrected)",
             "se": "bootstrap standard error",
             "ci_estimate": "the point estimate the interval belongs to: score, or its bootstrap bias-corrected "
                            "value for the 'bias_corrected' interval (crossnobis RSA, noise-corrected Procrustes)",
             "ci_method": "bootstrap interval method and what was resampled",
             "p_value": "one-sided permutation p-value (k + 1) / (n + 1), shuffling the data's "
                        f"{opts.permute_over} ('auto': time blocks for dsa, conditions otherwise)",
             "null_mean": "mean of the permutation null", "null": "permutation null samples",
             "noise_ceiling": "split-half noise ceiling of the data, Spearman-Brown extrapolated",
             "cv_score": f"{opts.n_splits or 'min(5, n_conditions)'}-fold held-out score over conditions; NaN for "
                         "measures that fit nothing"}
    for key in ds.data_vars:
        ds[key].attrs["description"] = attrs[str(key)]
    ds.attrs.update(n_conditions=a0.n_conditions, n_units_model=a0.n_units, n_units_data=b0.n_units,
                    resolution=resolution, seed=opts.seed, conditions=how.conditions, time=how.time,
                    n_boot=opts.n_boot, n_perm=opts.n_perm, ci=opts.ci, align_options=how.to_json(),
                    stats_options=opts.to_json())
    return ds
