"""Closed-form parameter operator ``K`` for unit-separable cells (exact trace, diagonal, partial traces).

In the leaky/vanilla RNN, the GRU and the LSTM, the state of unit ``i`` after one step
depends only on row ``i`` of every weight matrix and bias (gates act elementwise).  So
``K = J_θ J_θ*`` is block-diagonal over units, and each unit's block is a sum of terms
``c_g(b,t) c_g(b',t') ⟨F_g(b,t), F_g(b',t')⟩`` where ``F_g`` are features shared by all units
(the input ``x(t)``, the previous state ``z(t−1)``, a constant for each bias) and ``c_g`` are
per-unit derivatives of the cell with respect to a pre-activation.  Writing
``D_g = diag(c_g)`` over ``(b, t, state)``,

    K = scale · Σ_g D_g (F_g F_gᵀ ⊗ 1_units) D_g        (§3.2–3.3 of kpflow-math generalised)

where ``⊗ 1_units`` couples two states only when they belong to the same unit (the LSTM state
``[h, c]`` gives 2 × 2 blocks per unit).  ``scale`` is 1 for ``inner="sum"`` and ``1/(B·T)`` for
``inner="mean"``.  Applying ``K`` costs two small matrix products per term and no automatic
differentiation; the diagonal, the trace and the partial traces over the unit axis or over
(trial, time) are exact (zero variance) and cost about one forward pass.

The parameters are those of the cell with ``requires_grad=True`` (the readout is separate).
The Jacobians are evaluated at ``(z(t−1), x(t))`` with ``z(0) = h0`` (zeros by default).
"""
from __future__ import annotations


import torch

from .estimators import Estimate, make_estimate
from .linop import DenseOperator, LinearOperator
from ..errors import InputError, InputTypeError

__all__ = ["unit_separable_K", "UnitSeparableK"]


class UnitSeparableK(LinearOperator):
    """``K`` of a unit-separable cell on ``[B, T, S]`` (see the module docstring).

    Methods beyond the operator interface: :meth:`diagonal`, :meth:`trace`, and exact
    :func:`~neurokpflow.kpflow.partial_trace` over ``"unit"`` (an operator on ``[B, T]``) or over
    ``("trial", "time")`` (a dense ``[S, S]`` operator).
    """

    def __init__(self, terms, n_units, components, scale, weight, name="K"):
        C0 = terms[0][0]
        B, T, S = C0.shape
        super().__init__((B, T, S), (B, T, S), C0.dtype, C0.device, weight, weight, name=name)
        self.terms, self.n_units, self.components, self.scale = terms, n_units, components, float(scale)
        self._diagonal = None

    def _matmat(self, V):
        out = torch.zeros_like(V)
        for C, F in self.terms:
            Y = (C * V).reshape(*V.shape[:-1], self.components, self.n_units).sum(-2)
            W = torch.einsum("btp,nbtu->npu", F, Y)
            Z = torch.einsum("btp,npu->nbtu", F, W)
            out += C * Z.repeat(*([1] * (Z.dim() - 1)), self.components)
        return self.scale * out

    _rmatmat = _matmat

    def _diag(self) -> torch.Tensor:
        # computed once: the trace and the (trial, time) partial trace of a one-component cell are sums of it
        if self._diagonal is None:
            d = torch.zeros(self.shape_in, dtype=self.dtype, device=self.device)
            for C, F in self.terms:
                d.addcmul_(C * C, (F * F).sum(-1, keepdim=True))
            self._diagonal = d.mul_(self.scale)
        return self._diagonal

    def diagonal(self) -> torch.Tensor:
        """``K[(b,t,s), (b,t,s)]`` for every state entry, shape ``[B, T, S]`` (exact up to the
        operator dtype's round-off; a new tensor at every call)."""
        return self._diag().clone()

    def trace(self, level: float = 0.95) -> Estimate:
        """Exact ``tr K`` (zero variance) as an :class:`Estimate`, summed in float64."""
        value = float(self._diag().sum(dtype=torch.float64))
        return make_estimate(value, 0.0, level=level, method="structured", n_matvecs=0,
                             meta={"quantity": "trace", "dimension": self.size_in})

    def _exact_partial_trace(self, traced):
        if traced == (2,):
            return _UnitTracedK(self)
        if traced == (0, 1):
            return self._trial_time_traced()
        return None

    def _trial_time_traced(self) -> LinearOperator:
        B, T, S = self.shape_in
        U, c = self.n_units, self.components
        if c == 1:
            # one state entry per unit: the unit blocks are 1 x 1, the diagonal summed over (trial, time)
            M = torch.diag(self._diag().sum(dim=(0, 1), dtype=torch.float64).to(self.dtype))
            op = DenseOperator(M, (S,), (S,), name=f"partial_trace({self.name}; trial,time)")
            op.weight_in = op.weight_out = self.weight_in
            op.dims = ("unit",)
            return op
        blocks = torch.zeros(U, c, c, dtype=torch.float64, device=self.device)
        for C, F in self.terms:
            Cr = C.double().reshape(B * T, c, U)
            nF = (F.double() ** 2).sum(-1).reshape(B * T)
            blocks += torch.einsum("x,xku,xlu->ukl", nF, Cr, Cr)
        M = torch.zeros(S, S, dtype=torch.float64, device=self.device)
        u = torch.arange(U, device=self.device)
        for k in range(c):
            for m in range(c):
                M[k * U + u, m * U + u] = blocks[:, k, m]
        op = DenseOperator((self.scale * M).to(self.dtype), (S,), (S,), name=f"partial_trace({self.name}; trial,time)")
        op.weight_in = op.weight_out = self.weight_in
        op.dims = ("unit",)
        return op


class _UnitTracedK(LinearOperator):
    """``Tr_unit K`` on ``[B, T]``: ``Σ_g (C_g C_gᵀ) ∘ (F_g F_gᵀ)``, applied matrix-free."""

    def __init__(self, K: UnitSeparableK):
        B, T, _ = K.shape_in
        super().__init__((B, T), (B, T), K.dtype, K.device, K.weight_in, K.weight_in,
                         name=f"partial_trace({K.name}; unit)", chunk_size=K.chunk_size)
        self.K = K
        self.dims = ("trial", "time")

    def _matmat(self, V):
        out = torch.zeros_like(V)
        for C, F in self.K.terms:
            W = torch.einsum("btp,nbts->nps", F, C * V.unsqueeze(-1))
            out += (C * torch.einsum("btp,nps->nbts", F, W)).sum(-1)
        return self.K.scale * out

    _rmatmat = _matmat


@torch.no_grad()
def unit_separable_K(cell, inputs: torch.Tensor, hidden: torch.Tensor, h0: torch.Tensor | None = None,
                     inner: str = "sum") -> UnitSeparableK:
    """The exact, fast ``K`` of a :class:`LeakyRNNCell`, :class:`GRUCell` or :class:`LSTMCell`.

    Parameters
    ----------
    cell : the recurrent cell (its trained parameters define ``θ``).
    inputs : [B, T, I] with ``inputs[:, t] = x(t+1)``.
    hidden : [B, T, S] with ``hidden[:, t] = z(t+1)``.
    h0 : [S] or [B, S], optional — ``z(0)``; zeros when omitted.
    inner : {"sum", "mean"} — the inner-product convention (``K_mean = K_sum / (B·T)``).
    """
    if not callable(getattr(cell, "unit_separable_terms", None)):
        raise InputTypeError(f"unit_separable_K needs a cell with unit_separable_terms() (LeakyRNNCell, GRUCell, "
                             f"LSTMCell), got {type(cell).__name__}; use the randomized estimators on "
                             "operators(...).K for other cells")
    if inner not in ("sum", "mean"):
        raise InputError(f"inner must be 'sum' or 'mean', got {inner!r}")
    if inputs.dim() != 3 or hidden.dim() != 3 or inputs.shape[:2] != hidden.shape[:2]:
        raise InputError(f"inputs [B, T, I] and hidden [B, T, S] must share B and T; got {tuple(inputs.shape)} "
                         f"and {tuple(hidden.shape)}")
    B, T, S = hidden.shape
    if S != cell.state_size:
        raise InputError(f"hidden has {S} state entries but the cell's state_size is {cell.state_size}")
    hidden = hidden.detach()
    if h0 is None:
        z0 = torch.zeros(B, 1, S, dtype=hidden.dtype, device=hidden.device)
    else:
        z0 = h0.detach().to(hidden).expand(B, S).unsqueeze(1)
    z_prev = torch.cat([z0, hidden[:, :-1]], dim=1)
    terms, n_units, comps = cell.unit_separable_terms(inputs.detach().to(hidden.dtype), z_prev)
    terms = [(C.contiguous(), F.contiguous()) for C, F in terms if F is not None]
    if not terms:
        raise InputError("the cell has no trained parameters (requires_grad=False everywhere); K is zero")
    scale = 1.0 if inner == "sum" else 1.0 / (B * T)
    return UnitSeparableK(terms, n_units, comps, scale, weight=scale, name=f"K[{type(cell).__name__}]")
