"""A small, matrix-free linear-operator algebra on torch tensors.

Every operator maps tensors of shape ``shape_in`` to tensors of shape ``shape_out``
(for the KPFlow operators usually ``[B, T, H]``).  Operators are applied to

* a single vector ``v`` of shape ``shape_in``: ``A(v)`` has shape ``shape_out``;
* a batch of probes ``V`` of shape ``[N, *shape_in]`` (one leading probe dimension):
  ``A(V)`` has shape ``[N, *shape_out]``.  Implementations receive the batched form and
  process all probes together (matrix products, ``torch.func.vmap``), so 16 probes cost
  much less than 16 separate calls.

Adjoints
    ``A.T`` is the adjoint with respect to the inner products of the two spaces.  Each
    space carries a scalar weight ``w`` so that ``<a, b> = w * sum(a * b)``: ``w = 1`` is
    the plain Euclidean (``inner="sum"``) convention and ``w = 1/(B*T)`` the trial-and-time
    average (``inner="mean"``) of the KPFlow paper.  For operators whose input and output
    spaces share a weight the adjoint is the plain transpose.

Only linear combinations are offered: composition ``A @ B``, sums ``A + B``, differences,
scalar multiples ``c * A`` and negation.  Adding a bare scalar (``A + c``) or multiplying
two operators elementwise is refused on purpose (it is not linear / not what it looks
like); write ``A + c * identity(A.shape_in)`` instead.
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from ..errors import InputError, InputTypeError

__all__ = [
    "LinearOperator",
    "FunctionOperator",
    "DenseOperator",
    "IdentityOperator",
    "identity",
    "as_operator",
]

#: ``to_dense`` refuses matrices with more entries than this unless ``force=True``.
MAX_DENSE_ENTRIES = 2**26


def _numel(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


class LinearOperator:
    """Base class of a linear map ``R^{shape_in} -> R^{shape_out}`` on torch tensors.

    Subclasses implement ``_matmat(V)`` and ``_rmatmat(W)`` on batched inputs of shape
    ``[N, *shape_in]`` and ``[N, *shape_out]`` respectively.  ``_rmatmat`` must be the
    adjoint with respect to the weighted inner products (see the module docstring).

    Attributes
    ----------
    shape_in, shape_out : tuple of int
        Shapes of one input and one output vector.
    dtype, device : torch dtype and device of the operator's data.
    weight_in, weight_out : float
        Inner-product weights of the two spaces (``<a,b> = w * sum(a*b)``).
    chunk_size : int or None
        Largest number of probes applied at once; larger batches are split so that peak
        memory stays bounded.  ``None`` applies everything at once.
    """

    # names of the axes of shape_in, set only by operators that know them (partial traces);
    # absent otherwise, so read it with getattr(A, "dims", None)
    dims: tuple[str, ...]

    def __init__(
        self,
        shape_in: Sequence[int],
        shape_out: Sequence[int],
        dtype: torch.dtype,
        device: torch.device | str,
        weight_in: float = 1.0,
        weight_out: float = 1.0,
        name: str | None = None,
        chunk_size: int | None = None,
    ):
        self.shape_in = tuple(int(s) for s in shape_in)
        self.shape_out = tuple(int(s) for s in shape_out)
        self.dtype = dtype
        self.device = torch.device(device)
        self.weight_in = float(weight_in)
        self.weight_out = float(weight_out)
        self.name = name or type(self).__name__
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ core
    def _matmat(self, V: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define _matmat")

    def _rmatmat(self, W: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} does not define _rmatmat")

    @property
    def size_in(self) -> int:
        return _numel(self.shape_in)

    @property
    def size_out(self) -> int:
        return _numel(self.shape_out)

    @property
    def is_square(self) -> bool:
        return self.shape_in == self.shape_out

    def _check(self, v: torch.Tensor, shape: tuple, what: str) -> bool:
        """Validate ``v``; return True when it carries a leading probe dimension."""
        if not isinstance(v, torch.Tensor):
            raise InputTypeError(f"{self.name}: {what} must be a torch.Tensor, got {type(v).__name__}")
        if v.dtype != self.dtype:
            raise InputTypeError(
                f"{self.name}: {what} has dtype {v.dtype} but the operator is {self.dtype}; "
                f"convert with v.to({self.dtype})"
            )
        if v.device != self.device:
            raise InputTypeError(
                f"{self.name}: {what} is on {v.device} but the operator is on {self.device}; "
                f"move it with v.to('{self.device}')"
            )
        if tuple(v.shape) == shape:
            return False
        if v.dim() == len(shape) + 1 and tuple(v.shape[1:]) == shape:
            return True
        raise InputError(
            f"{self.name}: {what} has shape {tuple(v.shape)}; expected {list(shape)} "
            f"or [n_probes, {', '.join(map(str, shape))}]"
        )

    #: ``_matmat``/``_rmatmat`` return new tensors sharing memory with neither their input nor the
    #: operator, so a composition may hand them on as scratch space (see ``_matmat_owned``)
    fresh_outputs = False

    def _matmat_owned(self, V):
        """``_matmat`` for an input the caller gives up (an intermediate of a composition): an
        operator may overwrite it instead of allocating its output (``P`` does)."""
        return self._matmat(V)

    def _rmatmat_owned(self, W):
        return self._rmatmat(W)

    #: axis along which the operator is block-diagonal: slice ``b`` of the output depends only on
    #: slice ``b`` of the input, in both directions (``P``, ``P⁻¹`` and the readout over trials,
    #: axis 0); ``None`` when it couples slices (``K`` couples trials through the shared θ)
    separable_axis = None

    def _rmatmat_block_sqnorms(self, W, axis):
        """``[N, n_blocks]`` float64 Euclidean ``‖A* W_b‖²``, ``W_b`` being ``W`` restricted to slice
        ``b`` along output axis ``axis`` (zero elsewhere), at about the cost of one adjoint
        application; ``None`` where the operator offers no such shortcut.  Used by the
        block-split one-sided trace estimator (``trace(J, method="vjp", blocks="trial")``)."""
        return self._block_adjoint(W, axis, "sqnorms")

    def _rmatmat_block_vectors(self, W, axis):
        """``[N, n_blocks, *shape_in]``: ``A* W_b`` for each slice ``b`` (as above), or ``None``.
        Used by ``frobenius_norm(..., method="trial_pairs")``."""
        return self._block_adjoint(W, axis, "vectors")

    def _has_block_sqnorms(self, axis) -> bool:
        """Whether :meth:`_rmatmat_block_sqnorms` works along ``axis`` (asked without applying)."""
        return self._has_block_adjoint(axis, "sqnorms")

    def _has_block_vectors(self, axis) -> bool:
        return self._has_block_adjoint(axis, "vectors")

    def _has_block_adjoint(self, axis, kind) -> bool:
        return False

    def _block_adjoint(self, W, axis, kind):
        return None

    def _chunked(self, fn: Callable, V: torch.Tensor) -> torch.Tensor:
        n = V.shape[0]
        c = self.chunk_size
        if c is None or n <= c:
            return fn(V)
        return torch.cat([fn(V[i : i + c]) for i in range(0, n, c)], dim=0)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """Apply the operator to ``v`` ([*shape_in] or [N, *shape_in])."""
        batched = self._check(v, self.shape_in, "input")
        V = v if batched else v.unsqueeze(0)
        out = self._chunked(self._matmat, V)
        return out if batched else out[0]

    def rmatvec(self, w: torch.Tensor) -> torch.Tensor:
        """Apply the adjoint to ``w`` ([*shape_out] or [N, *shape_out])."""
        batched = self._check(w, self.shape_out, "input of the adjoint")
        W = w if batched else w.unsqueeze(0)
        out = self._chunked(self._rmatmat, W)
        return out if batched else out[0]

    __call__ = matvec

    # ------------------------------------------------------------- algebra
    @property
    def T(self) -> "LinearOperator":
        """The adjoint operator (w.r.t. the weighted inner products)."""
        return _Adjoint(self)

    @property
    def H(self) -> "LinearOperator":
        return self.T

    def adjoint(self) -> "LinearOperator":
        return self.T

    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return _Chain(self, other)
        if isinstance(other, torch.Tensor):
            return self.matvec(other)
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, LinearOperator):
            return _Sum(self, other, 1.0)
        if isinstance(other, (int, float)):
            raise InputTypeError(
                "adding a scalar to an operator is ambiguous and not linear; "
                "write A + c * identity(A.shape_in) for A + cI"
            )
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other):
        if isinstance(other, LinearOperator):
            return _Sum(self, other, -1.0)
        if isinstance(other, (int, float)):
            raise InputTypeError("subtracting a scalar from an operator is not linear; use A - c * identity(...)")
        return NotImplemented

    def __mul__(self, other):
        if isinstance(other, (int, float)) or (isinstance(other, torch.Tensor) and other.dim() == 0):
            return _Scaled(self, float(other))
        if isinstance(other, LinearOperator):
            raise InputTypeError(
                "elementwise products of operators are not linear operators; use A @ B for composition"
            )
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other):
        if isinstance(other, (int, float)):
            return _Scaled(self, 1.0 / float(other))
        raise InputTypeError("operators can only be divided by a scalar")

    def __neg__(self):
        return _Scaled(self, -1.0)

    def gram(self) -> "LinearOperator":
        """``A A*`` (a self-adjoint, positive semi-definite operator on the output space)."""
        return self @ self.T

    def with_chunk_size(self, chunk_size: int | None) -> "LinearOperator":
        """Set the probe chunk size (returns ``self`` for chaining)."""
        self.chunk_size = chunk_size
        return self

    # ------------------------------------------------------------ inspection
    def inner_in(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Inner product of the input space (weighted sum over the trailing ``shape_in`` dims)."""
        dims = tuple(range(-len(self.shape_in), 0))
        return self.weight_in * (a * b).sum(dim=dims)

    def inner_out(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-len(self.shape_out), 0))
        return self.weight_out * (a * b).sum(dim=dims)

    def to_dense(self, force: bool = False, chunk_size: int = 256) -> torch.Tensor:
        """The Euclidean matrix ``[size_out, size_in]`` of the operator (small operators only).

        Columns are obtained by applying the operator to the standard basis in chunks.
        Refuses operators with more than ``MAX_DENSE_ENTRIES`` entries unless ``force``.
        """
        n_in, n_out = self.size_in, self.size_out
        if n_in * n_out > MAX_DENSE_ENTRIES and not force:
            raise InputError(
                f"{self.name}: a dense view would have {n_out} x {n_in} = {n_in * n_out:.3g} entries; "
                "dense views are for small operators (pass force=True to insist)"
            )
        cols = []
        for start in range(0, n_in, chunk_size):
            stop = min(start + chunk_size, n_in)
            E = torch.zeros(stop - start, n_in, dtype=self.dtype, device=self.device)
            E[torch.arange(stop - start), torch.arange(start, stop)] = 1
            cols.append(self.matvec(E.reshape(stop - start, *self.shape_in)).reshape(stop - start, n_out))
        return torch.cat(cols, dim=0).T.contiguous()

    def __repr__(self) -> str:
        return (
            f"<{self.name}: {list(self.shape_in)} -> {list(self.shape_out)}, "
            f"dtype={self.dtype}, device={self.device}>"
        )


def _check_compatible(a: LinearOperator, b: LinearOperator, what: str):
    if a.dtype != b.dtype:
        raise InputTypeError(f"cannot {what} operators of dtypes {a.dtype} and {b.dtype}; convert one first")
    if a.device != b.device:
        raise InputTypeError(f"cannot {what} operators on devices {a.device} and {b.device}; move one first")


class _Adjoint(LinearOperator):
    def __init__(self, op: LinearOperator):
        super().__init__(op.shape_out, op.shape_in, op.dtype, op.device, op.weight_out, op.weight_in,
                         name=f"{op.name}*", chunk_size=op.chunk_size)
        self.op = op

    def _matmat(self, V):
        return self.op._rmatmat(V)

    def _rmatmat(self, W):
        return self.op._matmat(W)

    def _matmat_owned(self, V):
        return self.op._rmatmat_owned(V)

    def _rmatmat_owned(self, W):
        return self.op._matmat_owned(W)

    @property
    def fresh_outputs(self):
        return self.op.fresh_outputs

    @property
    def separable_axis(self):
        return self.op.separable_axis

    @property
    def T(self):
        return self.op


class _Chain(LinearOperator):
    """Composition ``A @ B`` (apply ``B`` first)."""

    def __init__(self, A: LinearOperator, B: LinearOperator):
        _check_compatible(A, B, "compose")
        if A.shape_in != B.shape_out:
            raise InputError(
                f"cannot compose {A.name} @ {B.name}: {B.name} outputs shape {list(B.shape_out)} "
                f"but {A.name} takes shape {list(A.shape_in)}"
            )
        if not math.isclose(A.weight_in, B.weight_out, rel_tol=1e-12):
            raise InputError(
                f"cannot compose {A.name} @ {B.name}: their shared space uses different inner-product "
                f"weights ({A.weight_in} vs {B.weight_out}); build both with the same inner= convention"
            )
        chunk = min((c for c in (A.chunk_size, B.chunk_size) if c is not None), default=None)
        super().__init__(B.shape_in, A.shape_out, A.dtype, A.device, B.weight_in, A.weight_out,
                         name=f"({A.name} @ {B.name})", chunk_size=chunk)
        self.A, self.B = A, B
        #: the factors in the order they are applied (compositions are immutable: computed once)
        self.factors = chain_factors(B) + chain_factors(A)

    # the factors are applied in a flat loop: each intermediate is released as soon as the next
    # factor has consumed it (nested calls kept every intermediate alive until the outermost
    # returned), and a fresh intermediate is handed on as scratch space for the next factor
    def _apply(self, V, owned, adjoint):
        return _apply_factors(self.factors, V, owned, adjoint)

    def _matmat(self, V):
        return self._apply(V, False, False)

    def _rmatmat(self, W):
        return self._apply(W, False, True)

    def _matmat_owned(self, V):
        return self._apply(V, True, False)

    def _rmatmat_owned(self, W):
        return self._apply(W, True, True)

    @property
    def fresh_outputs(self):
        return self.factors[-1].fresh_outputs and self.factors[0].fresh_outputs

    @property
    def separable_axis(self):
        axes = {f.separable_axis for f in self.factors}
        return axes.pop() if len(axes) == 1 else None

    def _has_block_adjoint(self, axis, kind) -> bool:
        return (self.factors[0]._has_block_adjoint(axis, kind)
                and all(f.separable_axis == axis for f in self.factors[1:]))

    def _block_adjoint(self, W, axis, kind):
        # (F_k ... F_1)* W_b = F_1* (F_2* ... F_k* W)_b when F_2 .. F_k keep the blocks apart
        if not self._has_block_adjoint(axis, kind):
            return None
        return self.factors[0]._block_adjoint(self._outer_adjoints(W), axis, kind)

    def _outer_adjoints(self, W):
        """``F_2* ... F_k* W``: the adjoints of all factors but the first applied (the caller's
        ``W`` is never overwritten; intermediates are)."""
        return _apply_factors(self.factors[1:], W, False, True)


def _apply_factors(factors, V, owned, adjoint):
    """``factors`` applied in order (their adjoints in reverse order), each intermediate handed on
    as scratch space when the factor that made it returns fresh outputs; ``owned`` says whether
    ``V`` itself may be overwritten."""
    for f in (reversed(factors) if adjoint else factors):
        if adjoint:
            V = f._rmatmat_owned(V) if owned else f._rmatmat(V)
        else:
            V = f._matmat_owned(V) if owned else f._matmat(V)
        owned = f.fresh_outputs
    return V


def chain_factors(op: LinearOperator) -> list:
    """The factors of a composition in the order they are applied (``A @ B`` -> ``[B, A]``)."""
    return list(op.factors) if isinstance(op, _Chain) else [op]


def same_operator(a: LinearOperator, b: LinearOperator) -> bool:
    """``a`` and ``b`` are the same map: one object, or adjoints of one object (``P.T`` twice)."""
    return a is b or (isinstance(a, _Adjoint) and isinstance(b, _Adjoint) and a.op is b.op)


def gram_factor(A: LinearOperator) -> LinearOperator | None:
    """``J`` with ``A = J J*`` when ``A`` is written as such a composition, else ``None``.

    Recognised: a composition whose flattened factor list mirrors itself as adjoints, such as
    ``ops.K = J_theta @ J_theta.T``, ``ops.NTK = P @ K @ P.T`` (factors ``P*, J_θ*, J_θ, P``, so
    ``J = P @ J_theta``) and ``J @ J.T`` or ``J.gram()`` for a composition ``J`` (the adjoint of a
    composition counts as its factors' adjoints in reverse).  Scalar multiples and sums are not
    looked into.  Nothing is applied."""
    fs: list[LinearOperator] = []
    for f in chain_factors(A):
        if isinstance(f, _Adjoint) and isinstance(f.op, _Chain):
            fs.extend(g.T for g in reversed(f.op.factors))
        else:
            fs.append(f)
    n = len(fs)
    if n < 2 or n % 2 or not all(same_operator(fs[i], fs[n - 1 - i].T) for i in range(n // 2)):
        return None
    J = fs[n // 2]
    for f in fs[n // 2 + 1:]:
        J = f @ J
    return J


def apply_pair(A: LinearOperator, B: LinearOperator, X: torch.Tensor):
    """``(A X, B X)`` for a probe batch ``X``, applying shared factors once.

    When both are compositions with a common first factor (``P*`` in ``P K P*`` and ``P P*``)
    it is applied once; a common last factor (``P``) is applied once to both intermediate
    batches stacked.  For the misdirection pair this saves one of the two ``P*`` and batches
    the two ``P``.
    """
    fa, fb = chain_factors(A), chain_factors(B)
    n = min(len(fa), len(fb))
    pre = 0
    while pre < n - 1 and same_operator(fa[pre], fb[pre]):
        pre += 1
    suf = 0
    while suf < n - 1 - pre and same_operator(fa[-1 - suf], fb[-1 - suf]):
        suf += 1
    if pre == 0 and suf == 0:
        return A._matmat(X), B._matmat(X)
    Y = X
    for f in fa[:pre]:
        Y = f._matmat(Y)
    YA, YB = Y, Y
    for f in fa[pre:len(fa) - suf]:
        YA = f._matmat(YA)
    for f in fb[pre:len(fb) - suf]:
        YB = f._matmat(YB)
    if suf == 0:
        return YA, YB
    Z = torch.cat([YA, YB])                  # fresh: the shared last factors may work in place
    for f in fa[len(fa) - suf:]:
        Z = f._matmat_owned(Z)
    return Z[:X.shape[0]], Z[X.shape[0]:]


class _Sum(LinearOperator):
    def __init__(self, A: LinearOperator, B: LinearOperator, sign: float):
        _check_compatible(A, B, "add")
        if A.shape_in != B.shape_in or A.shape_out != B.shape_out:
            raise InputError(
                f"cannot add {A.name} ({list(A.shape_in)} -> {list(A.shape_out)}) and "
                f"{B.name} ({list(B.shape_in)} -> {list(B.shape_out)}): shapes differ"
            )
        chunk = min((c for c in (A.chunk_size, B.chunk_size) if c is not None), default=None)
        op = "+" if sign > 0 else "-"
        super().__init__(A.shape_in, A.shape_out, A.dtype, A.device, A.weight_in, A.weight_out,
                         name=f"({A.name} {op} {B.name})", chunk_size=chunk)
        self.A, self.B, self.sign = A, B, sign

    def _matmat(self, V):
        return self.A._matmat(V) + self.sign * self.B._matmat(V)

    def _rmatmat(self, W):
        return self.A._rmatmat(W) + self.sign * self.B._rmatmat(W)


class _Scaled(LinearOperator):
    def __init__(self, A: LinearOperator, c: float):
        super().__init__(A.shape_in, A.shape_out, A.dtype, A.device, A.weight_in, A.weight_out,
                         name=f"{c:g}*{A.name}", chunk_size=A.chunk_size)
        self.A, self.c = A, c

    def _matmat(self, V):
        return self.c * self.A._matmat(V)

    def _rmatmat(self, W):
        return self.c * self.A._rmatmat(W)


@dataclass(frozen=True)
class OperatorHooks:
    """The optional parts of a :class:`FunctionOperator`, passed to it as keywords.

    ``weight_in`` / ``weight_out``: the inner-product weights of the input and output spaces;
    ``matmat_inplace`` / ``rmatmat_inplace``: versions of the callables allowed to overwrite their
    argument (used when the caller owns it); ``fresh_outputs``: the callables return new tensors
    (never views of their input); ``separable_axis``: the operator acts independently along this
    input axis; ``rmatmat_block_sqnorms`` / ``rmatmat_block_vectors``: ``(axis, fn)`` giving the
    per-block adjoint squared norms / images along ``axis`` (fast paths of the reductions).
    """

    weight_in: Any = 1.0
    weight_out: Any = 1.0
    matmat_inplace: Callable | None = None
    rmatmat_inplace: Callable | None = None
    fresh_outputs: bool = False
    separable_axis: int | None = None
    rmatmat_block_sqnorms: tuple | None = None
    rmatmat_block_vectors: tuple | None = None


class FunctionOperator(LinearOperator):
    """An operator from two batched callables ``matmat(V)`` and ``rmatmat(W)``.

    Both callables take a leading probe dimension.  ``rmatmat`` must be the adjoint of
    ``matmat`` w.r.t. the weighted inner products.  ``hooks``: the fields of
    :class:`OperatorHooks` (weights and optional fast paths).
    """

    def __init__(self, matmat, rmatmat, shape_in, shape_out, dtype, device, name=None, chunk_size=None, **hooks):
        unknown = sorted(set(hooks) - {f.name for f in dataclasses.fields(OperatorHooks)})
        if unknown:
            raise InputTypeError(f"FunctionOperator got unexpected keyword argument(s) {unknown}; the optional "
                                 f"parts are the fields of OperatorHooks")
        h = OperatorHooks(**hooks)
        super().__init__(shape_in, shape_out, dtype, device, h.weight_in, h.weight_out, name, chunk_size)
        self._f, self._fT = matmat, rmatmat
        self._f_, self._fT_ = h.matmat_inplace, h.rmatmat_inplace
        self.fresh_outputs = bool(h.fresh_outputs)
        self.separable_axis = h.separable_axis
        #: kind -> ``(axis, fn)``: ``fn(W)`` gives the per-block adjoint squared norms ("sqnorms") or
        #: images ("vectors") along ``axis``
        self._blocks = {kind: v for kind, v in (("sqnorms", h.rmatmat_block_sqnorms),
                                                 ("vectors", h.rmatmat_block_vectors)) if v is not None}

    def _has_block_adjoint(self, axis, kind) -> bool:
        return kind in self._blocks and self._blocks[kind][0] == axis

    def _block_adjoint(self, W, axis, kind):
        return self._blocks[kind][1](W) if self._has_block_adjoint(axis, kind) else None

    def _matmat(self, V):
        return self._f(V)

    def _rmatmat(self, W):
        return self._fT(W)

    def _matmat_owned(self, V):
        return self._f(V) if self._f_ is None else self._f_(V)

    def _rmatmat_owned(self, W):
        return self._fT(W) if self._fT_ is None else self._fT_(W)


class DenseOperator(LinearOperator):
    """Wrap an explicit matrix ``M`` of shape ``[size_out, size_in]`` (Euclidean inner products)."""

    def __init__(self, matrix: torch.Tensor, shape_in=None, shape_out=None, name="Dense"):
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
            raise InputError("DenseOperator needs a 2-D torch.Tensor")
        shape_in = tuple(shape_in) if shape_in is not None else (matrix.shape[1],)
        shape_out = tuple(shape_out) if shape_out is not None else (matrix.shape[0],)
        if _numel(shape_in) != matrix.shape[1] or _numel(shape_out) != matrix.shape[0]:
            raise InputError(
                f"matrix of shape {tuple(matrix.shape)} does not match shape_in={shape_in}, shape_out={shape_out}"
            )
        super().__init__(shape_in, shape_out, matrix.dtype, matrix.device, name=name)
        self.matrix = matrix

    def _matmat(self, V):
        n = V.shape[0]
        return (V.reshape(n, -1) @ self.matrix.T).reshape(n, *self.shape_out)

    def _rmatmat(self, W):
        n = W.shape[0]
        return (W.reshape(n, -1) @ self.matrix).reshape(n, *self.shape_in)


class IdentityOperator(LinearOperator):
    def __init__(self, shape, dtype=torch.float64, device="cpu", weight=1.0):
        super().__init__(shape, shape, dtype, device, weight, weight, name="I")

    def _matmat(self, V):
        return V.clone()

    def _rmatmat(self, W):
        return W.clone()


def identity(shape_or_op, dtype=None, device=None) -> IdentityOperator:
    """Identity on ``shape`` (or on the input space of a given operator, matching its dtype/device)."""
    if isinstance(shape_or_op, LinearOperator):
        op = shape_or_op
        return IdentityOperator(op.shape_in, dtype or op.dtype, device or op.device, op.weight_in)
    return IdentityOperator(shape_or_op, dtype or torch.get_default_dtype(), device or "cpu")


def as_operator(A, shape_in=None, shape_out=None) -> LinearOperator:
    """Return ``A`` if it is already an operator, else wrap a dense matrix."""
    if isinstance(A, LinearOperator):
        return A
    if isinstance(A, torch.Tensor):
        return DenseOperator(A, shape_in, shape_out)
    raise InputTypeError(f"expected a LinearOperator or a 2-D torch.Tensor, got {type(A).__name__}")
