"""The single entry point: model recording + data recording -> one xarray.Dataset of scores."""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import numpy as np
import xarray as xr

from ._inputs import Representation, align
from ._measure import check_option
from ._registry import get_measure
from .stats import bootstrap_aligned, cross_validated_aligned, noise_ceiling, permutation_aligned
from .temporal import TRAINING_DIMS, split_checkpoints

STATS = ("bootstrap", "permutation", "noise_ceiling", "cross_validated")


def _cells(a: Representation, b: Representation, resolution: str):
    """(index tuple, first, second) for every score cell of the requested resolution."""
    if resolution == "overall":
        return [((), a, b)]
    if resolution == "time":
        return [((t,), a.take_times([t]), b.take_times([t])) for t in range(a.n_times)]
    return [((i, j), a.take_times([i]), b.take_times([j])) for i, j in itertools.product(range(a.n_times), range(b.n_times))]


def compare(model: Any, data: Any, measures: Sequence[Any] = ("procrustes", "cka", "rsa"),
            stats: Sequence[str] = ("bootstrap", "permutation"), *, condition: Any = None, var: Any = None,
            conditions: str = "exact", time: str = "exact", resolution: str = "overall", along: str | None = None,
            n_boot: int = 200, n_perm: int = 200, ci: float = 0.95, bootstrap_over: str = "conditions",
            permute_over: str = "auto", n_splits: int | None = None, seed: int = 0) -> xr.Dataset:
    """Compare a model recording with a data recording under several measures, with statistics.

    Parameters
    ----------
    model, data : recordings (xarray DataArray/Dataset, e.g. ``neurokpflow.record(...)`` output and an
        NWB-loaded ``spike_count``), or arrays; see :func:`align` for ``condition``, ``var``,
        ``conditions`` and ``time``. A model with a ``checkpoint``/``step``/``epoch`` dim (or ``along``),
        a mapping or a list of recordings is compared checkpoint by checkpoint.
    measures : names from :data:`neurokpflow.compare.MEASURES` or :class:`Measure` instances.
    stats : any of ``"bootstrap"`` (percentile CI, ``bootstrap_over`` conditions/trials/both),
        ``"permutation"`` (null over ``permute_over`` conditions/time_blocks; ``"auto"`` shuffles time
        blocks for dsa, whose pooled operator fit ignores condition order, and conditions otherwise), ``"noise_ceiling"``
        (split-half ceiling of the data, Spearman-Brown extrapolated) and ``"cross_validated"``
        (K-fold over conditions, fitted measures only).
    resolution : ``"overall"``, ``"time"`` (a score per time bin) or ``"cross_temporal"`` (time x time).

    Returns
    -------
    xarray.Dataset with dim ``measure`` (estimator names; coords ``convention`` and ``metric``) and
    variables ``score`` and, per requested statistic, ``ci_low``/``ci_high``, ``p_value``/``null_mean``/
    ``null``, ``noise_ceiling``, ``cv_score``. ``cv_score`` is NaN for measures that fit nothing
    (documented in its attrs); every other value is finite or an error is raised.
    """
    check_option("resolution", resolution, ("overall", "time", "cross_temporal"))
    for s in stats:
        check_option("stats entry", s, STATS)
    ms = [get_measure(m) for m in measures]
    names = [m.estimator for m in ms]
    if len(set(names)) != len(names):
        raise ValueError(f"measures repeat an estimator: {names}")
    opts = dict(condition=condition, var=var, conditions=conditions, time=time)

    has_training = along is not None or isinstance(model, (list, tuple, dict)) or (
        isinstance(model, (xr.DataArray, xr.Dataset)) and any(d in model.dims for d in TRAINING_DIMS))
    if has_training:
        train_dim, train_values, recordings = split_checkpoints(model, along)
    else:
        train_dim, train_values, recordings = None, [None], [model]
    pairs = [align(rec, data, **opts) for rec in recordings]
    a0, b0 = pairs[0]
    data_rep = b0

    grid_dims, grid_coords = [], {}
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

    def put(var_name, k, index, value, extra=()):
        if var_name not in out:
            out[var_name] = np.full((len(ms),) + shape + tuple(extra), np.nan)
        out[var_name][(k,) + index] = value

    for c, (a, b) in enumerate(pairs):
        prefix = (c,) if train_dim else ()
        for index, ca, cb in _cells(a, b, resolution):
            for k, m in enumerate(ms):
                idx = prefix + index
                put("score", k, idx, float(m.score(ca, cb)))
                if "bootstrap" in stats:
                    boot = bootstrap_aligned(m, ca, cb, over=bootstrap_over, n_boot=n_boot, ci=ci, seed=seed)
                    put("ci_low", k, idx, boot.low)
                    put("ci_high", k, idx, boot.high)
                if "permutation" in stats:
                    over = permute_over if permute_over != "auto" else (
                        "time_blocks" if m.measure == "dsa" else "conditions")
                    perm = permutation_aligned(m, ca, cb, over=over, n_perm=n_perm, seed=seed)
                    put("p_value", k, idx, perm.p_value)
                    put("null_mean", k, idx, float(perm.null.mean()))
                    put("null", k, idx, np.resize(perm.null, n_perm), extra=(n_perm,))
                if "cross_validated" in stats and m.fitted:
                    put("cv_score", k, idx, float(cross_validated_aligned(m, ca, cb, n_splits=n_splits, seed=seed)))
                elif "cross_validated" in stats:
                    put("cv_score", k, idx, np.nan)

    dims = ("measure",) + tuple(grid_dims)
    variables = {name: (dims + (("permutation",) if name == "null" else ()), values) for name, values in out.items()}
    if "noise_ceiling" in stats:
        variables["noise_ceiling"] = ("measure", [float(noise_ceiling(m, data_rep, seed=seed)) for m in ms])
    ds = xr.Dataset(variables, coords=dict(measure=names, convention=("measure", [m.convention for m in ms]),
                                           metric=("measure", [m.metric for m in ms]), **grid_coords))
    attrs = {"score": "in-sample value of each measure (see convention)",
             "ci_low": f"{ci:.0%} percentile bootstrap lower bound over {bootstrap_over}",
             "ci_high": f"{ci:.0%} percentile bootstrap upper bound over {bootstrap_over}",
             "p_value": f"one-sided permutation p-value, shuffling the data's {permute_over} ('auto': time blocks "
                        "for dsa, conditions otherwise)",
             "null_mean": "mean of the permutation null", "null": "permutation null samples",
             "noise_ceiling": "split-half noise ceiling of the data, Spearman-Brown extrapolated",
             "cv_score": f"{n_splits or 'min(5, n_conditions)'}-fold held-out score over conditions; NaN for measures that fit nothing"}
    for name in ds.data_vars:
        ds[name].attrs["description"] = attrs[name]
    ds.attrs.update(n_conditions=a0.n_conditions, n_units_model=a0.n_units, n_units_data=b0.n_units,
                    resolution=resolution, seed=seed, conditions=conditions, time=time)
    return ds
