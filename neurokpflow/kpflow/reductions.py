"""Reductions of operators on ``[B, T, H]``-shaped spaces onto a subset of their axes.

Two different operations with two names (kpflow-math §4).  Write an operator's indices as
``A[r, s; r', s']`` with ``s`` running over the reduced axes ``S`` and ``r`` over the kept ones.

``partial_trace(A, axes)`` — the true partial trace ``Tr_S A``::

    (Tr_S A)[r; r'] = Σ_s A[r, s; r', s]

``block_average(A, axes)`` — the reduced view ``⟨A⟩_S`` of the KPFlow paper's figures
("copy the input along S, apply A, average the output over S")::

    ⟨A⟩_S[r; r'] = (1/|S|) Σ_{s, s'} A[r, s; r', s']      (= (1/|S|) Eᵀ A E,  E = I ⊗ 1_S)

Normalisation: the factor is ``1/|S|``.  The block *sum* is ``|S| · ⟨A⟩_S`` and the mean over
all pairs ``(s, s')`` is ``⟨A⟩_S / |S|``; scale-free quantities (effective ranks, alignments)
do not depend on it.  The two reductions agree (up to this scale) only when ``A`` is
block-diagonal on ``S`` with equal blocks, e.g. ``A = C ⊗ I_S``.

Axes are given as ints (negative allowed) or, for operators on ``[trial, time, unit]``
spaces, as names ``"trial"``, ``"time"``, ``"unit"`` (alias ``"hidden"``).  Reduced operators
remember the names of their kept axes (``.dims``), so they can be reduced again by name and
their eigenfunctions come back labelled.
"""
from __future__ import annotations

import torch

from .linop import LinearOperator
from ._probes import chunk_size_for, make_generator, random_probes
from ..errors import InputError, InputTypeError

__all__ = ["partial_trace", "block_average", "ReducedOperator", "operator_dims", "resolve_axes"]

DEFAULT_DIMS_3D = ("trial", "time", "unit")
_ALIASES = {"hidden": "unit", "trials": "trial", "units": "unit"}


def operator_dims(A: LinearOperator) -> tuple:
    """Axis names of ``A``'s input space: its ``dims`` attribute, ``(trial, time, unit)`` for
    3-D spaces, else ``dim_0, dim_1, ...``."""
    dims = getattr(A, "dims", None)
    if dims is not None:
        return tuple(dims)
    if len(A.shape_in) == 3:
        return DEFAULT_DIMS_3D
    return tuple(f"dim_{i}" for i in range(len(A.shape_in)))


def resolve_axes(A: LinearOperator, axes, arg: str = "axes") -> tuple:
    """Sorted tuple of distinct axis indices of ``A``'s input space named by ``axes``."""
    dims = operator_dims(A)
    nd = len(A.shape_in)
    items = [axes] if isinstance(axes, (int, str)) else list(axes)
    if not items:
        raise InputError(f"{arg} is empty; name at least one of the axes {list(dims)}")
    out = []
    for ax in items:
        if isinstance(ax, str):
            name = _ALIASES.get(ax, ax)
            if name not in dims:
                raise InputError(f"{arg}: {A.name} has no axis {ax!r}; its axes are {list(dims)} "
                                 f"(shape {list(A.shape_in)})")
            i = dims.index(name)
        elif isinstance(ax, int) and not isinstance(ax, bool):
            if not -nd <= ax < nd:
                raise InputError(f"{arg}: axis {ax} does not exist; {A.name} has {nd} axes {list(dims)}")
            i = ax % nd
        else:
            raise InputTypeError(f"{arg} must hold ints or axis names, got {ax!r}")
        if i in out:
            raise InputError(f"{arg}: axis {dims[i]!r} is named twice")
        out.append(i)
    return tuple(sorted(out))


def _require_square_operator(A):
    if not isinstance(A, LinearOperator):
        raise InputTypeError(f"A must be a LinearOperator, got {type(A).__name__}")
    if A.shape_in != A.shape_out:
        raise InputError(f"reductions need a square operator; {A.name} maps {list(A.shape_in)} -> "
                         f"{list(A.shape_out)}")
    if A.weight_in != A.weight_out:
        raise InputError(f"{A.name} uses different inner-product weights on its two spaces; "
                         "reductions need one weight")


class ReducedOperator(LinearOperator):
    """An operator on the kept axes of ``A`` (built by :func:`partial_trace` or :func:`block_average`).

    Attributes: ``parent`` (the operator reduced), ``reduction`` (``"partial_trace"`` or
    ``"block_average"``), ``traced_axes`` / ``kept_axes`` (indices into the parent's axes),
    ``dims`` (names of the kept axes).
    """

    def __init__(self, A: LinearOperator, traced: tuple, reduction: str, probes=None):
        _require_square_operator(A)
        nd = len(A.shape_in)
        if len(traced) == nd:
            raise InputError(f"reducing over every axis of {A.name} leaves nothing; use trace(A) instead")
        kept = tuple(i for i in range(nd) if i not in traced)
        parent_dims = operator_dims(A)
        self.parent, self.reduction = A, reduction
        self.kept_axes, self.traced_axes = kept, traced
        self.kept_shape = tuple(A.shape_in[i] for i in kept)
        self.n_traced = int(torch.Size([A.shape_in[i] for i in traced]).numel())
        self._perm = kept + traced  # parent layout -> [*kept, *traced]
        self._inv = tuple(self._perm.index(i) for i in range(nd))
        self._probes = probes  # [p, n_traced] randomized partial trace, or None
        super().__init__(self.kept_shape, self.kept_shape, A.dtype, A.device, A.weight_in, A.weight_in,
                         name=f"{reduction}({A.name}; {','.join(parent_dims[i] for i in traced)})",
                         chunk_size=A.chunk_size)
        self.dims = tuple(parent_dims[i] for i in kept)

    # layout helpers: [P, *kept, n_traced] <-> [P, *parent]
    def _to_parent(self, X):
        P = X.shape[0]
        full = X.reshape(P, *self.kept_shape, *(self.parent.shape_in[i] for i in self.traced_axes))
        return full.permute(0, *(1 + i for i in self._inv))

    def _from_parent(self, Y):
        P = Y.shape[0]
        return Y.permute(0, *(1 + i for i in self._perm)).reshape(P, *self.kept_shape, self.n_traced)

    def _apply(self, V, fn):
        if self.reduction == "block_average":
            X = V.unsqueeze(-1).expand(*V.shape, self.n_traced)
            return self._from_parent(fn(self._to_parent(X).contiguous())).mean(-1)
        G = self._probes  # None: exact (basis vectors of the traced space)
        n_dirs = self.n_traced if G is None else G.shape[0]
        N = V.shape[0]
        out = torch.zeros_like(V)
        chunk = chunk_size_for(self.parent, None)
        pairs = torch.arange(N * n_dirs, device=V.device)
        for start in range(0, pairs.numel(), chunk):
            idx = pairs[start:start + chunk]
            n_idx, j_idx = idx // n_dirs, idx % n_dirs
            if G is None:
                dirs = torch.nn.functional.one_hot(j_idx, self.n_traced).to(V.dtype)
            else:
                dirs = G[j_idx]
            view = (-1,) + (1,) * len(self.kept_shape) + (self.n_traced,)
            X = V[n_idx].unsqueeze(-1) * dirs.reshape(view)
            Y = self._from_parent(fn(self._to_parent(X).contiguous()))
            out.index_add_(0, n_idx, (Y * dirs.reshape(view)).sum(-1))
        return out if G is None else out / n_dirs

    def _matmat(self, V):
        return self._apply(V, self.parent._matmat)

    def _rmatmat(self, W):
        return self._apply(W, self.parent._rmatmat)


def partial_trace(A: LinearOperator, axes, *, budget: int | None = None, seed=None) -> LinearOperator:
    """The true partial trace ``Tr_S A`` over ``axes`` (an operator on the kept axes).

    ``(Tr_S A)[r; r'] = Σ_{s ∈ S} A[r, s; r', s]``.  Applying it to one vector costs ``|S|``
    applications of ``A`` (batched and chunked by ``A.chunk_size``).  With ``budget=p`` it is
    replaced by the unbiased randomized partial trace ``(1/p) Σ_j (I ⊗ g_jᵀ) A (I ⊗ g_j)``
    with ``p`` fixed Rademacher probes ``g_j`` on the traced axes (``p`` applications per vector;
    still linear and, for self-adjoint ``A``, self-adjoint).

    Operators with closed-form structure (e.g. the unit-separable ``K`` of
    :func:`neurokpflow.kpflow.unit_separable_K`) provide an exact fast reduction, used here
    when ``budget`` is None.
    """
    _require_square_operator(A)
    traced = resolve_axes(A, axes)
    if budget is None:
        exact = getattr(A, "_exact_partial_trace", None)
        if exact is not None:
            fast = exact(traced)
            if fast is not None:
                return fast
        return ReducedOperator(A, traced, "partial_trace")
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"budget must be a positive int (number of traced-space probes), got {budget!r}")
    n_traced = int(torch.Size([A.shape_in[i] for i in traced]).numel())
    G = random_probes(budget, (n_traced,), A.dtype, A.device, make_generator(seed, A.device))
    return ReducedOperator(A, traced, "partial_trace", probes=G)


def block_average(A: LinearOperator, axes) -> LinearOperator:
    """The reduced view ``⟨A⟩_S = (1/|S|) Σ_{s,s'} A[r, s; r', s']`` over ``axes``.

    Matrix-free: copy the input along the reduced axes, apply ``A`` once, average the output
    over them.  Block sum = ``|S| ·`` this; mean over pairs = this ``/ |S|``.
    """
    _require_square_operator(A)
    return ReducedOperator(A, resolve_axes(A, axes), "block_average")
