"""Cross-validated linear predictivity (Brain-Score style encoding model)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ._inputs import Representation
from ._measure import Measure, check_option
from ._reliability import condition_folds, pearson_columns, spearman_brown, split_half_reliability
from ._result import DegenerateInputError, Score
from .._validation import Rule, Satisfies, check_params, numpy_rng


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alphas: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Ridge on centred data with the penalty chosen by generalized cross-validation (exact LOO-style GCV)."""
    mx, my = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    u, s, vh = torch.linalg.svd(x - mx, full_matrices=False)
    uty = u.T @ (y - my)
    n = x.shape[0]
    best: tuple[float, float | None] = (np.inf, None)
    for alpha in alphas:
        shrink = s ** 2 / (s ** 2 + alpha)
        resid = (y - my) - u @ (shrink[:, None] * uty)
        dof = float(shrink.sum())
        gcv = float(torch.sum(resid ** 2)) / max(n - dof, 1e-12) ** 2
        if gcv < best[0]:
            best = (gcv, alpha)
    if best[1] is None:
        raise DegenerateInputError(f"no ridge penalty among {list(alphas)} gives a finite GCV score (non-finite "
                                   "activity?); check the inputs for NaN/inf")
    alpha = float(best[1])
    coef = vh.T @ ((s / (s ** 2 + alpha))[:, None] * uty)
    return coef, my - mx @ coef, float(alpha)


class Predictivity(Measure):
    """Cross-validated ridge from the first input's units to each unit of the second.

    Folds hold out whole conditions (``n_splits``-fold, default min(5, n_conditions), shuffled with ``seed``); the penalty is picked
    by GCV on each training fold from ``alphas``. Per-unit Pearson r on held-out rows is averaged
    over folds, and the value is the ``aggregate`` (median or mean) over target units. With
    ``ceiling`` the value is the ceiling-normalised explained variance sign(r) (r / c)^2, r and c
    aggregated over units, where c is the highest correlation a perfect model can reach: per unit
    c = sqrt(reliability of the trial average). ``ceiling="split_half"`` estimates it from the second
    input's trials (:func:`split_half_reliability`); a number or per-unit array gives c directly.
    Not symmetric, not a metric.
    """

    measure = "predictivity"
    convention = "score"
    symmetric = False

    def __init__(self, alphas: Sequence[float] = tuple(np.logspace(-4, 4, 9)), n_splits: int | None = None,
                 aggregate: str = "median", ceiling: Any = None, seed: int = 0):
        check_option("aggregate", aggregate, ("median", "mean"))
        if isinstance(ceiling, str):
            check_option("ceiling", ceiling, ("split_half",))
        check_params({"alphas": Rule(Satisfies(lambda a: len(a) > 0 and all(np.isfinite(v) and v >= 0 for v in a),
                                               "a non-empty sequence of penalties >= 0"), "e.g. alphas=(1e-2, 1, 1e2)")},
                     alphas=tuple(alphas))
        self.alphas, self.n_splits, self.aggregate, self.ceiling, self.seed = tuple(alphas), n_splits, aggregate, ceiling, seed
        # Transforms of the source (first) input. Scale and general linear maps interact with the ridge
        # penalty grid, so no guarantee is declared for them either way.
        self.invariances = dict(rotation=True, permutation=True, translation=True)

    def params(self):
        p = dict(model="ridge-gcv", folds=self.n_splits or "auto", aggregate=self.aggregate)
        if self.ceiling is not None:
            p["ceiling"] = self.ceiling if isinstance(self.ceiling, str) else "given"
        return p

    def _aggregate(self, values: np.ndarray) -> float:
        return float(np.median(values) if self.aggregate == "median" else np.mean(values))

    def per_unit_r(self, a: Representation, b: Representation) -> tuple[np.ndarray, list[float]]:
        x, y = a.matrix(), b.matrix()
        rng = numpy_rng(self.seed)
        rs, alphas = [], []
        for test in condition_folds(a.row_groups(), self.n_splits, rng):
            train = np.setdiff1d(np.arange(x.shape[0]), test)
            if len(test) < 2:
                raise DegenerateInputError("a held-out fold has fewer than 2 samples; lower n_splits")
            coef, intercept, alpha = ridge_fit(x[train], y[train], self.alphas)
            rs.append(pearson_columns(x[test] @ coef + intercept, y[test]))
            alphas.append(alpha)
        r = torch.stack(rs).mean(0).numpy()
        if np.isnan(r).any():
            bad = np.flatnonzero(np.isnan(r)).tolist()
            raise DegenerateInputError(f"target unit(s) {bad} (or their predictions) are constant on a held-out fold; "
                                       "Pearson r is undefined — drop constant units")
        return r, alphas

    def evaluate(self, a, b, state):
        r, alphas = self.per_unit_r(a, b)
        details = {"r_per_unit": r, "alpha_per_fold": alphas, "r": self._aggregate(r)}
        value = details["r"]
        if self.ceiling is not None:
            c = (np.sqrt(np.clip(split_half_reliability(b, seed=self.seed), 0.0, None)) if isinstance(self.ceiling, str)
                 else np.broadcast_to(np.asarray(self.ceiling, dtype=float), r.shape))
            c_agg = self._aggregate(c)
            if c_agg <= 0:
                raise DegenerateInputError(f"the aggregated noise ceiling is {c_agg:.3g} <= 0; normalisation undefined")
            value = float(np.sign(value) * (value / c_agg) ** 2)
            details.update(ceiling_per_unit=np.asarray(c), ceiling=c_agg, normalised=value)
        return value, details

    def check(self, a, b):
        super().check(a, b)
        condition_folds(a.row_groups(), self.n_splits, np.random.default_rng(0))


def predictivity(X: Any, Y: Any, *, alphas: Sequence[float] = tuple(np.logspace(-4, 4, 9)), n_splits: int | None = None,
                 aggregate: str = "median", ceiling: Any = None, seed: int = 0, **align_options: Any) -> Score:
    """Cross-validated ridge predictivity of Y's units from X; see :class:`Predictivity`."""
    return Predictivity(alphas, n_splits, aggregate, ceiling, seed)(X, Y, **align_options)
