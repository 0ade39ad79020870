"""Top-k eigenpairs and singular triplets of matrix-free operators, on their device.

``eigsh`` is a thick-restart block Lanczos method: the Krylov basis is built a block of
probes at a time (one batched application of the operator per block) and stored in the
operator's own dtype (e.g. float32), orthogonalised by the block recurrence and one full
Gram–Schmidt pass (a second only when the first removed most of the block);
the projected matrix, the Rayleigh–Ritz step and the restart coefficients are float64.
When the basis is full, the best Ritz vectors and the last Krylov block are kept and the
expansion continues.  Convergence is declared when every wanted pair has a residual
``‖A v − λ v‖ ≤ tol · max|λ|`` over the wanted eigenvalues (relative; only where they are
tiny next to ``‖A‖``, e.g. ``which="SA"`` at a null space, is ``max|λ|`` counted as at least
``κ ‖A‖``, so that the default tolerance never asks for less than the round-off ``10 ε ‖A‖``
of the applications: see ``_residual_bound``); otherwise a
:class:`ConvergenceError` carrying the residuals is raised (or a warning, with
``on_failure="warn"``).

Eigenvectors have unit Euclidean norm and a fixed sign: their largest-magnitude entry is
positive.  Results convert to xarray with the operator's axis names (``trial``, ``time``,
``unit`` for full ``[B, T, H]`` spaces, the kept axes for reduced operators).

A Gram composition ``A = L L*`` whose factor ``L`` has fewer inputs than ``A`` (the hidden-state
NTK ``P K P* = (P J_θ)(P J_θ)*``: parameters instead of trajectory entries) is solved on that smaller
side, ``L* L``, and its eigenvectors are mapped back with ``L``.

Memory: the basis is ``max_basis`` vectors of the operator's size and dtype; the default
``max_basis`` is cut to fit :data:`BASIS_MEMORY` (4 GiB) and the result's ``meta`` says so.
Applications go through the operator ``chunk_size`` probes at a time (``meta["chunk_size"]``).
"""
from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import math

import numpy as np
import torch
import xarray as xr

from .linop import LinearOperator, gram_factor
from .reductions import operator_dims
from ._probes import chunk_size_for, make_generator

__all__ = ["eigsh", "KrylovOptions", "svds", "operator_norm", "smallest_singular_value", "EigenResult", "SVDResult",
           "ConvergenceError"]


from .._validation import Flag, Interval, OptionsMixin, Rule, check_params
from ..errors import ConvergenceError, InputError, InputTypeError


@dataclass
class EigenResult:
    """Eigenpairs ``A v_i = λ_i v_i``.

    ``values`` [k] float64; ``vectors`` [k, *shape] (operator dtype and device); ``residuals``
    [k] float64 ``‖A v_i − λ_i v_i‖``; ``converged``; ``n_matvecs``; ``n_restarts``; ``dims``
    (axis names of one eigenvector); ``tol``; ``which``; ``meta``: how the work was split
    (``block_size``, ``max_basis``, ``chunk_size`` = probes per application, ``basis_bytes``,
    ``basis_limited_by_memory``, ``solver``).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: bool
    n_matvecs: int
    n_restarts: int
    dims: tuple
    tol: float
    which: str
    meta: dict = field(default_factory=dict)

    def to_xarray(self) -> xr.Dataset:
        k = self.values.numel()
        return xr.Dataset(
            {"eigenvalue": ("mode", self.values.cpu().numpy()),
             "eigenfunction": (("mode", *self.dims), self.vectors.detach().cpu().numpy()),
             "residual": ("mode", self.residuals.cpu().numpy())},
            coords={"mode": np.arange(k)},
            attrs={"converged": int(self.converged), "tol": self.tol, "which": self.which,
                   "n_matvecs": self.n_matvecs,
                   **{f"meta_{k}": (int(v) if isinstance(v, bool) else v) for k, v in self.meta.items()},
                   "normalisation": "unit Euclidean norm, largest-magnitude entry positive"})


@dataclass
class SVDResult:
    """Singular triplets ``A v_i = σ_i u_i``: ``values`` [k] float64 (descending), ``left`` [k, *shape_out],
    ``right`` [k, *shape_in], ``residuals`` [k] = ``‖A* u_i − σ_i v_i‖``, plus solver bookkeeping."""

    values: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor
    residuals: torch.Tensor
    converged: bool
    n_matvecs: int
    dims_in: tuple
    dims_out: tuple

    def to_xarray(self) -> xr.Dataset:
        ren_out = {d: f"{d}_out" for d in self.dims_out}
        ren_in = {d: f"{d}_in" for d in self.dims_in}
        return xr.Dataset(
            {"singular_value": ("mode", self.values.cpu().numpy()),
             "left": (("mode", *ren_out.values()), self.left.detach().cpu().numpy()),
             "right": (("mode", *ren_in.values()), self.right.detach().cpu().numpy()),
             "residual": ("mode", self.residuals.cpu().numpy())},
            coords={"mode": np.arange(self.values.numel())},
            attrs={"converged": int(self.converged), "n_matvecs": self.n_matvecs})


#: memory the default Krylov basis may take (bytes); a larger default ``max_basis`` is cut to fit
BASIS_MEMORY = 4 * 2 ** 30


def _default_tol(dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-5


def _check_k(k, n, what="k"):
    check_params({what: Rule(Interval(numbers.Integral, 1, None), "the number of eigenpairs, 1 <= k < dim")},
                 **{what: k})
    if k >= n:
        raise InputError(f"{what}={k} must be smaller than the dimension {n}; for a full spectrum of a small "
                         "operator use torch.linalg.eigh(A.to_dense())")


def _check_self_adjoint(A: LinearOperator, gen):
    x = torch.randn(2, *A.shape_in, generator=gen, device=A.device, dtype=A.dtype)
    Ax = A.matvec(x)
    nd = len(A.shape_in)
    a = float((Ax[0] * x[1]).sum(dtype=torch.float64))
    b = float((x[0] * Ax[1]).sum(dtype=torch.float64))
    rel = abs(a - b) / max(abs(a) + abs(b), 1e-300)
    limit = 1e-8 if A.dtype == torch.float64 else 1e-3
    if rel > limit:
        raise InputError(f"A ({A.name}) is not self-adjoint: |<Ax,y> - <x,Ay>| / (|<Ax,y>| + |<x,Ay>|) = "
                         f"{rel:.3g} > {limit:g}; use svds(A, k) for non-self-adjoint operators")
    del nd


def _project_out(W, Q, passes=2):
    """Remove from the rows of ``W`` (in place) their components in the row space of the
    orthonormal ``Q`` by classical Gram–Schmidt; returns the summed coefficients ``W Qᵀ`` in
    float64.  With ``passes=2`` the second pass runs only when the first removed most of the
    block (the norm fell below 1/√2 of its value: Kahan–Parlett's criterion), which is when
    cancellation leaves the result visibly non-orthogonal."""
    C = torch.zeros(W.shape[0], Q.shape[0], dtype=torch.float64, device=W.device)
    if Q.shape[0] == 0:
        return C
    for i in range(passes):
        before = float(W.norm()) if passes > 1 else 0.0
        c = W @ Q.T
        W.addmm_(c, Q, alpha=-1)
        C += c.to(torch.float64)
        if passes > 1 and i == 0 and float(W.norm()) > before / math.sqrt(2):
            break
    return C


def _next_block(W, Q, gen, scale):
    """Orthonormal rows ``V`` and ``R`` [b, b] (float64) with ``W ≈ Rᵀ V``, ``V ⟂ Q``.

    ``W`` has already been projected out of ``span Q``.  Householder QR of the block; a
    direction whose QR diagonal is below ``30 ε`` of ``scale`` (the block's norm before the
    projection) is rounding noise and is replaced by a random direction orthogonal to ``Q``
    and to the rest of the block, and ``R`` is then recomputed as ``V Wᵀ``.  The Krylov space
    was invariant in that case, so the random direction only restarts the search.
    """
    if W.shape[0] == 1:                       # one row: QR is a normalisation (and much faster)
        r = W.norm().reshape(1, 1)
        V = W / r.clamp_min(torch.finfo(W.dtype).tiny)
    else:
        q, r = torch.linalg.qr(W.T)
        V = q.T.contiguous()
    R = r.to(torch.float64)
    eps = torch.finfo(W.dtype).eps
    bad = (r.diagonal().abs() <= 30 * eps * scale) | ~torch.isfinite(r.diagonal())
    if bool(bad.any()):
        good = V[~bad]
        fresh = torch.randn(int(bad.sum()), W.shape[1], generator=gen, device=W.device, dtype=W.dtype)
        for basis in (Q, good, Q, good):
            _project_out(fresh, basis, passes=1)
        fresh = torch.linalg.qr(fresh.T)[0].T
        V = torch.cat([good, fresh])
        R = (V @ W.T).to(torch.float64)
    return V, R


def _order(theta, which):
    if which == "LA":
        return torch.argsort(theta, descending=True)
    if which == "SA":
        return torch.argsort(theta)
    return torch.argsort(theta.abs(), descending=True)


@dataclass(frozen=True)
class KrylovOptions(OptionsMixin):
    """The Lanczos solver's working parameters, given to :func:`eigsh` as keywords (see its docstring)."""

    block_size: int | None = None
    max_basis: int | None = None
    max_restarts: int = 300
    check_self_adjoint: bool = True
    chunk_size: int | None = None
    use_gram_factor: bool = True

    RULES: ClassVar[dict] = {
        "block_size": Rule((None, Interval(numbers.Integral, 1, None))),
        "max_basis": Rule((None, Interval(numbers.Integral, 2, None))),
        "max_restarts": Rule(Interval(numbers.Integral, 0, None)),
        "check_self_adjoint": Rule(Flag()),
        "chunk_size": Rule((None, Interval(numbers.Integral, 1, None))),
        "use_gram_factor": Rule(Flag()),
    }


def eigsh(A: LinearOperator, k: int, *, which: str = "LA", tol: float | None = None, seed=None,
          on_failure: str = "raise", **solver) -> EigenResult:
    """The ``k`` extreme eigenpairs of a self-adjoint operator (``solver``: :class:`KrylovOptions`).

    See :func:`_eigsh` for the method and every parameter.
    """
    o = KrylovOptions.resolve(None, solver, "eigsh")
    return _eigsh(A, k, which=which, tol=tol, block_size=o.block_size, max_basis=o.max_basis,
                  max_restarts=o.max_restarts, seed=seed, check_self_adjoint=o.check_self_adjoint,
                  on_failure=on_failure, chunk_size=o.chunk_size, use_gram_factor=o.use_gram_factor)


def _eigsh(A: LinearOperator, k: int, *, which: str = "LA", tol: float | None = None,
           block_size: int | None = None, max_basis: int | None = None, max_restarts: int = 300,
           seed=None, check_self_adjoint: bool = True, on_failure: str = "raise",
           chunk_size: int | None = None, use_gram_factor: bool = True) -> EigenResult:
    """The ``k`` extreme eigenpairs of a self-adjoint operator.

    Thick-restart block Lanczos.  The basis is stored in the operator's dtype (float32 halves
    the memory traffic of the orthogonalisation, which dominates at millions of entries); the
    projected matrix, the Rayleigh–Ritz step and the restart coefficients are float64.  Every
    new block is orthogonalised by the block recurrence and then against the whole basis (one
    classical Gram–Schmidt pass, a second only when needed; the summed coefficients are the
    projected matrix's new column), so the Lanczos relation
    ``A Q = Q T + V R Eᵀ`` gives each Ritz pair's residual from small matrices.  At a restart
    the best ``k + block_size + max(5, k // 2)`` Ritz vectors and the last block are kept, and
    the Rayleigh–Ritz step runs after every block, so the solver stops as soon as the wanted
    pairs have converged.  On return the residuals are recomputed explicitly, ``‖A v − λ v‖``, with one more application to the
    ``k`` eigenvectors.  Operators of dimension at most ``max_basis + block_size`` are solved
    densely (their matrix costs no more applications than the Krylov basis would).

    A Gram operator written as a composition ``A = L L*`` (:func:`~neurokpflow.kpflow.linop.gram_factor`
    recognises ``ops.NTK = P K P*``, ``ops.K``, ``J @ J.T``) whose factor has fewer inputs than ``A``
    has is solved on the other side: Lanczos runs on ``L* L`` (the same nonzero eigenvalues), whose
    basis is ``L.size_in`` long instead of ``A.size_in`` (for the GRU's NTK at H=256, B=50, T=90: the
    200 448 parameters instead of 1 152 000 trajectory entries, so the orthogonalisation moves 5.7×
    less memory and the basis takes 5.7× less), and the eigenvectors are mapped across,
    ``u = L v / ‖L v‖``.  The residuals reported and checked are still ``‖A u − λ u‖`` in ``A``'s
    space (``L r / σ`` for the residual ``r`` of ``L* L``, so up to ``σ₁/σ_k`` larger: when they miss
    ``10 · tol`` the solve is repeated once with ``tol`` tightened by that ratio).  ``meta`` then
    names the solver ``"… on L* L"`` and gives ``space_size``, ``factor_applications`` (of ``L``)
    and ``passes``.  Wanted eigenvalues of 0 (``k`` above the rank of ``L``) have their eigenvectors
    in the null space of ``L*``, outside ``L``'s range, and ``which="SA"`` asks for exactly those:
    both are solved in ``A``'s own space.  Measured on that NTK, top 10, float32, 2 threads: 4.97 s
    against 5.69 s in ``A``'s own space (``benchmarks/bench_spectral.py``, one run).

    Parameters
    ----------
    A : LinearOperator
        Square and self-adjoint (checked on one random pair unless ``check_self_adjoint=False``;
        a Gram composition ``L L*`` is self-adjoint by construction and is not checked).
    k : int
        Number of eigenpairs, ``1 <= k < dim``.
    which : {"LA", "SA", "LM"}
        Largest algebraic (default), smallest algebraic, largest magnitude.
    tol : float
        Relative residual tolerance ``‖A v − λ v‖ ≤ tol · max|λ|``, the maximum over the wanted
        eigenvalues, counted as at least ``κ ‖A‖`` (κ = 2.2e-6 in float64, 0.12 in float32: the
        round-off floor at the default tolerance) (default 1e-5 for float32 operators, 1e-9 for float64).  An eigenvalue's error is about ``residual² / gap``.
    block_size : int
        Probes per Krylov block; each block is one batched application of the operator (``A``'s
        ``chunk_size`` probes at a time).  The default 1 is single-vector Lanczos (as ARPACK),
        chosen by measurement: for the top 10 of a GRU's hidden-state NTK (H=256, B=50, T=90,
        float32; a flat spectrum, λ₁₀/λ₁ = 0.85 with a 1 % gap to λ₁₁) to the default tolerance,
        blocks of 1, 4, 8 and 16 took 86, 146, 186 and 250 applications and 11.2, 18.3, 23.4
        and 35.0 s of CPU time on one thread: a batch of probes costs only ~10 % less per probe
        than single applications there, far from paying for the extra applications (on two idle
        threads, with batches of 16 at 0.68× per probe, blocks of 4 took 8.7 s and single
        vectors 6.0 s).  Blocks pay
        where a batch is much cheaper per probe than single calls (GPUs: see
        ``benchmarks/cuda_checks.sh``), and for repeated eigenvalues (below).  A Krylov space grown from ``b`` vectors holds at most ``b``
        directions of one eigenspace, so an eigenvalue of exact multiplicity above
        ``block_size`` is returned fewer times than it occurs (the missing copies are reached
        only through round-off).  Operators with exact symmetries need ``block_size`` at least
        the multiplicity, e.g. ``K = (V Vᵀ) ⊗ I_H`` of an activation-inside vanilla RNN, whose
        eigenvalues each occur ``H`` times (or rank its reduced view instead).
    max_basis : int
        Basis size before a restart (default ``k + max(30, 10 · block_size)``, cut to fit
        :data:`BASIS_MEMORY`; at least ``k + 2 · block_size``).  Restarts keep the best
        ``k + block_size + max(5, k // 2)`` Ritz vectors and the last block.  Measured on the same
        workload: a 60-vector basis instead of 40 saved no application (86 both) and cost 11 %
        more CPU time in orthogonalisation, so the default stays.
    use_gram_factor : bool
        Solve a Gram composition ``L L*`` on ``L``'s input side when that is smaller (default True;
        above).  False iterates in ``A``'s own space.
    on_failure : {"raise", "warn"}
        What to do when ``max_restarts`` is reached without convergence, or when the explicit
        residuals exceed the tolerance tenfold (float32 round-off near a tiny ``tol``).
    """
    if not isinstance(A, LinearOperator):
        raise InputTypeError(f"A must be a LinearOperator, got {type(A).__name__}")
    if A.shape_in != A.shape_out or A.weight_in != A.weight_out:
        raise InputError(f"A ({A.name}) maps {list(A.shape_in)} -> {list(A.shape_out)}; eigsh needs a square "
                         "self-adjoint operator (use svds for rectangular or non-self-adjoint ones)")
    if which not in ("LA", "SA", "LM"):
        raise InputError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
    if on_failure not in ("raise", "warn"):
        raise InputError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
    n = A.size_in
    _check_k(k, n)
    tol = _default_tol(A.dtype) if tol is None else float(tol)
    b = 1 if block_size is None else block_size
    if isinstance(b, bool) or not isinstance(b, int) or b < 1:
        raise InputError(f"block_size must be a positive int, got {block_size!r}")
    gen = make_generator(seed, A.device)
    chunk = chunk_size_for(A, chunk_size)
    # A = L L* with fewer inputs to L than A has: iterate on L* L (the same nonzero spectrum) in the
    # smaller space and map the eigenvectors across; the smallest eigenvalues (the null space of L*)
    # are only in A's own space
    L = gram_factor(A) if use_gram_factor and which != "SA" else None
    if L is not None and not (k < L.size_in < n):
        L = None
    if check_self_adjoint and L is None:
        _check_self_adjoint(A, gen)           # (A = L L* is self-adjoint by construction)
    passes, tighter = 0, tol
    while True:
        target = A if L is None else L.T @ L
        out = _krylov(target, k, which, tighter, b, max_basis, max_restarts, gen, chunk)
        theta, vecs, converged, n_mv, restarts, meta = out
        dense_residuals = meta.pop("residuals", None)
        bound = _residual_bound(theta, meta.pop("anorm"), tol, A.dtype)
        factor_mv = 0
        if L is not None:
            # u = L v / σ: unit vectors of A's space with A u = λ u (L* L v = λ v)
            U = _apply_to_rows(L, vecs, chunk)
            factor_mv = k
            norms = U.norm(dim=1)
            if bool((norms <= 1e3 * torch.finfo(U.dtype).eps * norms.max()).any()):
                L = None        # an eigenvalue 0 among the wanted: its eigenvectors are in A's null space
                continue
            vecs = U / norms[:, None]
        elif dense_residuals is not None:
            res = dense_residuals
            break
        AV = _apply_to_rows(A, vecs, chunk)
        n_mv += k
        res = torch.stack([(AV[i].to(torch.float64) - theta[i] * vecs[i].to(torch.float64)).norm()
                           for i in range(k)])
        scale = float(theta.abs().max()) or 1.0
        # on the factor's side the residual is L r / σ for the residual r of L* L: up to σ₁/σ_k larger;
        # one more solve with a tolerance tightened by that much when the explicit residuals show it
        if L is None or passes > 0 or bool((res <= 10 * bound).all()):
            break
        passes += 1
        tighter = tol * max(1e-3, float((theta.clamp_min(0) / scale).sqrt().min()))
    big = vecs.abs().argmax(dim=1)
    vecs = vecs * torch.sign(vecs.gather(1, big[:, None]))
    scale = float(theta.abs().max()) or 1.0
    explicit_ok = bool((res <= 10 * bound).all())
    if L is not None:
        meta.update(solver=meta["solver"] + " on L* L (A = L L*, L = gram_factor(A))",
                    space_size=L.size_in, factor_applications=factor_mv, passes=passes + 1)
    result = EigenResult(theta.clone(), vecs.reshape(k, *A.shape_in), res.clone(),
                         converged and explicit_ok, n_mv, restarts, operator_dims(A), tol, which, meta)
    if not converged:
        msg = (f"eigsh did not converge for {A.name} after {restarts} restarts ({n_mv} applications): "
               f"largest relative residual {float(res.max()) / scale:.3g} > tol={tol:g}; "
               "raise max_restarts, max_basis or tol")
    elif not explicit_ok:
        msg = (f"eigsh for {A.name}: the Lanczos recurrence converged but the explicit residuals reach "
               f"{float(res.max()) / scale:.3g} > 10 * tol={tol:g} (round-off of the {A.dtype} operator); "
               "use a float64 operator or a larger tol")
    if not (converged and explicit_ok):
        if on_failure == "raise":
            raise ConvergenceError(msg, result)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return result


def _apply_to_rows(A: LinearOperator, X: torch.Tensor, chunk: int) -> torch.Tensor:
    """``A`` applied to the rows of ``X`` [n, size_in] (``chunk`` at a time) -> [n, size_out]."""
    out = [A.matvec(X[i:i + chunk].to(A.dtype).reshape(-1, *A.shape_in)) for i in range(0, X.shape[0], chunk)]
    return torch.cat(out).reshape(X.shape[0], A.size_out)


def _krylov(A: LinearOperator, k, which, tol, b, max_basis, max_restarts, gen, chunk):
    """The Krylov iteration of :func:`_eigsh` on ``A``: ``(theta [k] float64, vectors [k, n] in A's
    dtype, converged, applications, restarts, meta)``; the residuals it checks are the Lanczos
    relation's (a dense solve puts its exact ones in ``meta["residuals"]``)."""
    n = A.size_in
    itemsize = torch.empty((), dtype=A.dtype).element_size()
    m = int(max_basis or k + max(30, 10 * b))
    limited = False
    if max_basis is None and m * n * itemsize > BASIS_MEMORY:
        # the default basis would not fit the memory cap: restart sooner instead (more applications,
        # never more memory); an explicit max_basis is honoured as given
        m, limited = max(k + 2 * b, BASIS_MEMORY // (n * itemsize)), True
    if m < k + 2 * b:
        raise InputError(f"max_basis={m} must be at least k + 2 * block_size = {k + 2 * b}")
    f64, store = torch.float64, A.dtype
    n_mv = 0
    anorm = 0.0                              # largest |Ritz value| seen: a lower bound of ‖A‖

    def apply(X):
        nonlocal n_mv
        n_mv += X.shape[0]
        return _apply_to_rows(A, X, chunk)

    restarts = 0
    meta = {"solver": "dense" if n <= m + b else "thick-restart block Lanczos", "block_size": b,
            "max_basis": m, "chunk_size": chunk, "basis_bytes": (n if n <= m + b else m) * n * itemsize,
            "basis_limited_by_memory": limited}
    if n <= m + b:
        D = apply(torch.eye(n, dtype=store, device=A.device)).to(f64)
        theta, S = torch.linalg.eigh((D + D.T) / 2)
        meta["anorm"] = float(theta.abs().max())
        idx = _order(theta, which)[:k]
        theta, Y = theta[idx], S[:, idx].T.contiguous()
        meta["residuals"] = (Y @ D - theta[:, None] * Y).norm(dim=1)
        return theta, Y.to(store), True, n_mv, 0, meta
    keep = max(k, min(k + b + max(5, k // 2), m - 2 * b))
    Q = torch.empty(m, n, dtype=store, device=A.device)
    T = torch.zeros(m, m, dtype=f64, device=A.device)
    first = torch.randn(b, n, generator=gen, device=A.device, dtype=store)
    Q[:b], _ = _next_block(first, Q[:0], gen, float(first.norm()))
    p, filled = 0, b                      # rows [0, p) applied; [p, filled) the last block
    local = 0                             # first row A Q[p:filled] couples to in exact arithmetic
    while True:
        W = apply(Q[p:filled])
        scale = float(W.norm())
        # the block recurrence first (the previous and current blocks, or every kept Ritz vector
        # right after a restart), then one full reorthogonalisation pass (a second one only when
        # it removed most of what was left), which makes the coefficients exact to round-off
        C = torch.zeros(b, filled, dtype=f64, device=A.device)
        C[:, local:] = _project_out(W, Q[local:filled], passes=1)
        C += _project_out(W, Q[:filled])
        T[:filled, p:filled] = C.T
        local = p
        V, R = _next_block(W, Q[:filled], gen, scale)
        Q[filled:filled + b], T[filled:filled + b, p:filled] = V, R
        p, filled = filled, filled + b
        if p < k:
            continue
        # Rayleigh–Ritz after every block: the projected matrix is tiny, and stopping as soon
        # as the wanted pairs converge saves the rest of the basis's applications
        H = torch.triu(T[:p, :p]) + torch.triu(T[:p, :p], 1).T
        theta, S = torch.linalg.eigh(H)
        idx = _order(theta, which)
        theta, S = theta[idx], S[:, idx]
        res = (T[p:filled, :p] @ S[:, :k]).norm(dim=0)
        anorm = max(anorm, float(theta.abs().max()))
        converged = bool((res <= _residual_bound(theta[:k], anorm, tol, store)).all())
        if converged or (filled + b > m and restarts >= max_restarts):
            break
        if filled + b <= m:
            continue
        restarts += 1
        ritz = S[:, :keep].T.to(store) @ Q[:p]
        coupling = T[p:filled, :p] @ S[:, :keep]
        Q[keep:keep + b] = Q[p:filled].clone()   # the ranges may overlap
        Q[:keep] = ritz
        T.zero_()
        T[:keep, :keep] = torch.diag(theta[:keep])
        T[keep:keep + b, :keep] = coupling
        p, filled = keep, keep + b
        local = 0
    vecs = S[:, :k].T.to(store) @ Q[:p]
    theta = theta[:k]
    meta["anorm"] = anorm
    return theta, vecs, converged, n_mv, restarts, meta


def _residual_bound(theta, anorm, tol, dtype):
    """What a wanted pair's residual must reach: ``tol · max(max|λ|, κ ‖A‖)``, the maximum over the
    wanted eigenvalues ``theta``, with ``‖A‖`` estimated by ``anorm`` and ``κ = 10 ε / tol₀`` (``tol₀``
    the dtype's default tolerance: κ = 2.2e-6 in float64, 0.12 in float32), so that at the default
    tolerance the target is never below ``10 ε ‖A‖``, the round-off of the operator's own
    applications.  The floor matters only where the wanted eigenvalues are tiny next to ``‖A‖``
    (``which="SA"`` near a null space), where a purely relative target cannot be reached."""
    kappa = 10 * torch.finfo(dtype).eps / _default_tol(dtype)
    return tol * max(float(theta.abs().max()), kappa * anorm) or tol


def svds(A: LinearOperator, k: int, *, tol: float | None = None, seed=None, on_failure: str = "raise",
         **eigsh_kwargs) -> SVDResult:
    """The ``k`` largest singular triplets of any operator (e.g. the propagator ``P``).

    Runs :func:`eigsh` on the smaller Gram operator (``A* A`` on the input space or ``A A*`` on
    the output space), sets ``σ = sqrt(λ)`` and maps the eigenvectors across with ``A`` or ``A*``.
    Singular values are those of ``A`` between its inner-product spaces (the plain matrix ones
    when both weights are equal).  Reported residuals are ``‖A* u − σ v‖`` (or ``‖A v − σ u‖``,
    whichever was not used to construct the pair).  Accuracy of a singular value degrades like
    ``ε σ_1² / σ_i²``; for the smallest singular value use :func:`smallest_singular_value`.
    """
    if not isinstance(A, LinearOperator):
        raise InputTypeError(f"A must be a LinearOperator, got {type(A).__name__}")
    _check_k(k, min(A.size_in, A.size_out))
    right_side = A.size_in <= A.size_out
    G = A.T @ A if right_side else A @ A.T
    r = eigsh(G, k, which="LA", tol=tol, seed=seed, check_self_adjoint=False, on_failure=on_failure,
              **eigsh_kwargs)
    sigma = r.values.clamp_min(0).sqrt()
    X = r.vectors
    Y = A.matvec(X) if right_side else A.rmatvec(X)
    nd = len(Y.shape) - 1
    Y = Y / Y.flatten(1).norm(dim=1).clamp_min(torch.finfo(Y.dtype).tiny).reshape(-1, *([1] * nd))
    back = A.rmatvec(Y) if right_side else A.matvec(Y)
    res = (back.to(torch.float64) - sigma.reshape(-1, *([1] * (X.dim() - 1))) * X.to(torch.float64))
    res = res.flatten(1).norm(dim=1)
    left, right = (Y, X) if right_side else (X, Y)
    return SVDResult(sigma, left, right, res, r.converged, r.n_matvecs * 2 + 2 * k,
                     operator_dims(A), _dims_out(A))


def _dims_out(A):
    if A.shape_out == A.shape_in:
        return operator_dims(A)
    return ("trial", "time", "unit") if len(A.shape_out) == 3 else tuple(f"dim_{i}" for i in range(len(A.shape_out)))


def operator_norm(A: LinearOperator, *, self_adjoint: bool = False, **kwargs) -> float:
    """``‖A‖ = σ_max(A)``: ``sqrt(λ_max(A* A))`` by Lanczos, or ``max |λ|`` with ``self_adjoint=True``."""
    if self_adjoint:
        return float(eigsh(A, 1, which="LM", **kwargs).values.abs()[0])
    return float(svds(A, 1, **kwargs).values[0])


def smallest_singular_value(inverse: LinearOperator, *, A: LinearOperator | None = None, seed=None,
                            **kwargs) -> float:
    """``σ_min(A) = 1 / ‖A⁻¹‖`` from the inverse operator (e.g. ``σ_min(P)`` from ``P_inv``).

    Lanczos finds the largest singular value of ``A⁻¹`` quickly, whereas the smallest of ``A``
    converges poorly.  With ``A`` given, ``A (A⁻¹ x) = x`` is checked on one random vector.
    """
    if not isinstance(inverse, LinearOperator):
        raise InputTypeError(f"inverse must be a LinearOperator (e.g. ops.P_inv), got {type(inverse).__name__}")
    if A is not None:
        gen = make_generator(seed if isinstance(seed, int) else 0, inverse.device)
        x = torch.randn(*inverse.shape_out, generator=gen, device=inverse.device, dtype=inverse.dtype)
        err = float((A.matvec(inverse.matvec(x)) - x).norm() / x.norm())
        limit = 1e-8 if inverse.dtype == torch.float64 else 1e-3
        if err > limit:
            raise InputError(f"inverse ({inverse.name}) is not the inverse of A ({A.name}): "
                             f"‖A A⁻¹ x − x‖/‖x‖ = {err:.3g}")
    return 1.0 / operator_norm(inverse, seed=seed, **kwargs)


eigsh.__doc__ = _eigsh.__doc__  # one description of the solver and all of its parameters
