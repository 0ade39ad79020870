"""Randomized trace, Frobenius-norm and alignment estimators with error bars.

Every estimator returns an :class:`Estimate`: it converts with ``float()``, carries a
standard error ``.stderr`` and a confidence ``.interval`` at ``.level``, and records how it
was obtained (``.method``, ``.n_matvecs``, ``.meta``).  A zero standard error means the value
is exact up to floating point (the budget reached the dimension, or a closed form was used).

Conventions
-----------
* The trace of a square operator is the trace of its matrix (basis independent); it does
  not depend on the inner-product weights.
* For a factor ``J`` (``method="jvp"``/``"vjp"``), ``trace`` estimates ``tr(J J*)`` where ``J*``
  is the adjoint with respect to the operator's inner products: with Euclidean matrix ``M``
  and weights ``w_in``, ``w_out``, ``tr(J J*) = (w_out / w_in) ‖M‖_F²``.  For the KPFlow
  ``J_θ`` (parameters → states) this is ``tr K`` in either ``inner=`` convention.
* ``frobenius_norm(A) = sqrt(tr(A* A))`` (the Hilbert–Schmidt norm) and
  ``alignment(A, B) = tr(A* B) / (‖A‖_F ‖B‖_F)``; for square operators whose two spaces share
  a weight these are the usual matrix quantities.
* Probes are Rademacher (``distribution="rademacher"``, the default) or Gaussian, created on
  the operator's device in its dtype, ``chunk_size`` at a time; sums accumulate in float64.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, cast

import torch
from scipy import special

from .linop import LinearOperator, apply_pair, gram_factor
from ._probes import basis_vectors, batched_dot, chunk_size_for, make_generator, random_probes
from ..errors import InputError, InputTypeError

__all__ = ["Estimate", "trace", "frobenius_norm", "alignment", "sketch", "Sketch"]

TRACE_METHODS = ("hutch++", "hutchinson", "jvp", "vjp", "exact")
#: smallest budget each randomized method accepts (two residual probes give a standard error)
MIN_BUDGET = {"hutch++": 4, "hutchinson": 2, "jvp": 2, "vjp": 2, "nystrom": 4, "trial_pairs": 3}


@dataclass(frozen=True)
class Estimate:
    """A scalar estimate with its uncertainty.

    Attributes
    ----------
    value : float
        The point estimate (also ``float(est)``).
    stderr : float
        Standard error; ``0.0`` for exact results.
    interval : (float, float)
        Confidence interval at ``level`` (Student-t on the probe samples, or the image of
        that interval under the monotone map defining a derived quantity).
    level : float
        Confidence level of ``interval``.
    method : str
        Estimator used (``"hutch++"``, ``"hutchinson"``, ``"jvp"``, ``"vjp"``, ``"sketch"``,
        ``"traces"``, ``"exact"``, ``"structured"``...).
    n_matvecs : int
        Operator applications spent (a composite such as ``A* A`` counts once per factor).
    meta : dict
        Everything needed to reproduce or interpret the number (definition, axes, seed...).
    """

    value: float
    stderr: float
    interval: tuple
    level: float
    method: str
    n_matvecs: int
    meta: dict = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    @property
    def exact(self) -> bool:
        return self.stderr == 0.0

    @property
    def relative_stderr(self) -> float:
        return abs(self.stderr / self.value) if self.value != 0 else math.inf

    def __repr__(self) -> str:
        lo, hi = self.interval
        return (f"Estimate({self.value:.6g} ± {self.stderr:.3g}, {100 * self.level:g}% CI "
                f"[{lo:.6g}, {hi:.6g}], method={self.method!r}, n_matvecs={self.n_matvecs})")


def _quantile(level: float, dof: float) -> float:
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level}")
    p = 0.5 + level / 2
    # scipy.stats' norm.ppf and t.ppf are these special functions (scipy.special imports in a quarter of the time)
    return float(special.ndtri(p) if not math.isfinite(dof) else special.stdtrit(dof, p))


def make_estimate(value, stderr, *, level, method, n_matvecs, meta, dof=math.inf,
                  transform: Callable | None = None, derivative: Callable | None = None) -> Estimate:
    """Build an :class:`Estimate` from a (value, stderr) pair.

    With ``transform`` (monotone increasing on the relevant range) the reported value is
    ``transform(value)``, the interval is the image of the symmetric interval, and the
    standard error follows the delta method with ``derivative``.
    """
    value, stderr = float(value), float(stderr)
    half = _quantile(level, dof) * stderr if stderr > 0 else 0.0
    lo, hi = value - half, value + half
    if transform is not None:
        # derivative goes with transform (without it the call raises TypeError)
        stderr = abs(float(cast(Callable, derivative)(value))) * stderr if stderr > 0 else 0.0
        value, lo, hi = float(transform(value)), float(transform(lo)), float(transform(hi))
    return Estimate(value, stderr, (lo, hi), float(level), method, int(n_matvecs), dict(meta))


# ----------------------------------------------------------------------------- helpers
def _require_operator(A, name="A") -> LinearOperator:
    if not isinstance(A, LinearOperator):
        raise InputTypeError(f"{name} must be a neurokpflow LinearOperator, got {type(A).__name__}; "
                        "wrap a dense matrix with DenseOperator")
    return A


def _require_square(A: LinearOperator, name="A", hint=""):
    if A.shape_in != A.shape_out:
        raise InputError(f"{name} ({A.name}) maps {list(A.shape_in)} -> {list(A.shape_out)}; "
                         f"this needs a square operator{hint}")


def _check_budget(budget, method, dim) -> int:
    if budget is None:
        raise InputTypeError(f"method={method!r} needs budget= (number of operator applications); "
                        f"pass budget>={MIN_BUDGET[method]}, or method='exact'")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise InputTypeError(f"budget must be an int, got {type(budget).__name__}")
    if budget < MIN_BUDGET[method]:
        raise InputError(f"budget={budget} is too small for method={method!r}: it needs at least "
                         f"{MIN_BUDGET[method]} operator applications (dimension {dim})")
    return budget


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _probe_samples(sample_fn, n, shape, dtype, device, gen, kind, chunk, project=None) -> torch.Tensor:
    """Per-probe float64 samples ``sample_fn(G)`` over ``n`` random probes, chunk by chunk."""
    out = []
    for start, stop in _chunks(n, chunk):
        G = random_probes(stop - start, shape, dtype, device, gen, kind)
        if project is not None:
            G = project(G)
        out.append(sample_fn(G))
    return torch.cat(out)


def _basis_sum(sample_fn, shape, dtype, device, chunk) -> float:
    """``Σ_i sample_fn(e_i)`` over the standard basis (exact evaluation)."""
    n = int(torch.Size(shape).numel())
    total = torch.zeros((), dtype=torch.float64, device=device)
    for start, stop in _chunks(n, chunk):
        total = total + sample_fn(basis_vectors(start, stop, shape, dtype, device)).sum()
    return float(total)


def _apply_chunked(fn, X: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([fn(X[a:b]) for a, b in _chunks(X.shape[0], chunk)])


def _mean_stderr(samples: torch.Tensor):
    m = samples.numel()
    return float(samples.mean()), float(samples.std(unbiased=True) / math.sqrt(m)), m - 1


# ----------------------------------------------------------------------------- trace
def _quad_form(A: LinearOperator):
    return lambda G: batched_dot(G, A.matvec(G))


def _norm2(apply, c):
    """Probe -> ``c · ‖apply(probe)‖²`` (batched over probes)."""
    def sample(V):
        AV = apply(V)
        return c * batched_dot(AV, AV)
    return sample


def _jvp_norm2(J: LinearOperator):
    return _norm2(J.matvec, J.weight_out / J.weight_in)


def _vjp_norm2(J: LinearOperator):
    return _norm2(J.rmatvec, J.weight_in / J.weight_out)


BLOCK_AXES = {"trial": 0}


def _vjp_block_norm2(J: LinearOperator, axis: int):
    """Per probe ``Σ_b ‖J* s_b‖²`` (``s_b``: the probe on block ``b`` only).

    Unbiased for ``tr(J J*)`` like ``‖J* s‖²``, without the cross-block terms
    ``2 Σ_{b≠b'} ⟨J* s_b, J* s_b'⟩`` that carry most of its variance when ``J J*`` couples the
    blocks (``K`` couples trials through the shared parameters; ``P`` does not)."""
    c = J.weight_in / J.weight_out
    return lambda S: c * J._rmatmat_block_sqnorms(S, axis).sum(1)


def trace(A, budget: int | None = None, method: str = "hutch++", *, seed=None,
          distribution: str = "rademacher", level: float = 0.95, chunk_size: int | None = None,
          blocks: str | None = "auto") -> Estimate:
    """Estimate the trace of a square operator, or ``tr(J J*)`` from the factor ``J``.

    Parameters
    ----------
    A : LinearOperator
        The operator (``hutch++``, ``hutchinson``, ``exact``) or the factor ``J`` of
        ``A = J J*`` (``jvp``, ``vjp``).
    budget : int
        Number of operator applications.  Once it reaches the dimension of the probed space
        the exact value is computed instead (with fewer applications) and ``stderr == 0``.
    method : {"hutch++", "hutchinson", "jvp", "vjp", "exact"}
        * ``"hutchinson"``: mean of ``gᵀ A g`` over ``budget`` probes (needs ≥ 2).
        * ``"hutch++"`` (Meyer et al. 2021): ``k = budget // 3`` sketch columns, the exact trace
          on ``Q = orth(A S)`` (``k`` more applications), and Hutchinson with the remaining
          ``budget - 2k`` probes on the deflated remainder, weighted ``1/(budget - 2k)`` so the
          estimate is unbiased for every budget (needs ≥ 4).  The standard error is the one of
          the remainder term given the sketch.
        * ``"jvp"``: ``tr(J J*) = E ‖J v‖²`` with probes ``v`` in the input space (one forward
          application each).  ``"vjp"``: ``E ‖J* s‖²`` with ``s`` in the output space (one adjoint
          application each); split by trials (``blocks``) where the factor allows it.
        * ``"exact"``: sum of diagonal entries over the standard basis (``dim`` applications).
    seed : int, torch.Generator or None
    distribution : {"rademacher", "gaussian"}
    level : float
        Confidence level of the reported interval.
    chunk_size : int, optional
        Probes applied at once (default: the operator's ``chunk_size`` or 16).
    blocks : {"auto", "trial", None}
        ``method="vjp"`` only.  ``"trial"``: each probe's sample is ``Σ_b ‖J* s_b‖²`` over the
        trials ``b`` (``s_b`` the probe restricted to trial ``b``), still one adjoint application
        per probe.  Unbiased like the plain sample, but free of the cross-trial terms: for the
        KPFlow factor ``P @ J_theta`` (``P`` keeps trials apart, ``K`` couples them through the
        shared θ) the variance falls by about the number of trials (50 trials: 1 % relative
        error from ~4 probes instead of ~35).  Needs a factor whose adjoint gives the per-trial
        norms at that cost: ``J_theta`` of a cell with parameter sites (every built-in cell),
        composed with trial-separable operators (``P``, ``P_inv``, the readout).  ``"auto"``
        (default) splits when the factor allows it and otherwise uses the plain sample;
        ``None`` never splits.  ``.meta["blocks"]`` says which was used.
    """
    A = _require_operator(A)
    if method not in TRACE_METHODS:
        raise InputError(f"method must be one of {TRACE_METHODS}, got {method!r}")
    if blocks not in ("auto", None, *BLOCK_AXES):
        raise InputError(f"blocks must be 'auto', 'trial' or None, got {blocks!r}")
    if blocks in BLOCK_AXES and method != "vjp":
        raise InputError(f"blocks={blocks!r} splits the adjoint samples of method='vjp'; got method={method!r} "
                         "(pass blocks=None, or method='vjp' with the factor J of A = J J*)")
    chunk = chunk_size_for(A, chunk_size)
    dt, dev = A.dtype, A.device
    split = None
    if method == "vjp" and blocks is not None:
        if A._has_block_sqnorms(BLOCK_AXES["trial"]):
            split = "trial"
        elif blocks == "trial":
            raise InputError(f"blocks='trial': {A.name} gives no per-trial adjoint norms; it needs J_theta of a "
                             "cell with parameter sites composed with trial-separable operators (P, P_inv, "
                             "readout); pass blocks=None or 'auto' for the plain one-sided estimator")
    if method in ("jvp", "vjp"):
        shape = A.shape_in if method == "jvp" else A.shape_out
        sample = _jvp_norm2(A) if method == "jvp" else _vjp_norm2(A)
    else:
        _require_square(A, hint="; for tr(J J*) from a factor J pass method='jvp' or 'vjp'")
        shape, sample = A.shape_in, _quad_form(A)
    dim = int(torch.Size(shape).numel())
    meta: dict[str, Any] = {"quantity": "trace" if method not in ("jvp", "vjp") else "trace(J J*)",
                            "dimension": dim, "distribution": distribution}
    if method == "vjp":
        meta["blocks"] = split
    if method == "exact" or _check_budget(budget, method, dim) >= dim:
        value = _basis_sum(sample, shape, dt, dev, chunk)   # the standard basis: no split needed
        meta["requested_method"] = method
        return make_estimate(value, 0.0, level=level, method="exact", n_matvecs=dim, meta=meta)
    assert budget is not None  # _check_budget refused None
    gen = make_generator(seed, dev)
    meta["seed"] = seed if isinstance(seed, int) else None
    if split is not None:
        sample = _vjp_block_norm2(A, BLOCK_AXES[split])
    if method != "hutch++":
        value, se, dof = _mean_stderr(_probe_samples(sample, budget, shape, dt, dev, gen, distribution, chunk))
        return make_estimate(value, se, dof=dof, level=level, method=method, n_matvecs=budget, meta=meta)

    k = budget // 3
    n_res = budget - 2 * k
    S = random_probes(k, shape, dt, dev, gen, distribution)
    AS = _apply_chunked(A.matvec, S, chunk).reshape(k, dim)
    del S
    # the sketch's basis in the operator's dtype: k vectors of the operator's size are the memory
    # Hutch++ needs (float64 copies doubled it); orthonormality to round-off is all the deflation needs
    Q = torch.linalg.qr(AS.T).Q  # [dim, k]
    del AS
    AQ = _apply_chunked(A.matvec, Q.T.reshape(k, *shape), chunk).reshape(k, dim)
    top = float(batched_dot(Q.T, AQ).sum())
    del AQ

    def project(G):
        g = G.reshape(G.shape[0], dim)
        return (g - (g @ Q) @ Q.T).reshape(G.shape)

    rest = _probe_samples(sample, n_res, shape, dt, dev, gen, distribution, chunk, project=project)
    value, se, dof = _mean_stderr(rest)
    meta.update(sketch_size=k, residual_probes=n_res, sketch_trace=top)
    return make_estimate(top + value, se, dof=dof, level=level, method="hutch++", n_matvecs=budget, meta=meta)


# ----------------------------------------------------------------------------- Nyström control variate
class _Nystrom:
    """``Â = (A S)(Sᵀ A S)⁺(A S)ᵀ`` of a self-adjoint PSD ``A`` from ``k`` Gaussian sketch columns.

    Used as a control variate: ``‖Â‖_F²`` is known exactly and ``‖Âg‖²`` costs ``k`` dot
    products per probe, so ``‖Ag‖² − ‖Âg‖²`` estimates the part Â misses, with the variance of
    ``A² − Â²`` instead of ``A²``.  The few
    large eigenvalues that dominate ``Σλ⁴`` (hence Hutchinson's variance for ``‖A‖_F²``) are the
    ones a small sketch captures.  Unbiased for any sketch, since ``S`` is drawn independently
    of the residual probes; a poor sketch only costs variance.  The core ``Sᵀ A S`` is inverted
    in float64 on its eigenvalues above ``rcond`` times the largest.
    """

    def __init__(self, A: LinearOperator, k: int, gen, chunk: int):
        dim, shape = A.size_in, A.shape_in
        S = random_probes(k, shape, A.dtype, A.device, gen, "gaussian")
        Y = _apply_chunked(A.matvec, S, chunk).reshape(k, dim)
        S = S.reshape(k, dim)
        C = (S @ Y.T).double()
        C = 0.5 * (C + C.T)
        G = (Y @ Y.T).double()
        del S
        mu, V = torch.linalg.eigh(C)
        rcond = 1e-5 if A.dtype == torch.float32 else 1e-12
        keep = mu > rcond * mu.abs().max()
        Cp = (V[:, keep] / mu[keep]) @ V[:, keep].T                      # C⁺
        self.Y, self.M = Y, Cp @ G @ Cp                                 # ‖Âg‖² = zᵀ M z, z = Y g
        self.frob2 = float(torch.trace(self.M @ G))                     # ‖Â‖_F² = tr(C⁺ G C⁺ G)
        self.rank, self.dim = int(keep.sum()), dim

    def coords(self, X):
        return (X.reshape(X.shape[0], self.dim) @ self.Y.T).double()    # [n, k]

    def sqnorm(self, z):
        return ((z @ self.M) * z).sum(1)


# ----------------------------------------------------------------------------- Frobenius norm
def _sqrt_clamped(x):
    return math.sqrt(max(x, 0.0))


def _dsqrt(x):
    return 0.5 / math.sqrt(x) if x > 0 else math.inf


def frobenius_norm(A, budget: int | None = None, method: str = "hutchinson", *, seed=None,
                   distribution: str = "rademacher", level: float = 0.95,
                   chunk_size: int | None = None, factor: LinearOperator | None = None) -> Estimate:
    """Hilbert–Schmidt norm ``‖A‖_F = sqrt(tr(A* A))`` with an error bar.

    Methods
    -------
    ``"hutchinson"``: ``‖A‖_F² = E ‖A g‖²`` (one application of ``A`` per probe; the one-sided
    estimator of ``trace`` with ``A`` as the factor, taken from the shared :func:`sketch`).  Hutchinson's variance is ``2 Σλ⁴``
    (Gaussian probes), so a few large eigenvalues dominate it when the spectrum decays.
    ``"nystrom"`` (self-adjoint PSD ``A`` such as ``K``, ``P K P*``, ``P P*``): ``budget // 3``
    applications build a Nyström approximation ``Â`` (:class:`_Nystrom`) and the other probes
    estimate ``‖A‖_F² − ‖Â‖_F²`` as the mean of ``‖Ag‖² − ‖Âg‖²``: one application per sample,
    unbiased, the standard error the residual's.  It pays where the spectrum decays (trained
    networks, whose K has an effective rank of a few); on a flat spectrum (an untrained GRU's
    NTK: participation ratio ~600 of 10⁶ dimensions) the sketch captures nothing and the same
    budget gives 1.2x Hutchinson's error.  ``"trial_pairs"`` (``A = J J*`` with a trial-split
    factor: ``K``, ``P K P*`` and other compositions whose factors mirror each other, or
    ``factor=J``): ``budget`` probes ``g_i``, one adjoint pass each, kept as per-trial images
    ``J* g_i,b``; every pair of probes gives ``Σ_{b,b'} (g_i,bᵀ A_bb' g_j,b')²``, unbiased for
    ``Σ_{b,b'} ‖A_bb'‖² = ‖A‖_F²`` because ``g_i`` and ``g_j`` are independent, and the
    estimate is their mean (a U-statistic; delete-one-probe jackknife error).  Cross-trial
    blocks get independent signs per pair, so the variance falls far below one probe's
    ``‖Ag‖²`` (on the benchmark's 50-trial GRU NTK 1 % needs ~6 adjoint passes instead of ~35
    full applications).  Memory: ``budget × trials × parameters`` values (the per-trial
    images) and one [trials, trials] product at a time.
    ``"hutch++"``: Hutch++ on ``A* A`` (two applications per sample).  ``"exact"``: over the
    basis.  ``factor`` (``"trial_pairs"`` only): ``J`` with ``A = J J*`` when the composition
    does not show it.

    The interval is the square root of the interval of ``‖A‖_F²`` (clamped at 0); the standard
    error is the delta-method one.
    """
    A = _require_operator(A)
    if factor is not None and method != "trial_pairs":
        raise InputError(f"factor= is used by method='trial_pairs' only, got method={method!r}")
    if method == "hutch++":
        sq = trace(A.T @ A, budget, "hutch++", seed=seed, distribution=distribution, level=level,
                   chunk_size=chunk_size)
        n_mv = 2 * sq.n_matvecs
    elif method == "nystrom":
        sq = _nystrom_frobenius2(A, budget, seed, distribution, level, chunk_size)
        n_mv = sq.n_matvecs
    elif method == "trial_pairs":
        sq = _trial_pairs_frobenius2(A, budget, seed, distribution, level, chunk_size, factor)
        n_mv = sq.n_matvecs
    elif method == "exact":
        sq = trace(A, A.size_in, "jvp", level=level, chunk_size=chunk_size)
        n_mv = sq.n_matvecs
    elif method == "hutchinson":
        n_probes = _check_budget(budget, "jvp", A.size_in)
        if n_probes >= A.size_in:
            sq = trace(A, budget, "jvp", level=level, chunk_size=chunk_size)
            n_mv = sq.n_matvecs
        else:
            return sketch(A, n_probes, seed=seed, distribution=distribution, level=level,
                          chunk_size=chunk_size).frobenius_norm()
    else:
        raise InputError(f"method must be 'hutchinson', 'trial_pairs', 'nystrom', 'hutch++' or 'exact', "
                         f"got {method!r}")
    return _norm_from_squared(sq, n_mv)


def _norm_from_squared(sq: Estimate, n_mv: int) -> Estimate:
    """``‖A‖_F`` from an estimate of ``‖A‖_F²``: square-root interval (clamped at 0), delta-method error."""
    meta = dict(sq.meta, quantity="frobenius_norm", squared=sq.value, squared_stderr=sq.stderr)
    lo, hi = sq.interval
    value = _sqrt_clamped(sq.value)
    stderr = abs(_dsqrt(sq.value)) * sq.stderr if sq.stderr > 0 else 0.0
    return Estimate(value, stderr, (_sqrt_clamped(lo), _sqrt_clamped(hi)), sq.level, sq.method, n_mv, meta)


def _require_self_adjoint_square(A, what):
    _require_square(A, hint=f"; {what} needs a self-adjoint PSD operator")
    if not math.isclose(A.weight_in, A.weight_out, rel_tol=1e-12):
        raise InputError(f"{what} needs equal inner-product weights on both sides of {A.name}")


def _nystrom_frobenius2(A, budget, seed, distribution, level, chunk_size) -> Estimate:
    """``‖A‖_F²`` with a Nyström control variate (see :func:`frobenius_norm`)."""
    _require_self_adjoint_square(A, "method='nystrom'")
    dim = A.size_in
    chunk = chunk_size_for(A, chunk_size)
    if _check_budget(budget, "nystrom", dim) >= dim:
        exact = trace(A, dim, "jvp", level=level, chunk_size=chunk)
        return Estimate(exact.value, 0.0, exact.interval, exact.level, "exact", exact.n_matvecs,
                        dict(exact.meta, requested_method="nystrom"))
    gen = make_generator(seed, A.device)
    k = max(1, budget // 3)
    ny = _Nystrom(A, k, gen, chunk)

    def sample(G):
        AG = A.matvec(G)
        return batched_dot(AG, AG) - ny.sqnorm(ny.coords(G))

    rest = _probe_samples(sample, budget - k, A.shape_in, A.dtype, A.device, gen, distribution, chunk)
    value, se, dof = _mean_stderr(rest)
    meta = {"quantity": "trace(A* A)", "dimension": dim, "distribution": distribution,
            "seed": seed if isinstance(seed, int) else None, "sketch_size": k, "sketch_rank": ny.rank,
            "residual_probes": budget - k, "sketch_part": ny.frob2}
    return make_estimate(ny.frob2 + value, se, dof=dof, level=level, method="nystrom", n_matvecs=budget, meta=meta)


def _trial_pairs_frobenius2(A, budget, seed, distribution, level, chunk_size, factor) -> Estimate:
    """``‖A‖_F²`` of ``A = J J*`` from per-trial adjoint images (see :func:`frobenius_norm`)."""
    _require_self_adjoint_square(A, "method='trial_pairs'")
    m = _check_budget(budget, "trial_pairs", A.size_in)
    J = gram_factor(A) if factor is None else _require_operator(factor, "factor")
    if J is None:
        raise InputError(f"method='trial_pairs' needs A = J J*: {A.name} is not written as such a composition; "
                         "pass factor=J, or use method='hutchinson'")
    if J.shape_out != A.shape_in or not math.isclose(J.weight_out, A.weight_in, rel_tol=1e-12):
        raise InputError(f"factor maps to shape {list(J.shape_out)} with inner-product weight {J.weight_out}, but A acts "
                         f"on {list(A.shape_in)} with weight {A.weight_in}: it cannot be A's factor")
    if J.dtype != A.dtype or J.device != A.device:
        raise InputTypeError(f"factor is {J.dtype} on {J.device}, A is {A.dtype} on {A.device}")
    axis = BLOCK_AXES["trial"]
    if not J._has_block_vectors(axis):
        raise InputError(f"method='trial_pairs': {J.name} gives no per-trial adjoint images; it needs J_theta of a "
                         "cell with parameter sites composed with trial-separable operators (P, P_inv, readout); "
                         "use method='hutchinson'")
    chunk = chunk_size_for(A, chunk_size)
    c = J.weight_in / J.weight_out
    gen = make_generator(seed, A.device)
    W: torch.Tensor | None = None
    for a, b in _chunks(m, chunk):
        V = J._rmatmat_block_vectors(random_probes(b - a, J.shape_out, A.dtype, A.device, gen, distribution), axis)
        if W is None:
            W = torch.empty(m, *V.shape[1:2], J.size_in, dtype=V.dtype, device=V.device)     # [m, B, M]
        W[a:b] = V.reshape(b - a, V.shape[1], J.size_in)
        del V
    assert W is not None  # m >= 3 probes, so at least one chunk
    n_blocks = W.shape[1]
    # S_ij = c² Σ_{b,b'} (g_i,bᵀ A_bb' g_j,b')² = c² ‖W_i W_jᵀ‖_F², one [B, B] product per pair
    S = torch.zeros(m, m, dtype=torch.float64, device=W.device)
    for i in range(m):
        for j in range(i + 1, m):
            S[i, j] = S[j, i] = (c * c) * (W[i] @ W[j].T).double().square().sum()
    del W
    total = float(S.sum())                                        # each unordered pair twice
    value = total / (m * (m - 1))
    # delete-one-probe jackknife of the U-statistic
    loo = (total - 2 * S.sum(1)) / ((m - 1) * (m - 2))
    se = math.sqrt((m - 1) / m * float(((loo - loo.mean()) ** 2).sum()))
    meta = {"quantity": "trace(A* A)", "dimension": A.size_in, "distribution": distribution,
            "seed": seed if isinstance(seed, int) else None, "probes": m, "pairs": m * (m - 1) // 2,
            "blocks": "trial", "n_blocks": n_blocks}
    return make_estimate(value, se, dof=m - 1, level=level, method="trial_pairs", n_matvecs=m, meta=meta)


# ----------------------------------------------------------------------------- alignment
ALIGNMENT_METHODS = ("sketch", "hutchinson", "traces", "exact")


def _check_pair(A, B):
    A, B = _require_operator(A, "A"), _require_operator(B, "B")
    if (A.shape_in, A.shape_out) != (B.shape_in, B.shape_out):
        raise InputError(f"A maps {list(A.shape_in)} -> {list(A.shape_out)} but B maps "
                         f"{list(B.shape_in)} -> {list(B.shape_out)}; alignment needs equal shapes")
    if A.dtype != B.dtype or A.device != B.device:
        raise InputTypeError(f"A ({A.dtype}, {A.device}) and B ({B.dtype}, {B.device}) must share dtype and device")
    return A, B


def _column_products(A, B, X, chunk):
    """Per-column ``(Σ AX∘BX, Σ (AX)², Σ (BX)²)`` in float64 over the probe batch ``X``."""
    ab, aa, bb = [], [], []
    for a, b in _chunks(X.shape[0], chunk):
        AX, BX = apply_pair(A, B, X[a:b])        # shared factors (P* of P K P* and P P*) applied once
        ab.append(batched_dot(AX, BX))
        aa.append(batched_dot(AX, AX))
        bb.append(batched_dot(BX, BX))
    return torch.cat(ab), torch.cat(aa), torch.cat(bb)


def _ratio(ab, aa, bb):
    return float(ab.sum() / torch.sqrt(aa.sum() * bb.sum()))


def alignment(A, B, budget: int | None = None, method: str = "sketch", *, seed=None,
              level: float = 0.95, chunk_size: int | None = None) -> Estimate:
    """Kernel alignment ``KA(A, B) = ⟨A, B⟩_F / (‖A‖_F ‖B‖_F)``, a cosine in [-1, 1].

    Methods
    -------
    ``"sketch"`` (shared sketch): ``S = orth(Gaussian dim × budget)``, then
        ``Σ(AS∘BS) / sqrt(Σ(AS)² Σ(BS)²)`` with ``budget`` applications of each operator.  A ratio
        estimator: slightly biased, consistent, exact once ``budget`` reaches the dimension.  The
        standard error is the delete-one-column jackknife with the finite-sampling correction
        ``1 - budget/dim`` (the columns are drawn without replacement from a random basis).
    ``"hutchinson"``: the same ratio over ``budget`` independent Rademacher (or Gaussian) probes,
        jackknife error without the finite-sampling correction.  This is the alignment of the
        shared :func:`sketch`, whose probes also give the trace, Frobenius norm and ER3 of ``A``:
        ``alignment(A, B, m, "hutchinson", seed=s)`` equals ``sketch(A, m, B=B, seed=s).alignment()``.
    ``"traces"``: three independent Hutch++ traces ``tr(A*B)``, ``tr(A*A)``, ``tr(B*B)`` with
        ``budget`` samples each (two applications per sample); delta-method standard error.
        Values outside [-1, 1] are possible and warned about.
    ``"exact"``: over the standard basis.
    """
    A, B = _check_pair(A, B)
    if method not in ALIGNMENT_METHODS:
        raise InputError(f"method must be one of {ALIGNMENT_METHODS}, got {method!r}")
    chunk = chunk_size_for(A, chunk_size)
    dim, dt, dev = A.size_in, A.dtype, A.device
    meta: dict[str, Any] = {"quantity": "alignment", "dimension": dim}
    if method == "traces":
        seeds = [None] * 3 if seed is None else [seed, seed + 1, seed + 2] if isinstance(seed, int) else [seed] * 3
        tab, taa, tbb = (trace(X.T @ Y, budget, "hutch++", seed=s, level=level, chunk_size=chunk)
                         for (X, Y), s in zip(((A, B), (A, A), (B, B)), seeds))
        value = tab.value / math.sqrt(taa.value * tbb.value) if taa.value > 0 and tbb.value > 0 else math.nan
        rel2 = sum(r ** 2 for r in (tab.stderr / abs(tab.value) if tab.value else 0.0,
                                    taa.stderr / (2 * taa.value), tbb.stderr / (2 * tbb.value)))
        if abs(value) > 1:
            warnings.warn(f"three-trace alignment estimate {value:.4g} lies outside [-1, 1]; increase budget "
                          "or use method='sketch'", RuntimeWarning, stacklevel=2)
        meta.update(inner=tab.value, norm2_A=taa.value, norm2_B=tbb.value)
        return make_estimate(value, abs(value) * math.sqrt(rel2), level=level, method="traces",
                             n_matvecs=2 * (tab.n_matvecs + taa.n_matvecs + tbb.n_matvecs), meta=meta)
    if method == "hutchinson" and _check_budget(budget, "hutchinson", dim) < dim:
        assert budget is not None  # _check_budget refused None
        return sketch(A, budget, B=B, seed=seed, level=level, chunk_size=chunk).alignment()
    if method == "exact" or _check_budget(budget, "hutchinson", dim) >= dim:
        ab = aa = bb = torch.zeros((), dtype=torch.float64, device=dev)
        for a, b in _chunks(dim, chunk):
            pab, paa, pbb = _column_products(A, B, basis_vectors(a, b, A.shape_in, dt, dev), chunk)
            ab, aa, bb = ab + pab.sum(), aa + paa.sum(), bb + pbb.sum()
        meta["requested_method"] = method
        return make_estimate(_ratio(ab, aa, bb), 0.0, level=level, method="exact", n_matvecs=2 * dim, meta=meta)
    assert budget is not None  # _check_budget refused None
    gen = make_generator(seed, dev)
    # Gaussian rows drawn in float32 (a third of float64's drawing time; the frame is then orthonormalised
    # in float64 and applied in the operator's dtype)
    G = torch.randn(budget, dim, generator=gen, device=dev, dtype=torch.float32).to(torch.float64)
    S = _orthonormal_rows(G).to(dt).reshape(budget, *A.shape_in)
    ab, aa, bb = _column_products(A, B, S, chunk)
    meta["seed"] = seed if isinstance(seed, int) else None
    return _ratio_estimate(ab, aa, bb, 1 - budget / dim, level, "sketch", meta)


def _orthonormal_rows(G: torch.Tensor) -> torch.Tensor:
    """Orthonormal rows spanning those of a wide Gaussian ``G`` [k, dim] (float64): the Qᵀ of
    ``Gᵀ = Q R`` with ``R``'s diagonal positive, by Cholesky QR (``R = chol(G Gᵀ)``, ``Qᵀ = R⁻ᵀ G``:
    matrix products only), repeated once when the rows are not orthonormal to 1e-12 (CholeskyQR2).
    A 30 × 1.15 M frame takes about 0.2 s on two threads against 1.6-1.8 s for ``torch.linalg.qr``'s
    Householder reflections.  A wide Gaussian frame is well conditioned, where this is as accurate
    as Householder QR, and its rows equal Householder's up to their signs, which the sketch's
    per-probe products do not see."""
    eye = torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
    for _ in range(2):
        G = torch.linalg.inv(torch.linalg.cholesky(G @ G.T, upper=True)).T @ G
        if float((G @ G.T - eye).abs().max()) <= 1e-12:
            break
    return G


def _ratio_estimate(ab, aa, bb, fpc, level, method, meta) -> Estimate:
    """``Σab / sqrt(Σaa Σbb)`` over per-probe products, with the delete-one-probe jackknife error
    (times the finite-sampling correction ``fpc``)."""
    m = ab.numel()
    loo = (ab.sum() - ab) / torch.sqrt((aa.sum() - aa) * (bb.sum() - bb))
    var = (m - 1) / m * float(((loo - loo.mean()) ** 2).sum()) * fpc
    return make_estimate(_ratio(ab, aa, bb), math.sqrt(max(var, 0.0)), dof=m - 1, level=level, method=method,
                         n_matvecs=2 * m, meta=meta)


# ----------------------------------------------------------------------------- shared sketch
def participation_ratio_estimate(a: torch.Tensor, b: torch.Tensor, level, meta) -> Estimate:
    """ER3 ``tr(G)² / tr(G²)`` from per-probe samples ``a = gᵀGg`` and ``b = ‖Gg‖²``: the ratio of
    their means, with the delta-method error of the pair."""
    n = a.numel()
    if n < 2:
        raise InputError(f"budget={n} is too small: the participation ratio needs at least 2 probes")
    ma, mb = a.mean(), b.mean()
    value = float(ma ** 2 / mb)
    grad = torch.stack([2 * ma / mb, -ma ** 2 / mb ** 2])
    cov = torch.cov(torch.stack([a, b])) / n
    se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    meta = dict(meta, trace=float(ma), trace_of_square=float(mb))
    return make_estimate(value, se, dof=n - 1, level=level, method="hutchinson", n_matvecs=n, meta=meta)


@dataclass(frozen=True)
class Sketch:
    """Per-probe statistics of one batch of operator applications, shared by several estimators.

    ``budget`` probes ``g`` (Rademacher or Gaussian, ``E[g gᵀ] = I``) are applied once to ``A``
    (and to ``B`` when given, shared factors applied once as in :func:`alignment`), and only
    float64 scalars per probe are kept: ``quad_A = gᵀA g`` and ``norm2_A = c ‖A g‖²`` (``c`` the
    ratio of the inner-product weights, 1 for the KPFlow operators), ``cross = ⟨A g, B g⟩``,
    ``quad_B``, ``norm2_B``.  From them, with no further application:

    * :meth:`trace` — Hutchinson, as ``trace(A, budget, "hutchinson")``;
    * :meth:`frobenius_norm` — as ``frobenius_norm(A, budget, "hutchinson")``;
    * :meth:`effective_rank` — ER3 (participation ratio), as ``effective_rank(A, definition="ER3")``;
    * :meth:`alignment` — ``KA(A, B)``, as ``alignment(A, B, budget, "hutchinson")``;
    * the same four for ``B`` via :meth:`swap`.

    The separate calls with the same ``seed``, ``distribution`` and ``chunk_size`` draw the same
    probes and return the same numbers; together they cost one application of each operator per
    probe instead of one per probe and estimator.  ``n_matvecs`` of each derived estimate counts
    the applications its number rests on; ``meta["shared_sketch"]`` is True.
    """

    quad_A: torch.Tensor | None
    norm2_A: torch.Tensor
    quad_B: torch.Tensor | None
    norm2_B: torch.Tensor | None
    cross: torch.Tensor | None
    dimension: int
    level: float
    meta: dict

    @property
    def budget(self) -> int:
        return self.norm2_A.numel()

    def _meta(self, quantity):
        return dict(self.meta, quantity=quantity, shared_sketch=True)

    def trace(self) -> Estimate:
        if self.quad_A is None:
            raise InputError("the sketch's operator is not square: it has no trace")
        value, se, dof = _mean_stderr(self.quad_A)
        return make_estimate(value, se, dof=dof, level=self.level, method="hutchinson", n_matvecs=self.budget,
                             meta=self._meta("trace"))

    def frobenius_norm(self) -> Estimate:
        value, se, dof = _mean_stderr(self.norm2_A)
        sq = make_estimate(value, se, dof=dof, level=self.level, method="hutchinson", n_matvecs=self.budget,
                           meta=self._meta("trace(A* A)"))
        return _norm_from_squared(sq, self.budget)

    def effective_rank(self, meta=None) -> Estimate:
        """ER3 ``tr(A)² / tr(A²)`` of a self-adjoint ``A`` (``tr(A²) = ‖A‖_F²``)."""
        if self.quad_A is None:
            raise InputError("the sketch's operator is not square: ER3 needs a self-adjoint operator")
        base = {"definition": "ER3", "name": "participation_ratio"} if meta is None else meta
        return participation_ratio_estimate(self.quad_A, self.norm2_A, self.level,
                                            dict(self._meta("effective_rank"), **base))

    def alignment(self) -> Estimate:
        if self.cross is None:
            raise InputError("the sketch was taken without B; pass B= to sketch() for the alignment")
        return _ratio_estimate(self.cross, self.norm2_A, self.norm2_B, 1.0, self.level, "hutchinson",
                               dict(self._meta("alignment"), dimension=self.dimension))

    def swap(self) -> "Sketch":
        """The same sketch with the roles of ``A`` and ``B`` exchanged (estimates of ``B``)."""
        if self.cross is None:
            raise InputError("the sketch was taken without B")
        assert self.norm2_B is not None  # taken with B
        return Sketch(self.quad_B, self.norm2_B, self.quad_A, self.norm2_A, self.cross, self.dimension,
                      self.level, self.meta)


def sketch(A, budget: int, *, B=None, seed=None, distribution: str = "rademacher", level: float = 0.95,
           chunk_size: int | None = None) -> Sketch:
    """Apply ``A`` (and ``B``) once to ``budget`` random probes and keep what the trace, Frobenius
    norm, ER3 and alignment estimators need (see :class:`Sketch`).

    Probes are drawn ``chunk_size`` at a time (default: the operator's chunk size or 16) on the
    operator's device in its dtype; nothing of operator size outlives a chunk.
    """
    A = _require_operator(A)
    if B is not None:
        A, B = _check_pair(A, B)
    dim = A.size_in
    _check_budget(budget, "hutchinson", dim)
    if distribution not in ("rademacher", "gaussian"):
        raise InputError(f"probe distribution must be 'rademacher' or 'gaussian', got {distribution!r}")
    chunk = chunk_size_for(A, chunk_size)
    gen = make_generator(seed, A.device)
    square = A.shape_in == A.shape_out
    c = A.weight_out / A.weight_in
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("qa", "na", "qb", "nb", "ab")}
    for start, stop in _chunks(budget, chunk):
        G = random_probes(stop - start, A.shape_in, A.dtype, A.device, gen, distribution)
        if B is None:
            AG, BG = A.matvec(G), None
        else:
            AG, BG = apply_pair(A, B, G)
        cols["na"].append(c * batched_dot(AG, AG))
        if square:
            cols["qa"].append(batched_dot(G, AG))
        if BG is not None:
            cols["nb"].append(c * batched_dot(BG, BG))
            cols["ab"].append(c * batched_dot(AG, BG))
            if square:
                cols["qb"].append(batched_dot(G, BG))
        del AG, BG, G
    cat = {k: (torch.cat(v) if v else None) for k, v in cols.items()}
    meta = {"dimension": dim, "distribution": distribution, "seed": seed if isinstance(seed, int) else None,
            "probes": budget, "chunk_size": chunk, "operators": [A.name] + ([B.name] if B is not None else [])}
    norm2_A = cat["na"]
    assert norm2_A is not None  # budget >= 2 probes, so at least one chunk
    return Sketch(cat["qa"], norm2_A, cat["qb"], cat["nb"], cat["ab"], dim, float(level), meta)
