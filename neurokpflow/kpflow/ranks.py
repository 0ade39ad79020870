"""Effective rank in the five definitions of kpflow-math §5, chosen explicitly.

``effective_rank(A, definition=..., keep=..., reduction=...)``

===== ===================================== ==================================================
id    name                                   value
===== ===================================== ==================================================
ER1   ``"variance_threshold"``               interpolated count of top eigenvalues holding
                                             ``threshold`` (0.95) of the variance; eigenvalues
                                             λ of ``G`` (not squared), normalised over the top
                                             ``k`` computed ones, so the value depends on ``k``
ER2   ``"gram_participation_ratio"``         ``tr(G_r)² / ‖G_r‖_F²`` with ``G = A A*`` — for PSD
                                             ``A`` this is ``PR(λ²)``; ``= m · KA(G_r, I)²``
ER3   ``"participation_ratio"``              ``tr(G)² / tr(G²) = PR(λ)`` with ``G = A`` (self-adjoint)
ER4   ``"activity_participation_ratio"``     PR of the (centred or uncentred) second-moment
                                             matrix of activity ``X`` [samples, units]
ER5   ``"schmidt"``                          ``(Σσ_r²)² / Σσ_r⁴`` over the Schmidt coefficients of
                                             ``A`` split as (kept axes) ⊗ (other axes)
===== ===================================== ==================================================

``PR(μ) = (Σμ)² / Σμ²``.  ``G`` is first reduced onto the ``keep`` axes with the named
``reduction`` (``"partial_trace"`` or ``"block_average"``, see :mod:`.reductions`); ``keep``
names the axes that are *kept*.  Non-self-adjoint operators (``P``) enter ER1/ER3 through their
Gram operator: pass ``P.gram()``.

Inputs: a ``LinearOperator`` (ER1, ER2, ER3, ER5); a 1-D spectrum of eigenvalues of a PSD
operator (ER1, ER2, ER3); activity as an ``xarray.DataArray`` with a ``unit`` dimension or a
tensor/array whose last axis is units (ER4).  Every result is an
:class:`~neurokpflow.kpflow.estimators.Estimate` whose ``meta`` records the definition, kept
axes, reduction and estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._validation import OptionsMixin, split_fields
from .eigen import KrylovOptions, eigsh
from .estimators import Estimate, _chunks, alignment, make_estimate, sketch
from .linop import LinearOperator, identity
from .reductions import block_average, operator_dims, partial_trace, resolve_axes
from ._probes import basis_vectors, batched_dot, chunk_size_for
from ..errors import InputError, InputTypeError

__all__ = ["effective_rank", "RankOptions", "DEFINITIONS"]

DEFINITIONS = {
    "ER1": "variance_threshold",
    "ER2": "gram_participation_ratio",
    "ER3": "participation_ratio",
    "ER4": "activity_participation_ratio",
    "ER5": "schmidt",
}
_BY_NAME = {v: k for k, v in DEFINITIONS.items()}


def _definition_id(definition) -> str:
    if definition in DEFINITIONS:
        return definition
    if definition in _BY_NAME:
        return _BY_NAME[definition]
    choices = ", ".join(f"{k!r}/{v!r}" for k, v in DEFINITIONS.items())
    raise InputError(f"definition must be one of {choices}; got {definition!r}")


def _pr(mu: torch.Tensor) -> float:
    mu = mu.to(torch.float64)
    return float(mu.sum() ** 2 / (mu ** 2).sum())


def threshold_rank(values, threshold: float = 0.95) -> float:
    """ER1 on given non-negative values: ``(i*−1) + (τ − C_{i*−1}) / (C_{i*} − C_{i*−1})``.

    ``p_i = v_i / Σ v`` sorted descending, ``C`` their cumulative sums, ``i*`` the smallest
    index with ``C_i > τ``.  E.g. ``p = (0.9, 0.08, 0.02)`` gives 1.625, a flat spectrum of n
    values ``τ·n``.
    """
    if not 0 < threshold < 1:
        raise InputError(f"threshold must lie in (0, 1), got {threshold}")
    v = torch.as_tensor(values, dtype=torch.float64).flatten().sort(descending=True).values
    if (v < -1e-12 * v.abs().max()).any():
        raise InputError("ER1 needs non-negative eigenvalues (a PSD operator); pass A.gram() for other operators")
    C = torch.cat([v.new_zeros(1), torch.cumsum(v.clamp_min(0), 0) / v.clamp_min(0).sum()])
    i = int(torch.nonzero(C[1:] > threshold)[0]) + 1
    return (i - 1) + (threshold - float(C[i - 1])) / float(C[i] - C[i - 1])


def _reduced(A: LinearOperator, keep, reduction):
    if keep is None:
        if reduction is not None:
            raise InputError("reduction= was given without keep=; name the axes to keep")
        return A, None, None
    kept = resolve_axes(A, keep, arg="keep")
    dims = operator_dims(A)
    traced = tuple(i for i in range(len(A.shape_in)) if i not in kept)
    if not traced:
        return A, tuple(dims[i] for i in kept), None
    if reduction not in ("partial_trace", "block_average"):
        raise InputTypeError(f"keep={keep!r} needs reduction='partial_trace' or reduction='block_average' "
                        f"(got {reduction!r}); the two differ unless A is C ⊗ I on the reduced axes")
    fn = partial_trace if reduction == "partial_trace" else block_average
    return fn(A, traced), tuple(dims[i] for i in kept), reduction


def _shared_probe_pr(G: LinearOperator, budget, seed, level, chunk_size, meta) -> Estimate:
    """ER3 from one application per probe: a_j = gᵀGg, b_j = ‖Gg‖² (exact over the basis if budget ≥ dim).

    The randomized estimate is the shared sketch's (:func:`~.estimators.sketch`), so the same
    probes also give the trace, the Frobenius norm and alignments at no further cost."""
    dim = G.size_in
    if budget is not None and budget < dim:
        if budget < 2:
            raise InputError(f"budget={budget} is too small: the participation ratio needs at least 2 probes")
        return sketch(G, budget, seed=seed, level=level, chunk_size=chunk_size).effective_rank(meta)
    chunk = chunk_size_for(G, chunk_size)
    a, b = [], []
    for start, stop in _chunks(dim, chunk):
        X = basis_vectors(start, stop, G.shape_in, G.dtype, G.device)
        GX = G.matvec(X)
        a.append(batched_dot(X, GX))
        b.append(batched_dot(GX, GX))
    return make_estimate(float(torch.cat(a).sum() ** 2 / torch.cat(b).sum()), 0.0, level=level, method="exact",
                         n_matvecs=dim, meta=meta)


def _activity(X, centered, unit_dim):
    if isinstance(X, xr.DataArray):
        if unit_dim not in X.dims:
            raise InputError(f"activity has dims {X.dims}; it needs a {unit_dim!r} dimension (unit_dim=)")
        X = X.transpose(..., unit_dim).values
    X = torch.as_tensor(np.asarray(X) if not isinstance(X, torch.Tensor) else X).to(torch.float64)
    if X.dim() < 2:
        raise InputError("activity needs at least two axes: samples and units")
    X = X.reshape(-1, X.shape[-1])
    if centered:
        X = X - X.mean(0)
    M = X.T @ X / X.shape[0]
    return float(torch.trace(M) ** 2 / (M * M).sum())


@dataclass(frozen=True)
class RankOptions(OptionsMixin):
    """The definition-specific settings of :func:`effective_rank`, given to it as keywords.

    ``k`` and ``threshold`` (ER1), ``centered`` and ``unit_dim`` (ER4), ``level`` (confidence level
    of the estimate's interval) and ``chunk_size`` (probes per operator application).
    """

    k: int | None = None
    threshold: float = 0.95
    centered: bool = True
    unit_dim: str = "unit"
    level: float = 0.95
    chunk_size: int | None = None


def effective_rank(A, *, definition, keep=None, reduction: str | None = None, budget: int | None = None,
                   method: str | None = None, seed=None, **options) -> Estimate:
    """Effective rank of an operator, a spectrum or activity, in an explicitly named definition.

    ``options``: the fields of :class:`RankOptions` and, for ER1 through the eigensolver, of
    :class:`~neurokpflow.kpflow.KrylovOptions`.  See :func:`_effective_rank` for every parameter.
    """
    rank_fields, solver = split_fields(options, "effective_rank", RankOptions, KrylovOptions)
    o = RankOptions.resolve(None, rank_fields, "effective_rank")
    return _effective_rank(A, definition=definition, keep=keep, reduction=reduction, budget=budget, method=method,
                           k=o.k, threshold=o.threshold, centered=o.centered, unit_dim=o.unit_dim, seed=seed,
                           level=o.level, chunk_size=o.chunk_size, **solver)


def _effective_rank(A, *, definition, keep=None, reduction: str | None = None, budget: int | None = None,
                    method: str | None = None, k: int | None = None, threshold: float = 0.95,
                    centered: bool = True, unit_dim: str = "unit", seed=None, level: float = 0.95,
                    chunk_size: int | None = None, **eigsh_kwargs) -> Estimate:
    """Effective rank of an operator, a spectrum or activity, in an explicitly named definition.

    Parameters
    ----------
    A : LinearOperator, 1-D spectrum, or activity (DataArray / tensor [..., units])
    definition : {"ER1".."ER5"} or their names (module docstring); required.
    keep : axis names or indices to keep (operators only); ``None`` uses the whole operator.
    reduction : {"partial_trace", "block_average"}; required whenever ``keep`` drops axes.
    budget : probes for the randomized ER2/ER3 estimators (exact once it reaches the dimension).
    method : ER2: ``"sketch"`` (default) or ``"exact"``; ER3: ``"hutchinson"`` (default; one
        application per probe gives both ``gᵀGg`` and ``‖Gg‖²``, delta-method error) or ``"exact"``.
    k : ER1 only, number of top eigenvalues computed (required; the value depends on it).
    threshold : ER1 variance fraction τ.
    centered : ER4 only, centre the activity before the second moment.
    """
    did = _definition_id(definition)
    meta: dict[str, Any] = {"definition": did, "name": DEFINITIONS[did]}
    if did == "ER4":
        if isinstance(A, LinearOperator):
            raise InputTypeError("ER4 (activity participation ratio) takes activity [samples..., units], not an operator")
        value = _activity(A, centered, unit_dim)
        return make_estimate(value, 0.0, level=level, method="exact", n_matvecs=0,
                             meta=dict(meta, centered=bool(centered)))
    if not isinstance(A, LinearOperator):
        spec = torch.as_tensor(np.asarray(A) if not isinstance(A, torch.Tensor) else A)
        if spec.dim() != 1:
            raise InputTypeError(f"{did} takes a LinearOperator or a 1-D spectrum of eigenvalues, got shape "
                            f"{tuple(spec.shape)}; activity goes with definition='ER4'")
        if did == "ER5":
            raise InputTypeError("ER5 (Schmidt rank) needs the operator, not its spectrum")
        value = {"ER1": lambda s: threshold_rank(s, threshold), "ER2": lambda s: _pr(s.double() ** 2),
                 "ER3": _pr}[did](spec)
        return make_estimate(value, 0.0, level=level, method="exact", n_matvecs=0, meta=dict(meta, input="spectrum"))

    if did == "ER5":
        return _schmidt(A, keep, level, meta)
    base = A @ A.T if did == "ER2" else A
    G, kept_dims, red = _reduced(base, keep, reduction)
    meta.update(keep=kept_dims, reduction=red, gram=did == "ER2", dimension=G.size_in)
    if did == "ER3":
        if method not in (None, "hutchinson", "exact"):
            raise InputError(f"ER3 method must be 'hutchinson' or 'exact', got {method!r}")
        if method != "exact" and budget is None:
            raise InputTypeError("ER3 needs budget= (probes) or method='exact'")
        return _shared_probe_pr(G, None if method == "exact" else budget, seed, level, chunk_size, meta)
    if did == "ER2":
        ka = alignment(G, identity(G), budget, method or "sketch", seed=seed, level=level, chunk_size=chunk_size)
        m = G.size_in
        lo, hi = ka.interval
        meta.update(alignment_with_identity=ka.value, alignment_stderr=ka.stderr)
        return Estimate(m * ka.value ** 2, 2 * m * abs(ka.value) * ka.stderr,
                        (m * max(lo, 0.0) ** 2, m * min(hi, 1.0) ** 2), ka.level, ka.method, ka.n_matvecs, meta)
    # ER1
    if k is None:
        raise InputTypeError("ER1 needs k= (number of top eigenvalues); the value depends on it")
    if k >= G.size_in:
        values = torch.linalg.eigvalsh(G.to_dense().double()).flip(0)[:k]
        n_mv = G.size_in
    else:
        r = eigsh(G, k, which="LA", seed=seed, **eigsh_kwargs)
        values, n_mv = r.values, r.n_matvecs
    meta.update(k=k, threshold=threshold, eigenvalues=values.cpu().numpy())
    return make_estimate(threshold_rank(values, threshold), 0.0, level=level, method="eigsh",
                         n_matvecs=n_mv, meta=meta)


def _schmidt(A: LinearOperator, keep, level, meta) -> Estimate:
    if keep is None:
        raise InputTypeError("ER5 needs keep= (the axes of one tensor factor, e.g. keep=('trial', 'time'))")
    if A.shape_in != A.shape_out:
        raise InputError("ER5 needs a square operator")
    kept = resolve_axes(A, keep, arg="keep")
    nd = len(A.shape_in)
    other = tuple(i for i in range(nd) if i not in kept)
    if not other:
        raise InputError("keep names every axis; ER5 needs a split into two non-empty factors")
    M = A.to_dense().double().reshape(*A.shape_in, *A.shape_in)
    perm = kept + tuple(nd + i for i in kept) + other + tuple(nd + i for i in other)
    n1 = int(np.prod([A.shape_in[i] for i in kept])) ** 2
    R = M.permute(perm).reshape(n1, -1)
    s2 = torch.linalg.svdvals(R) ** 2
    dims = operator_dims(A)
    meta.update(keep=tuple(dims[i] for i in kept), schmidt_coefficients=s2.sqrt().numpy())
    return make_estimate(_pr(s2), 0.0, level=level, method="exact", n_matvecs=A.size_in, meta=meta)


effective_rank.__doc__ = _effective_rank.__doc__
