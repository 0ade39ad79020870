"""The KPFlow operators of a recurrent network along a recorded trajectory.

Under gradient descent on the recurrent parameters θ the hidden trajectory moves, to first
order in the learning rate η, by

    δz = −η · P K P* · Err,

with (all maps on trajectory space 𝕋 = R^{B×T×S} unless noted; see ``kpflow-math.md``)

* ``J_theta``: R^M → 𝕋, ``(J_θ v)_b(t) = ∂f/∂θ |_(z_b(t−1), x_b(t)) · v`` (M recurrent parameters);
* ``K = J_θ J_θ*`` — the parameter operator (self-adjoint, PSD);
* ``P`` — the linearised flow propagator, ``δz(t) = q(t) + J(t) δz(t−1)``; ``P*`` is
  backpropagation through time, ``a(t) = e(t) + J(t+1)ᵀ a(t+1)``;
* ``P_inv = I − J·shift`` (one Jacobian application per step, no recursion), with adjoint
  ``((P⁻¹)* q)(t) = q(t) − J(t+1)ᵀ q(t+1)``;
* ``NTK = P K P*`` — the hidden-state neural tangent kernel; ``NTK_output`` = R·NTK·R* through
  the (fixed) linear readout R when one is given.

Conventions
-----------
Time: ``inputs[:, t] = x(t+1)``, ``hidden[:, t] = z(t+1)``, ``z(0) = h0`` (zero unless given).
Jacobians are evaluated at ``(z(t−1), x(t))``.

Inner product (``inner=``): ``"sum"`` (default) is the plain Euclidean sum over trials, times
and units; ``"mean"`` averages over trials and times (sums over units) as in the KPFlow paper.
Then ``J_θ* = J_θᵀ/(B·T)`` and ``K_mean = K_sum/(B·T)``; ``P``, ``P*`` are unchanged, and the
error representer scales the other way (``Err_mean = B·T·Err_sum``), so ``δz`` and every
scale-free quantity (effective ranks, alignments) are the same in both conventions.

Nothing stores per-step ``[S, S]`` Jacobians unless ``jacobians="cached"`` is asked for: the
built-in cells apply ``J(t)`` with one matrix product from O(B·T·S) saved coefficients, other
cells through ``torch.func``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.func import functional_call, jvp as _jvp, vjp as _vjp, vmap

from ..models.cells import StateLinearization, unroll
from .cells import as_state_cell
from .linop import FunctionOperator, LinearOperator
from .._validation import Options, OptionsMixin, Rule
from ..errors import InputError, InputTypeError

__all__ = ["operators", "operators_from_model", "KPFlowOperators", "BuildOptions"]


# ----------------------------------------------------------------------------- validation
def _validate(cell, inputs, hidden, h0):
    for name, v in (("inputs", inputs), ("hidden", hidden)):
        if not isinstance(v, torch.Tensor):
            raise InputTypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.dim() != 3:
            raise InputError(f"{name} must have shape [B, T, {'I' if name == 'inputs' else 'H'}], got {tuple(v.shape)}")
        if not v.is_floating_point():
            raise InputTypeError(f"{name} must be floating point, got {v.dtype}")
        if not torch.isfinite(v).all():
            raise InputError(f"{name} contains NaN or inf; the operators need a finite trajectory")
    if inputs.shape[:2] != hidden.shape[:2]:
        raise InputError(
            f"inputs has (B, T) = {tuple(inputs.shape[:2])} but hidden has {tuple(hidden.shape[:2])}; "
            "they must describe the same trials and time steps"
        )
    if inputs.dtype != hidden.dtype:
        raise InputTypeError(f"inputs is {inputs.dtype} but hidden is {hidden.dtype}; use one dtype")
    if inputs.device != hidden.device:
        raise InputTypeError(f"inputs is on {inputs.device} but hidden is on {hidden.device}; use one device")
    params = list(cell.parameters())
    if params:
        p = params[0]
        if p.dtype != inputs.dtype:
            raise InputTypeError(
                f"the cell's parameters are {p.dtype} but the data are {inputs.dtype}; convert the cell "
                f"(cell.to({inputs.dtype})) or the data"
            )
        if p.device != inputs.device:
            raise InputTypeError(f"the cell is on {p.device} but the data are on {inputs.device}; move one of them")
    if h0 is not None:
        if not isinstance(h0, torch.Tensor):
            raise InputTypeError(f"h0 must be a torch.Tensor or None, got {type(h0).__name__}")
        if h0.dtype != inputs.dtype or h0.device != inputs.device:
            raise InputTypeError(f"h0 must match the data's dtype/device ({inputs.dtype}, {inputs.device})")
        if not torch.isfinite(h0).all():
            raise InputError("h0 contains NaN or inf")


def _initial_state(h0, B, S, H, dtype, device):
    if h0 is None:
        return torch.zeros(B, S, dtype=dtype, device=device)
    if h0.dim() == 1:
        h0 = h0.expand(B, -1)
    if h0.dim() != 2 or h0.shape[0] != B:
        raise InputError(f"h0 must have shape [{S}] or [{B}, {S}], got {tuple(h0.shape)}")
    if h0.shape[1] == S:
        return h0
    if h0.shape[1] == H and S == 2 * H:
        # LSTM: initial hidden state given, initial cell state zero
        return torch.cat([h0, torch.zeros_like(h0)], dim=-1)
    raise InputError(f"h0 must have shape [{S}] or [{B}, {S}] (the cell's state size), got {tuple(h0.shape)}")


def _full_state(cell, inputs, hidden, z0):
    """Return the state trajectory [B, T, S]; rebuild the LSTM cell state when only h is given."""
    S = cell.state_size
    if hidden.shape[-1] == S:
        return hidden
    sl = cell.output_slice
    if hidden.shape[-1] == sl.stop - sl.start:
        with torch.no_grad():
            full = unroll(cell, inputs, z0)
        err = (full[..., sl] - hidden).abs().max() / hidden.abs().max().clamp_min(1e-30)
        tol = 1e-3 if hidden.dtype == torch.float32 else 1e-8
        if err > tol:
            raise InputError(
                f"hidden has the readout size {hidden.shape[-1]} but the cell's state has size {S}; rebuilding "
                f"the full state by running the cell does not reproduce hidden (relative error {float(err):.2g}). "
                "Pass the full state trajectory (e.g. [h, c] for an LSTM) or the h0 that produced it"
            )
        return full
    raise InputError(
        f"hidden has last dimension {hidden.shape[-1]}; the cell's state size is {S}"
        + (f" (or {sl.stop - sl.start} for the readout-visible part)" if sl.stop - sl.start != S else "")
    )


def _cached_linearization(lin: StateLinearization, S, dtype, device) -> StateLinearization:
    """Materialise the per-step Jacobians [B, T, S, S] (small S only) and apply them by einsum."""
    B, T = lin.batch_size, lin.n_steps
    eye = torch.eye(S, dtype=dtype, device=device)[:, None, None, :].expand(S, B, T, S)
    Jt = lin.jvp(eye, None).permute(1, 2, 3, 0).contiguous()  # [B, T, out, in]

    def jvp(dz, t):
        return torch.einsum("...ij,...j->...i", Jt[:, t], dz)

    def vjp(e, t):
        return torch.einsum("...ij,...i->...j", Jt[:, t], e)

    return StateLinearization(jvp, vjp, B, T, S)


def _unflatten(V, names, shapes):
    out, i = {}, 0
    for n, s in zip(names, shapes):
        k = int(torch.Size(s).numel())
        out[n] = V[..., i : i + k].reshape(*V.shape[:-1], *s)
        i += k
    return out


def _func_products(cell, names, shapes, primal, X_rows, Z_rows, B, T, S, w):
    """J_θ and J_θ* through ``torch.func`` over all B·T rows (any cell)."""

    def f_theta(pdict):
        return functional_call(cell, pdict, (X_rows, Z_rows))

    def J_mm(V):
        with torch.no_grad():
            out = vmap(lambda tang: _jvp(f_theta, (primal,), (tang,))[1])(_unflatten(V, names, shapes))
        return out.reshape(V.shape[0], B, T, S)

    cache = {}

    def JT_mm(E):
        with torch.no_grad():
            if "fn" not in cache:
                cache["fn"] = _vjp(f_theta, primal)[1]
            g = vmap(cache["fn"])(E.reshape(E.shape[0], B * T, S))[0]
        return w * torch.cat([g[n].reshape(E.shape[0], -1) for n in names], dim=1)

    return J_mm, JT_mm


#: temporaries of the J_θ products are kept below this many bytes by working through the B·T rows in
#: blocks: larger buffers are fresh page-faulting allocations on every call (glibc's mmap threshold),
#: which made a batch of probes slower per probe than a single one.
_ROW_BLOCK_BYTES = 8 * 2**20


def _row_blocks(sites, N, itemsize):
    rows = sites[0].features.shape[0]
    width = max(st.coeff.shape[1] * st.coeff.shape[2] * st.coeff.shape[3] for st in sites)
    step = max(1, _ROW_BLOCK_BYTES // max(1, N * width * itemsize))
    return [slice(r, min(r + step, rows)) for r in range(0, rows, step)]


def _site_cotangent(st, rb, E_rows):
    """A site's pre-activation cotangent ``a`` [N, rows, G*H] from state cotangents ``E_rows``
    [N, rows, S] on the rows ``rb``: ``a[r, g*H + i] = Σ_k coeff[r, k, g, i] · E[r, k*H + i]``."""
    N = E_rows.shape[0]
    rows, n_out, G, H = st.coeff[rb].shape
    if n_out == 1:
        return (st.coeff[rb, 0] * E_rows.reshape(N, rows, 1, H)).reshape(N, rows, G * H)
    return (st.coeff[rb] * E_rows.reshape(N, rows, n_out, 1, H)).sum(2).reshape(N, rows, G * H)


def _scale_gates_(a, st, rb):
    """``a`` [N, rows, G*H] (a pre-activation or its cotangent under ``st.base``'s coefficients) times
    ``st.gate_factor`` on the listed gates, in place: then it is under ``st``'s own coefficients."""
    H = st.coeff.shape[-1]
    for g, factor in st.gate_factor.items():
        a[..., g * H:(g + 1) * H].mul_(factor[rb])
    return a


def _site_products(sites, names, shapes, B, T, S, w):
    """J_θ and J_θ* from a cell's :class:`ParameterSite` list: matrix products only.

    A site whose coefficients are another site's up to a few gate factors (``base``, ``gate_factor``:
    the GRU's recurrent site against its input site) shares that site's elementwise work: J_θ adds the
    two pre-activations before one coefficient pass, J_θ* forms one cotangent and rescales its gates."""
    index = {n: i for i, n in enumerate(names)}
    # follower[id(base)] = the site computed together with ``base`` (both single-block, both trained)
    follower = {id(st.base): st for st in sites
                if st.base is not None and st.coeff.shape[1] == 1 and st.base.coeff.shape[1] == 1
                and any(n in index for n in (st.weight, st.bias))
                and any(n in index for n in (st.base.weight, st.base.bias))}
    shared = {id(st) for st in follower.values()}

    def J_mm(V):
        P = _unflatten(V, names, shapes)
        N = V.shape[0]
        weights = {}
        for st in sites:
            if st.weight in index:
                dW = P[st.weight] if st.scale is None else P[st.weight] * st.scale
                weights[st.weight] = dW.transpose(-1, -2).contiguous()  # [N, F, G*H]

        def pre_activation(st, rb, rows, into=None):
            """``features @ dW + db`` on the rows ``rb`` [N, rows, G*H] (added into ``into``), or None."""
            pre = into
            if st.weight in index:
                pre = st.features[rb] @ weights[st.weight] if pre is None else \
                    pre.baddbmm_(st.features[rb].expand(N, -1, -1), weights[st.weight])
            if st.bias in index:
                db = P[st.bias][:, None, :]
                pre = db.expand(N, rows, -1).clone() if pre is None else pre.add_(db)
            return pre

        out = torch.zeros(N, B * T, S, dtype=V.dtype, device=V.device)
        for rb in _row_blocks(sites, N, V.element_size()):
            for st in sites:
                if id(st) in shared:
                    continue                       # computed with its base below
                rows, n_out, G, H = st.coeff[rb].shape
                pre = None
                if id(st) in follower:
                    other = follower[id(st)]
                    pre = _scale_gates_(pre_activation(other, rb, rows), other, rb)
                pre = pre_activation(st, rb, rows, into=pre)
                if pre is None:
                    continue
                if n_out == 1:
                    out[:, rb] += pre.reshape(N, rows, G, H).mul_(st.coeff[rb, 0]).sum(2)
                else:
                    dz = (st.coeff[rb] * pre.reshape(N, rows, 1, G, H)).sum(3)
                    out[:, rb] += dz.reshape(N, rows, n_out * H)
        return out.reshape(N, B, T, S)

    def JT_mm(E):
        N = E.shape[0]
        E = E.reshape(N, B * T, -1)
        grads = {}

        def accumulate(name, g):
            if name in grads:
                grads[name].add_(g)
            else:
                grads[name] = g

        def gradients(st, rb, a):
            if st.weight in index:
                accumulate(st.weight, a.transpose(-1, -2) @ st.features[rb])
            if st.bias in index:
                accumulate(st.bias, a.sum(1))

        for rb in _row_blocks(sites, N, E.element_size()):
            for st in sites:
                if id(st) in shared:
                    continue
                a = _site_cotangent(st, rb, E[:, rb])
                gradients(st, rb, a)
                if id(st) in follower:             # the products above are fresh: rescale a in place
                    other = follower[id(st)]
                    gradients(other, rb, _scale_gates_(a, other, rb))
        scales = {st.weight: st.scale for st in sites if st.scale is not None and st.weight in grads}
        for name, scale in scales.items():  # each weight enters through one site
            grads[name] = grads[name] * scale
        return w * torch.cat([grads[n].reshape(N, -1) for n in names], dim=1)

    uses = [n for st in sites for n in (st.weight, st.bias) if n in index]

    width = max(st.coeff.shape[1] * st.coeff.shape[2] * st.coeff.shape[3] for st in sites)
    F_max = max(st.features.shape[1] for st in sites)

    def trial_cotangents(E, per_trial):
        """For each block of trials and each parameter site: ``(trials, site, a, f, has_w, has_b)``
        with ``a`` [N, nb, T, G*H] the site's pre-activation cotangents and ``f`` [nb, T, F] its
        features; ``per_trial(N)`` values of temporaries per trial size the blocks (near
        ``_ROW_BLOCK_BYTES``)."""
        N = E.shape[0]
        E = E.reshape(N, B, T, -1)
        step = max(1, _ROW_BLOCK_BYTES // max(1, per_trial(N) * E.element_size()))
        for b0 in range(0, B, step):
            tb = slice(b0, min(b0 + step, B))
            nb = tb.stop - tb.start
            rb = slice(tb.start * T, tb.stop * T)
            Eb = E[:, tb].reshape(N, nb * T, -1)
            for st in sites:
                has_w, has_b = st.weight in index, st.bias in index
                if not (has_w or has_b):
                    continue
                a = _site_cotangent(st, rb, Eb).reshape(N, nb, T, -1)
                yield tb, st, a, st.features[rb].reshape(nb, T, -1), has_w, has_b

    def JT_trial_sqnorms(E):
        """``[N, B]``: ``‖J_θ* E_b‖²`` for each trial's part ``E_b`` of ``E`` (float64).

        A trial's parameter cotangent is ``Σ_t a_t f_tᵀ`` per site (``a``: the site's
        pre-activation cotangent, ``f``: its features).  Its squared norm is
        ``Σ_{t,t'} (a_t·a_t')(f_t·f_t')`` from two [T, T] Gram matrices (bias: ``Σ_{t,t'} a_t·a_t'``)
        where that is cheaper than the gradient (``T (G·H + F) < G·H·F``, short trials), else the
        trial's gradient is formed (also under a ``scale``, Dale's law).  Either way about the
        flops of one adjoint application."""
        out = torch.zeros(E.shape[0], B, dtype=torch.float64, device=E.device)
        for tb, st, a, f, has_w, has_b in trial_cotangents(E, lambda N: N * (T * (width + T) + width * F_max)):
            GH, F = a.shape[-1], f.shape[-1]
            if has_w and (st.scale is not None or T * (GH + F) >= GH * F):
                g = a.transpose(-1, -2) @ f                                       # [N, nb, G*H, F]
                if st.scale is not None:
                    g.mul_(st.scale)
                out[:, tb] += g.square().sum((-1, -2), dtype=torch.float64)
                if has_b:
                    out[:, tb] += a.sum(2).square().sum(-1, dtype=torch.float64)
                continue
            Ga = a @ a.transpose(-1, -2)                                          # [N, nb, T, T]
            if has_w:
                Gw = f @ f.transpose(-1, -2)                                      # [nb, T, T]
                if has_b:
                    Gw += 1.0
                out[:, tb] += (Ga * Gw).sum((-1, -2), dtype=torch.float64)
            else:
                out[:, tb] += Ga.sum((-1, -2), dtype=torch.float64)
        return (w * w) * out

    offsets, off = {}, 0
    for n, shp in zip(names, shapes):
        offsets[n] = off
        off += int(torch.Size(shp).numel())

    def JT_trial_vectors(E):
        """``[N, B, M]``: ``J_θ* E_b`` for each trial's part ``E_b`` of ``E`` (the per-trial
        parameter cotangents, summed over trials they are ``J_θ* E``)."""
        N = E.shape[0]
        out = torch.zeros(N, B, off, dtype=E.dtype, device=E.device)
        for tb, st, a, f, has_w, has_b in trial_cotangents(E, lambda N: N * (T + F_max) * width):
            nb = tb.stop - tb.start
            if has_w:
                g = a.transpose(-1, -2) @ f                                       # [N, nb, G*H, F]
                if st.scale is not None:
                    g.mul_(st.scale)
                o = offsets[st.weight]
                out[:, tb, o:o + g.shape[-2] * g.shape[-1]] += g.reshape(N, nb, -1)
            if has_b:
                o = offsets[st.bias]
                out[:, tb, o:o + a.shape[-1]] += a.sum(2)
        return out.mul_(w)

    # the Gram form needs every parameter to enter through one site (no cross terms between sites)
    return J_mm, JT_mm, (JT_trial_sqnorms if len(uses) == len(set(uses)) else None), JT_trial_vectors


def _unrolled_ntk(cell, names, shapes, primal, inputs, z0, states, w, shape, kw):
    """P K P* for cells without hand-derived parameter sites, as (dz/dθ)(dz/dθ)* through the unrolled
    cell (equal by the implicit function theorem, dz/dθ = P J_θ).  The reverse pass's residuals are
    kept after the first use, so each product costs one backward and one forward-mode pass.  Only used
    when re-running the cell reproduces the recorded trajectory; otherwise ``None``."""
    T = inputs.shape[1]

    def unrolled(p):
        z, out = z0, []
        for t in range(T):
            z = functional_call(cell, p, (inputs[:, t], z))
            out.append(z)
        return torch.stack(out, 1)

    with torch.no_grad():
        rerun = unrolled(primal)
    tol = 1e-5 if states.dtype == torch.float32 else 1e-10
    if not torch.allclose(rerun, states, rtol=tol, atol=tol * float(states.abs().max().clamp_min(1))):
        return None
    cache = {}

    def ntk(V):
        with torch.no_grad():
            if "back" not in cache:
                cache["back"] = _vjp(unrolled, primal)[1]
            back = cache["back"]
            g = vmap(back)(V)[0] if V.shape[0] > 1 else {k: v[None] for k, v in back(V[0])[0].items()}
            tangent = lambda gi: _jvp(unrolled, (primal,), (gi,))[1]  # noqa: E731
            out = vmap(tangent)(g) if V.shape[0] > 1 else tangent({k: v[0] for k, v in g.items()})[None]
        return w * out

    return FunctionOperator(ntk, ntk, shape, shape, name="NTK", **kw)


def _snapshot(module: nn.Module) -> nn.Module:
    """A deep copy of ``module``.  Tensors computed from parameters and kept on a module (the
    weight of ``nn.utils.weight_norm`` after a forward with gradients, a cached output) are not
    graph leaves and refuse to be deep-copied; they are copied detached."""
    memo = {}
    for m in module.modules():
        for value in vars(m).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(module, memo)


# ------------------------------------------------------------------------------ operators
@dataclass
class KPFlowOperators:
    """The KPFlow operators of one model along one batch of trajectories.

    Attributes
    ----------
    J_theta, K, P, P_inv, NTK : LinearOperator
        See the module docstring.  ``NTK`` is ``P @ K @ P.T``.
    readout, NTK_output : LinearOperator or None
        The linear readout R (state → outputs, bias excluded) and ``R @ NTK @ R.T``.
    cell : the flat-state cell the operators were built from.
    inputs, states, z_prev : tensors [B, T, ·]; ``states[:, t] = z(t+1)``, ``z_prev[:, t] = z(t)``.
    inner : "sum" or "mean"; weight : the inner-product weight of 𝕋 (1 or 1/(B·T)).
    param_names, param_shapes : the recurrent parameters θ, in the order of J_theta's input vector.
    """

    J_theta: LinearOperator
    K: LinearOperator
    P: LinearOperator
    P_inv: LinearOperator
    NTK: LinearOperator
    readout: LinearOperator | None
    NTK_output: LinearOperator | None
    cell: nn.Module
    inputs: torch.Tensor
    states: torch.Tensor
    z_prev: torch.Tensor
    inner: str
    weight: float
    param_names: list = field(default_factory=list)
    param_shapes: list = field(default_factory=list)
    linearization: StateLinearization | None = None

    @property
    def shape(self):
        """Trajectory-space shape ``(B, T, S)``."""
        return tuple(self.states.shape)

    # --------------------------------------------------------------- parameter vectors
    def params_to_vector(self, params) -> torch.Tensor:
        """Flatten a dict ``{name: tensor}`` (or the cell's own parameters) to J_theta's input layout."""
        if isinstance(params, nn.Module):
            params = dict(params.named_parameters())
        return torch.cat([params[n].reshape(-1) for n in self.param_names])

    def vector_to_params(self, v: torch.Tensor) -> dict:
        """Inverse of :meth:`params_to_vector` (leading probe dimensions allowed)."""
        return _unflatten(v, self.param_names, self.param_shapes)

    # ------------------------------------------------------------------ errors and flow
    def error(self, loss_fn) -> torch.Tensor:
        """The error ``Err = ∂L/∂z`` (partial, per step) as the representer in this ``inner`` convention.

        ``loss_fn(states) -> scalar`` receives the state trajectory [B, T, S] (e.g. readout
        followed by a masked MSE).  With ``inner="mean"`` the Euclidean gradient is divided by
        the weight 1/(B·T), so that ``-lr * NTK(err)`` is the same in both conventions.
        """
        z = self.states.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            L = loss_fn(z)
            if not (isinstance(L, torch.Tensor) and L.dim() == 0):
                raise InputError("loss_fn must return a scalar tensor")
            (g,) = torch.autograd.grad(L, z)
        return g / self.weight

    def first_order_update(self, err: torch.Tensor, lr: float) -> torch.Tensor:
        """Predicted change of the trajectory after one GD step of size ``lr``: ``−lr · P K P* Err``."""
        return -lr * self.NTK(err)

    def gradient(self, err: torch.Tensor) -> dict:
        """``∇_θ L = J_θ* P* Err`` as a dict of parameter-shaped tensors."""
        return self.vector_to_params(self.J_theta.T(self.P.T(err)))

    @classmethod
    def from_model(cls, model, batch, **options) -> "KPFlowOperators":
        return operators_from_model(model, batch, **options)


@dataclass(frozen=True)
class BuildOptions(OptionsMixin):
    """How :func:`operators` builds the operators, given to it as keywords: ``jacobians``
    (``"matrix_free"`` or ``"cached"``), ``params`` (names of the parameters forming θ) and
    ``chunk_size`` (largest number of probes pushed through an operator at once)."""

    jacobians: str = "matrix_free"
    params: Any = None
    chunk_size: int | None = None

    RULES: ClassVar[dict] = {"jacobians": Rule(Options("matrix_free", "cached"))}


def operators(cell, inputs, hidden, h0=None, readout=None, inner="sum", **build) -> KPFlowOperators:
    """Build the KPFlow operators of ``cell`` along a recorded trajectory (``build``: :class:`BuildOptions`).

    See :func:`_operators` for every parameter.
    """
    o = BuildOptions.resolve(None, build, "operators")
    return _operators(cell, inputs, hidden, h0, readout, inner, o.jacobians, o.params, o.chunk_size)


def _operators(cell, inputs, hidden, h0=None, readout=None, inner="sum", jacobians="matrix_free",
               params=None, chunk_size=None) -> KPFlowOperators:
    """Build the KPFlow operators of ``cell`` along a recorded trajectory.

    Parameters
    ----------
    cell : nn.Module
        The single-step recurrent cell ``h' = f(x, h; θ)``: a neurokpflow cell, torch's
        ``nn.RNNCell``/``nn.GRUCell``/``nn.LSTMCell`` (or single-layer ``nn.RNN``/``nn.GRU``/
        ``nn.LSTM``), or any module with ``forward(x, h) -> h'`` of the same shape as ``h``.
        It is copied: later changes to the module (further training, a move to another device)
        do not reach the operators.
    inputs : Tensor [B, T, I]
        ``inputs[:, t] = x(t+1)``.
    hidden : Tensor [B, T, S]
        The recorded trajectory, ``hidden[:, t] = z(t+1)``.  For an LSTM either the full
        state ``[h, c]`` or only ``h`` (the cell state is then rebuilt by running the cell).
    h0 : Tensor [S] or [B, S], optional
        Initial state ``z(0)``; zero by default.
    readout : nn.Linear or Tensor [O, H], optional
        Linear readout of the readout-visible state; adds ``readout`` and ``NTK_output``.
    inner : {"sum", "mean"}
        Inner-product convention of trajectory space (module docstring).
    jacobians : {"matrix_free", "cached"}
        ``"cached"`` materialises per-step Jacobians [B, T, S, S] (faster for very small S).
    params : list of str, optional
        Names of the cell parameters that form θ (default: all with ``requires_grad``).
    chunk_size : int, optional
        Largest number of probes pushed through an operator at once (bounds peak memory).
    """
    if inner not in ("sum", "mean"):
        raise InputError(f"inner must be 'sum' or 'mean', got {inner!r}")
    if jacobians not in ("matrix_free", "cached"):
        raise InputError(f"jacobians must be 'matrix_free' or 'cached', got {jacobians!r}")
    _validate(cell, inputs, hidden, h0)
    B, T, I = inputs.shape
    # a snapshot: the operators describe the cell at its present θ, whatever later happens to the
    # module (an optimizer step in place, a move to another device); parameters are small next to
    # the B·T·S trajectories the operators keep
    cell = as_state_cell(_snapshot(cell), input_size=I, state_size=hidden.shape[-1])
    if getattr(cell, "input_size", I) != I:
        raise InputError(f"inputs has I = {I} features but the cell expects input_size = {cell.input_size}")
    dtype, device = inputs.dtype, inputs.device
    S, H = cell.state_size, cell.hidden_size
    z0 = _initial_state(h0, B, S, H, dtype, device)
    with torch.no_grad():
        probe = cell(inputs[:, 0], z0)
    if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != (B, S):
        got = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe).__name__
        raise InputError(f"the cell's output has shape {got}, but the state shape is {(B, S)}; "
                         "a cell must map (x [B, I], h [B, S]) to h' [B, S]")
    states = _full_state(cell, inputs, hidden, z0).detach()
    z_prev = torch.cat([z0[:, None], states[:, :-1]], dim=1)
    w = 1.0 if inner == "sum" else 1.0 / (B * T)
    shape = (B, T, S)

    lin, sites = cell.linearize_all(inputs, z_prev)
    if jacobians == "cached":
        lin = _cached_linearization(lin, S, dtype, device)

    # ---- P, P*, P⁻¹, (P⁻¹)*: linear recurrences along time
    def P_mm_(Q):                      # in place, for an intermediate the caller gives up
        for t in range(1, T):
            Q[:, :, t] += lin.jvp(Q[:, :, t - 1], t)
        return Q

    def PT_mm_(E):
        for t in range(T - 2, -1, -1):
            E[:, :, t] += lin.vjp(E[:, :, t + 1], t + 1)
        return E

    def P_mm(Q):                       # same speed as a separate output buffer, and bit-identical
        return P_mm_(Q.clone())

    def PT_mm(E):
        return PT_mm_(E.clone())

    def Pinv_mm(Q):
        out = Q.clone()
        if T > 1:
            out[:, :, 1:] -= lin.jvp(Q[:, :, :-1], slice(1, None))
        return out

    def PinvT_mm(E):
        out = E.clone()
        if T > 1:
            out[:, :, :-1] -= lin.vjp(E[:, :, 1:], slice(1, None))
        return out

    def _no_grad(fn):
        def wrapped(V):
            with torch.no_grad():
                return fn(V)
        return wrapped

    kw = dict(dtype=dtype, device=device, weight_in=w, weight_out=w, chunk_size=chunk_size)
    # trials are independent trajectories: P and P⁻¹ are block-diagonal over them (axis 0)
    P = FunctionOperator(_no_grad(P_mm), _no_grad(PT_mm), shape, shape, name="P", matmat_inplace=_no_grad(P_mm_),
                         rmatmat_inplace=_no_grad(PT_mm_), fresh_outputs=True, separable_axis=0, **kw)
    P_inv = FunctionOperator(_no_grad(Pinv_mm), _no_grad(PinvT_mm), shape, shape, name="P_inv", separable_axis=0,
                             **kw)

    # ---- J_θ: one batched cell evaluation over all B·T rows (no time recursion)
    named = [(n, p) for n, p in cell.named_parameters() if p.requires_grad]
    if params is not None:
        known = {n for n, _ in named}
        missing = [n for n in params if n not in known]
        if missing:
            raise InputError(f"unknown parameter names {missing}; the cell has {sorted(known)}")
        named = [(n, p) for n, p in named if n in set(params)]
    if not named:
        raise InputError("the cell has no trainable parameters, so J_theta and K are empty")
    names = [n for n, _ in named]
    shapes = [tuple(p.shape) for _, p in named]
    primal = {n: p.detach() for n, p in named}
    M = sum(p.numel() for _, p in named)
    X_rows = inputs.reshape(B * T, I)
    Z_rows = z_prev.reshape(B * T, S)

    if sites is not None:
        covered = {n for st in sites for n in (st.weight, st.bias) if n is not None}
        if not set(names) <= covered:
            sites = None  # a parameter the sites do not describe: use the generic path
    trial_sqnorms = trial_vectors = None
    if sites is not None:
        J_mm, JT_mm, trial_sqnorms, trial_vectors = _site_products(sites, names, shapes, B, T, S, w)
    else:
        J_mm, JT_mm = _func_products(cell, names, shapes, primal, X_rows, Z_rows, B, T, S, w)

    J_theta = FunctionOperator(J_mm, JT_mm, (M,), shape, dtype, device, weight_in=1.0, weight_out=w,
                               name="J_theta", chunk_size=chunk_size, fresh_outputs=sites is not None,
                               rmatmat_block_sqnorms=None if trial_sqnorms is None else (0, _no_grad(trial_sqnorms)),
                               rmatmat_block_vectors=None if trial_vectors is None else (0, _no_grad(trial_vectors)))
    K = J_theta @ J_theta.T
    K.name = "K"
    NTK = None
    if sites is None:
        NTK = _unrolled_ntk(cell, names, shapes, primal, inputs, z0, states, w, shape, kw)
    if NTK is None:
        NTK = P @ K @ P.T
    NTK.name = "NTK"

    R = NTK_out = None
    if readout is not None:
        W_out = readout.weight if isinstance(readout, nn.Linear) else readout
        if not isinstance(W_out, torch.Tensor) or W_out.dim() != 2:
            raise InputTypeError("readout must be an nn.Linear or a [O, H] weight tensor")
        W_out = W_out.detach().clone()     # a snapshot, like the cell
        sl = cell.output_slice
        if W_out.shape[1] != sl.stop - sl.start:
            raise InputError(f"readout expects {W_out.shape[1]} features but the cell's readout-visible "
                             f"state has {sl.stop - sl.start}")
        if W_out.dtype != dtype or W_out.device != device:
            raise InputTypeError(f"readout is {W_out.dtype} on {W_out.device}; the data are {dtype} on {device}")
        O = W_out.shape[0]

        def R_mm(Z):
            return Z[..., sl] @ W_out.T

        def RT_mm(Y):
            out = torch.zeros(*Y.shape[:-1], S, dtype=Y.dtype, device=Y.device)
            out[..., sl] = Y @ W_out
            return out

        R = FunctionOperator(R_mm, RT_mm, shape, (B, T, O), name="R", separable_axis=0, **kw)
        NTK_out = R @ NTK @ R.T
        NTK_out.name = "NTK_output"

    return KPFlowOperators(
        J_theta=J_theta, K=K, P=P, P_inv=P_inv, NTK=NTK, readout=R, NTK_output=NTK_out, cell=cell,
        inputs=inputs, states=states, z_prev=z_prev, inner=inner, weight=w, param_names=names,
        param_shapes=shapes, linearization=lin,
    )


def operators_from_model(model, batch, h0=None, dtype=None, **options) -> KPFlowOperators:
    """Build the operators of a model (anything with ``.cell`` and optionally ``.readout``).

    ``batch`` is a task batch (with ``.inputs``) or an inputs tensor [B, T, I].  The trajectory
    is recomputed with the cell, noise-free, from the model's initial state (``model.initial_state``
    when it has one, else ``h0`` or zero).  ``dtype=torch.float64`` analyses a copy of the model in
    double precision.
    """
    if not hasattr(model, "cell"):
        raise InputTypeError(f"{type(model).__name__} has no .cell; pass the cell to operators() directly")
    inputs = batch.inputs if hasattr(batch, "inputs") else batch
    if not isinstance(inputs, torch.Tensor):
        raise InputTypeError("batch must have .inputs or be a [B, T, I] tensor")
    cell, readout = model.cell, getattr(model, "readout", None)
    p = next(cell.parameters())
    target_dtype = dtype or p.dtype
    if target_dtype != p.dtype:
        cell = _snapshot(cell).to(target_dtype)
        readout = _snapshot(readout).to(target_dtype) if readout is not None else None
    inputs = inputs.to(dtype=target_dtype, device=p.device)
    cell_s = as_state_cell(cell, input_size=inputs.shape[-1], state_size=getattr(cell, "state_size", None))
    B = inputs.shape[0]
    if h0 is None and hasattr(model, "initial_state"):
        h0 = model.initial_state(B)
    if h0 is not None:
        h0 = h0.detach().to(dtype=target_dtype, device=p.device)
        h0 = _initial_state(h0, B, cell_s.state_size, cell_s.hidden_size, target_dtype, p.device)
    else:
        h0 = torch.zeros(B, cell_s.state_size, dtype=target_dtype, device=p.device)
    with torch.no_grad():
        hidden = unroll(cell_s, inputs, h0)
    return operators(cell_s, inputs, hidden, h0=h0, readout=readout, **options)


operators.__doc__ = _operators.__doc__
