"""Top-k eigenpairs and singular triplets of matrix-free operators, on their device.

``eigsh`` is a thick-restart block Lanczos method: the Krylov basis is built a block of
probes at a time (one batched application of the operator per block, in the operator's own
dtype, e.g. float32), while the basis, its orthogonalisation (two passes of block
Gram–Schmidt), the projected matrix and the Rayleigh–Ritz step are all float64.  When the
basis is full, the wanted Ritz vectors are kept, the next Krylov block is appended and the
expansion continues.  Convergence is declared when every wanted pair has a residual
``‖A v − λ v‖ ≤ tol · max|λ|`` (relative, never an absolute cut-off); otherwise a
:class:`ConvergenceError` carrying the residuals is raised (or a warning, with
``on_failure="warn"``).

Eigenvectors have unit Euclidean norm and a fixed sign: their largest-magnitude entry is
positive.  Results convert to xarray with the operator's axis names (``trial``, ``time``,
``unit`` for full ``[B, T, H]`` spaces, the kept axes for reduced operators).

Memory: the basis and its image are ``2 · max_basis`` float64 vectors of the operator's size.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import math

import torch
import xarray as xr

from .linop import LinearOperator
from .reductions import operator_dims
from ._probes import chunk_size_for, make_generator

__all__ = ["eigsh", "svds", "operator_norm", "smallest_singular_value", "EigenResult", "SVDResult",
           "ConvergenceError"]


class ConvergenceError(RuntimeError):
    """An iterative solver stopped before reaching its tolerance; ``.result`` holds what it had."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


@dataclass
class EigenResult:
    """Eigenpairs ``A v_i = λ_i v_i``.

    ``values`` [k] float64; ``vectors`` [k, *shape] (operator dtype and device); ``residuals``
    [k] float64 ``‖A v_i − λ_i v_i‖``; ``converged``; ``n_matvecs``; ``n_restarts``; ``dims``
    (axis names of one eigenvector); ``tol``; ``which``.
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

    def to_xarray(self) -> xr.Dataset:
        k = self.values.numel()
        return xr.Dataset(
            {"eigenvalue": ("mode", self.values.cpu().numpy()),
             "eigenfunction": (("mode", *self.dims), self.vectors.detach().cpu().numpy()),
             "residual": ("mode", self.residuals.cpu().numpy())},
            coords={"mode": np.arange(k)},
            attrs={"converged": int(self.converged), "tol": self.tol, "which": self.which,
                   "n_matvecs": self.n_matvecs,
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


def _default_tol(dtype) -> float:
    return 1e-9 if dtype == torch.float64 else 1e-5


def _check_k(k, n, what="k"):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"{what} must be a positive int, got {k!r}")
    if k >= n:
        raise ValueError(f"{what}={k} must be smaller than the dimension {n}; for a full spectrum of a small "
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
        raise ValueError(f"A ({A.name}) is not self-adjoint: |<Ax,y> - <x,Ay>| / (|<Ax,y>| + |<x,Ay>|) = "
                         f"{rel:.3g} > {limit:g}; use svds(A, k) for non-self-adjoint operators")
    del nd


def _orthonormal_block(W, Q, gen, want):
    """Up to ``want`` rows orthonormal to the rows of ``Q`` and to each other, spanning ``W``
    where it is not (numerically) inside ``span Q``; deficient rows are filled with random ones.

    Block classical Gram–Schmidt applied twice, then a Householder QR of the block; a candidate
    whose QR diagonal is below 1e-10 of its norm lies in the span already and is replaced.
    """
    n = W.shape[1]
    want = min(want, n - Q.shape[0])
    rows = W.new_zeros(0, n)
    cand = W
    for _ in range(4):
        need = want - rows.shape[0]
        if need <= 0:
            break
        scale = cand.norm(dim=1)
        basis = torch.cat([Q, rows]) if rows.shape[0] else Q
        for _pass in range(2):
            if basis.shape[0]:
                cand = cand - (cand @ basis.T) @ basis
        q, r = torch.linalg.qr(cand.T)
        ok = (r.diagonal().abs() > 1e-10 * scale) & (scale > 0)
        new = q.T[ok][:need]
        if new.shape[0]:
            if basis.shape[0] and not bool(ok.all()):
                # one more pass: QR of nearly dependent columns can leak into span Q
                new = new - (new @ basis.T) @ basis
            new = torch.linalg.qr(new.T)[0].T
            rows = torch.cat([rows, new])
        cand = torch.randn(max(want - rows.shape[0], 0), n, generator=gen, device=W.device, dtype=W.dtype)
    return rows


def _order(theta, which):
    if which == "LA":
        return torch.argsort(theta, descending=True)
    if which == "SA":
        return torch.argsort(theta)
    return torch.argsort(theta.abs(), descending=True)


def eigsh(A: LinearOperator, k: int, *, which: str = "LA", tol: float | None = None,
          block_size: int | None = None, max_basis: int | None = None, max_restarts: int = 300,
          seed=None, check_self_adjoint: bool = True, on_failure: str = "raise",
          chunk_size: int | None = None) -> EigenResult:
    """The ``k`` extreme eigenpairs of a self-adjoint operator.

    Parameters
    ----------
    A : LinearOperator
        Square and self-adjoint (checked on one random pair unless ``check_self_adjoint=False``).
    k : int
        Number of eigenpairs, ``1 <= k < dim``.
    which : {"LA", "SA", "LM"}
        Largest algebraic (default), smallest algebraic, largest magnitude.
    tol : float
        Relative residual tolerance ``‖A v − λ v‖ ≤ tol · max|λ|`` (default 1e-5 for float32
        operators, 1e-9 for float64).
    block_size : int
        Probes per Krylov block (default ``ceil(k / 2)``).
    max_basis : int
        Basis size before a restart (default ``k + 10 · block_size``).
    on_failure : {"raise", "warn"}
        What to do when ``max_restarts`` is reached without convergence.
    """
    if not isinstance(A, LinearOperator):
        raise TypeError(f"A must be a LinearOperator, got {type(A).__name__}")
    if A.shape_in != A.shape_out or A.weight_in != A.weight_out:
        raise ValueError(f"A ({A.name}) maps {list(A.shape_in)} -> {list(A.shape_out)}; eigsh needs a square "
                         "self-adjoint operator (use svds for rectangular or non-self-adjoint ones)")
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
    if on_failure not in ("raise", "warn"):
        raise ValueError(f"on_failure must be 'raise' or 'warn', got {on_failure!r}")
    n = A.size_in
    _check_k(k, n)
    tol = _default_tol(A.dtype) if tol is None else float(tol)
    # defaults from timing on the GRU workload: small blocks in a deep basis need ~half the applications
    # of one block of size k (150 vs 320 for k = 10 at a 1e-5 residual)
    b = int(block_size or max(1, math.ceil(k / 2)))
    m = min(n, int(max_basis or k + 10 * b))
    if m < k + b and m < n:
        raise ValueError(f"max_basis={m} must be at least k + block_size = {k + b}")
    gen = make_generator(seed, A.device)
    if check_self_adjoint:
        _check_self_adjoint(A, gen)
    chunk = chunk_size_for(A, chunk_size)
    f64 = torch.float64
    n_mv = 0

    def apply(X):
        nonlocal n_mv
        n_mv += X.shape[0]
        out = [A.matvec(X[i:i + chunk].to(A.dtype).reshape(-1, *A.shape_in)) for i in range(0, X.shape[0], chunk)]
        return torch.cat(out).reshape(X.shape[0], n).to(f64)

    # preallocated basis buffers: growing them by concatenation copied the whole basis every block
    Q_buf = torch.empty(m, n, dtype=f64, device=A.device)
    AQ_buf = torch.empty(m, n, dtype=f64, device=A.device)
    filled = 0
    block = _orthonormal_block(torch.randn(b, n, generator=gen, device=A.device, dtype=f64), Q_buf[:0], gen, b)
    restarts = 0
    while True:
        while block.shape[0]:
            AB = apply(block)
            r = block.shape[0]
            Q_buf[filled:filled + r], AQ_buf[filled:filled + r] = block, AB
            filled += r
            if filled + b > m or r < b:
                # only whole blocks: the Krylov continuation after a restart is A times the last *full*
                # block, and a truncated last block loses residual directions (it stalled convergence)
                break
            block = _orthonormal_block(AB, Q_buf[:filled], gen, b)
        Q, AQ = Q_buf[:filled], AQ_buf[:filled]
        Hm = Q @ AQ.T
        theta, S = torch.linalg.eigh((Hm + Hm.T) / 2)
        idx = _order(theta, which)
        theta, S = theta[idx], S[:, idx]
        keep = min(k + b, filled - 1) if filled < n else filled
        Y, AY = S[:, :max(keep, k)].T @ Q, S[:, :max(keep, k)].T @ AQ
        res = (AY[:k] - theta[:k, None] * Y[:k]).norm(dim=1)
        scale = float(theta.abs().max()) or 1.0
        converged = bool((res <= tol * scale).all()) or filled >= n
        if converged or restarts >= max_restarts:
            break
        restarts += 1
        block = _orthonormal_block(AB, Q, gen, b)
        Q_buf[:keep], AQ_buf[:keep] = Y[:keep], AY[:keep]
        filled = keep
    vecs = Y[:k]
    big = vecs.abs().argmax(dim=1)
    vecs = vecs * torch.sign(vecs.gather(1, big[:, None]))
    result = EigenResult(theta[:k].clone(), vecs.to(A.dtype).reshape(k, *A.shape_in), res[:k].clone(),
                         converged, n_mv, restarts, operator_dims(A), tol, which)
    if not converged:
        msg = (f"eigsh did not converge for {A.name} after {restarts} restarts ({n_mv} applications): "
               f"largest relative residual {float(res[:k].max()) / scale:.3g} > tol={tol:g}; "
               "raise max_restarts, max_basis or tol")
        if on_failure == "raise":
            raise ConvergenceError(msg, result)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return result


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
        raise TypeError(f"A must be a LinearOperator, got {type(A).__name__}")
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
        raise TypeError(f"inverse must be a LinearOperator (e.g. ops.P_inv), got {type(inverse).__name__}")
    if A is not None:
        gen = make_generator(seed if isinstance(seed, int) else 0, inverse.device)
        x = torch.randn(*inverse.shape_out, generator=gen, device=inverse.device, dtype=inverse.dtype)
        err = float((A.matvec(inverse.matvec(x)) - x).norm() / x.norm())
        limit = 1e-8 if inverse.dtype == torch.float64 else 1e-3
        if err > limit:
            raise ValueError(f"inverse ({inverse.name}) is not the inverse of A ({A.name}): "
                             f"‖A A⁻¹ x − x‖/‖x‖ = {err:.3g}")
    return 1.0 / operator_norm(inverse, seed=seed, **kwargs)
