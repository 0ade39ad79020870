"""Single-step recurrent cells ``z' = f(x, z; θ)`` with hand-derived linearisations.

Every cell works on a *flat state* ``z`` of size ``state_size``: for the vanilla/leaky RNN
and the GRU the state is the hidden vector ``h`` (``state_size == hidden_size``); for the
LSTM it is the concatenation ``[h, c]`` (``state_size == 2 * hidden_size``) and
``output_slice`` says which part the readout sees.

Each cell also knows its own linearisation.  ``cell.linearize(inputs, z_prev)`` evaluates
everything the state Jacobian ``J(t) = ∂f/∂z`` needs at the points ``(z(t-1), x(t))`` for
all trials and times at once and returns a :class:`StateLinearization` whose ``jvp``/``vjp``
apply ``J(t)`` / ``J(t)ᵀ`` with one matrix product per call and no stored ``[H, H]``
Jacobians.  These are what the KPFlow propagator ``P`` runs on.

Time convention (the KPFlow one): ``inputs[:, t]`` is ``x(t+1)``, ``z_prev[:, t]`` is
``z(t)`` and the cell maps them to ``z(t+1)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
import torch.nn.functional as F
from .._validation import OptionsMixin
from ..errors import DegenerateInputError, InputError

__all__ = [
    "RecurrentCell",
    "ParameterSite",
    "LeakyRNNCell",
    "CellOptions",
    "GatedCell",
    "GRUCell",
    "LSTMCell",
    "StateLinearization",
    "ACTIVATIONS",
    "INITS",
    "unroll",
]

#: initialisation schemes of :class:`LeakyRNNCell`
INITS = ("normal", "torch")


def _retanh(a):
    return torch.tanh(F.relu(a))


#: activation name -> (function, derivative as a function of the pre-activation)
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]] = {
    "tanh": (torch.tanh, lambda a: 1 - torch.tanh(a) ** 2),
    "relu": (F.relu, lambda a: (a > 0).to(a.dtype)),
    "softplus": (F.softplus, torch.sigmoid),
    "identity": (lambda a: a, torch.ones_like),
    "retanh": (_retanh, lambda a: (a > 0).to(a.dtype) * (1 - torch.tanh(a) ** 2)),
}


def _activation(name: str):
    if name not in ACTIVATIONS:
        raise InputError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class StateLinearization:
    """``J(t)`` and ``J(t)ᵀ`` of a cell along a trajectory, applied matrix-free.

    ``jvp(dz, t)`` and ``vjp(e, t)`` take ``t`` as an int (one time slot: ``dz`` has shape
    ``[..., B, S]``), a slice (``[..., B, T', S]``) or ``None`` (all slots, ``[..., B, T, S]``).
    Any number of leading probe dimensions broadcast.
    """

    def __init__(self, jvp, vjp, batch_size, n_steps, state_size):
        self._jvp, self._vjp = jvp, vjp
        self.batch_size, self.n_steps, self.state_size = batch_size, n_steps, state_size

    def jvp(self, dz: torch.Tensor, t=None) -> torch.Tensor:
        return self._jvp(dz, slice(None) if t is None else t)

    def vjp(self, e: torch.Tensor, t=None) -> torch.Tensor:
        return self._vjp(e, slice(None) if t is None else t)


class ParameterSite:
    """One affine use of parameters inside a cell: ``pre = features @ W_eff.T + b``.

    The cell's output moves, to first order, by
    ``δz[r, k*H + i] = Σ_g coeff[r, k, g, i] · δpre[r, g*H + i]`` (``k`` indexes the
    ``n_out`` state blocks, ``g`` the ``G`` gates), so unit ``i`` depends only on rows
    ``g*H + i`` of ``W`` — every built-in cell is *unit-separable* in this sense.
    ``scale`` (optional, shape of ``W``) maps a change of the raw parameter to a change
    of the effective weight (Dale's law: ``W_eff = |W| · sign``).  ``base`` and ``gate_factor``
    (optional, single-block sites) say that ``coeff`` is ``base.coeff`` times ``gate_factor[g]``
    ([rows, H]) on the gates ``g`` listed and equal to it elsewhere, as for the GRU's recurrent
    site against its input site; the operators then share the two sites' elementwise work.
    """

    def __init__(self, weight: str | None, bias: str | None, features, coeff, scale=None, base=None,
                 gate_factor=None):
        self.weight, self.bias, self.features, self.coeff, self.scale = weight, bias, features, coeff, scale
        # ``coeff`` stays complete: only J_theta and J_theta* use the sharing (class docstring)
        self.base, self.gate_factor = base, dict(gate_factor or {})


# --------------------------------------------------- helpers of unit_separable_terms (exact K)
def _ones(ref):
    return torch.ones(*ref.shape[:-1], 1, dtype=ref.dtype, device=ref.device)


def _features(*parts):
    """Concatenate the feature blocks whose parameter is trained (``None`` entries are skipped)."""
    kept = [p for p in parts if p is not None]
    return torch.cat(kept, dim=-1) if kept else None


def _trained(p):
    return p is not None and p.requires_grad


def _check_dale(cell):
    if getattr(cell, "dale_sign", None) is not None and bool((cell.weight_hh == 0).any()):
        raise DegenerateInputError("unit_separable_terms: weight_hh has exact zeros under Dale's law (|W| has no "
                                   "derivative there); use the generic estimators on operators(...).K")


def _gate_features(cell, x, h):
    """Features of a gate fed by ``W_i x + b_i + W_h h + b_h`` (each part only if trained)."""
    wi, wh = _trained(cell.weight_ih), _trained(cell.weight_hh)
    bi, bh = _trained(cell.bias_ih), _trained(cell.bias_hh)
    return (x if wi else None, _ones(x) if bi else None, h if wh else None, _ones(x) if bh else None)


class RecurrentCell(nn.Module):
    """Base class: ``forward(x, z) -> z'`` on flat states plus a hand-derived linearisation."""

    input_size: int
    hidden_size: int
    state_size: int

    @property
    def output_slice(self) -> slice:
        """The part of the state a readout sees (``h``)."""
        return slice(0, self.hidden_size)

    def initial_state(self, batch_size: int, dtype=None, device=None) -> torch.Tensor:
        p = next(self.parameters())
        return torch.zeros(batch_size, self.state_size, dtype=dtype or p.dtype, device=device or p.device)

    def run_sequence(self, x: torch.Tensor, z0: torch.Tensor, *, noise_std: float = 0.0, generator=None,
                     full_state: bool = True) -> torch.Tensor:
        """States ``[B, T, S]`` from inputs ``x [B, T, I]`` and ``z0 [B, S]``: one :meth:`forward` per step,
        with Gaussian noise of SD ``noise_std`` added to the readout-visible state after each step.
        Cells override it with a faster equivalent (a fused kernel, a precomputed input drive)."""
        H = self.hidden_size
        xi = None
        if noise_std > 0:
            xi = torch.randn(x.shape[0], x.shape[1], H, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        z, out = z0, []
        for t in range(x.shape[1]):
            z = self(x[:, t], z)
            if xi is not None:
                z = torch.cat([z[..., :H] + noise_std * xi[:, t], z[..., H:]], dim=-1)
            out.append(z)
        return torch.stack(out, dim=1)

    @classmethod
    def from_model_config(cls, n_in: int, n_hidden: int, config: dict, generator=None) -> "RecurrentCell":
        """The cell of a :func:`neurokpflow.models.make` config (its kind's options and the common ones)."""
        return cls(n_in, n_hidden, bias=config["bias"], g=config["g"], generator=generator)

    def linearize(self, inputs: torch.Tensor, z_prev: torch.Tensor) -> StateLinearization:
        raise NotImplementedError  # pragma: no cover - every concrete cell implements it

    def parameter_sites(self, inputs: torch.Tensor, z_prev: torch.Tensor):
        """The cell's parameters as a list of :class:`ParameterSite` on rows ``B*T``, or ``None``.

        Lets the operators apply ``J_θ`` and ``J_θ*`` with plain matrix products and gives
        exact (zero-variance) traces and diagonals of ``K``.  ``None`` means "use torch.func".
        """
        return None

    def linearize_all(self, inputs: torch.Tensor, z_prev: torch.Tensor):
        """``(linearize(...), parameter_sites(...))``; cells override it to share work between the two."""
        return self.linearize(inputs, z_prev), self.parameter_sites(inputs, z_prev)


@dataclass(frozen=True)
class CellOptions(OptionsMixin):
    """The optional construction settings of :class:`LeakyRNNCell`, given to it as keywords.

    ``dale``: excitatory fraction for Dale's law (``None``: none); ``init``: ``"normal"`` or
    ``"torch"`` (torch's ``nn.RNN`` initialisation with two bias vectors); ``generator``: the
    ``torch.Generator`` of the initial weights; ``dtype``, ``device``: of the parameters.
    """

    dale: float | None = None
    init: str = "normal"
    generator: Any = None
    dtype: Any = None
    device: Any = None


class LeakyRNNCell(RecurrentCell):
    """Leaky vanilla RNN, in one of two named forms (α = dt/τ):

    * ``form="rate"`` (F1, rate-leak, Yang/Driscoll): ``r' = (1-α) r + α φ(W_in x + W_rec r + b)``
      — with α = 1 and tanh this is torch's ``nn.RNNCell``;
    * ``form="state"`` (F2, state-leak, PsychRNN / the KPFlow "BasicRNN" with activation inside):
      ``v' = (1-α) v + α (W_rec φ(v) + W_in x + b)``.

    Jacobians: F1 ``J = (1-α) I + α diag(φ'(a)) W_rec``; F2 ``J = (1-α) I + α W_rec diag(φ'(v))``.

    Parameters
    ----------
    input_size, hidden_size : int
    alpha : float in (0, 1]
        Leak ``dt/τ``.
    activation : {"tanh", "relu", "softplus", "identity", "retanh"}
    form : {"rate", "state"}
    bias : bool
    g : float
        Initial recurrent scale: ``W_rec ~ N(0, g²/H)`` (``init="normal"``) or ``g ×`` torch's
        default draw (``init="torch"``).
    init : {"normal", "torch"}
        ``"normal"``: ``W_in ~ N(0, 1/I)``, ``W_rec ~ N(0, g²/H)``, bias 0.  ``"torch"``: the
        initialisation of torch's ``nn.RNN`` (the KPFlow reference code): ``W_in``, ``W_rec`` and
        the two bias vectors ``b_ih``, ``b_hh`` uniform on ``±1/sqrt(H)``, then ``W_rec`` multiplied
        by ``g``.  The cell then also keeps torch's two bias vectors (``bias`` is ``b_ih``,
        ``bias_hh`` is ``b_hh``): the function is the same as with their sum, but an optimiser
        moves each vector, and ``J_θ``/``K`` count the bias twice, exactly as for ``nn.RNN``.
        (A state dict from before ``bias_hh`` existed loads with ``bias_hh = 0``.)  With
        ``"torch"`` ``g = 1`` gives a recurrent spectral radius of about ``1/sqrt(3)``.
    dale : float or None
        Fraction of excitatory units for Dale's law.  The effective recurrent matrix is
        ``|W_raw| · diag(sign)`` (column j is presynaptic unit j, excitatory columns positive).
    """

    def __init__(self, input_size, hidden_size, alpha=1.0, activation="tanh", form="rate", bias=True,
                 g=1.0, **options):
        """``options``: the fields of :class:`CellOptions` (``dale``, ``init``, ``generator``, ``dtype``, ``device``)."""
        super().__init__()
        o = CellOptions.resolve(None, options, "LeakyRNNCell")
        dale, generator, dtype, device, init = o.dale, o.generator, o.dtype, o.device, o.init
        if not 0 < alpha <= 1:
            raise InputError(f"alpha = dt/tau must lie in (0, 1], got {alpha}")
        if form not in ("rate", "state"):
            raise InputError(f"form must be 'rate' (F1, rate-leak) or 'state' (F2, state-leak), got {form!r}")
        _activation(activation)
        if init not in INITS:
            raise InputError(f"init must be one of {INITS}, got {init!r}")
        if init == "torch" and dale is not None:
            raise InputError("init='torch' has no Dale's-law variant; use init='normal' with dale")
        self.init = init
        self.input_size, self.hidden_size, self.state_size = int(input_size), int(hidden_size), int(hidden_size)
        self.alpha, self.activation, self.form, self.g = float(alpha), activation, form, float(g)
        kw = dict(dtype=dtype, device=device)
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size, **kw))
        self.bias = nn.Parameter(torch.empty(hidden_size, **kw)) if bias else None
        # torch's nn.RNN parameterisation has a second bias vector (see the class docstring)
        self.bias_hh = nn.Parameter(torch.empty(hidden_size, **kw)) if bias and init == "torch" else None
        if dale is not None:
            if not 0 < dale < 1:
                raise InputError(f"dale must be the excitatory fraction in (0, 1), got {dale}")
            n_exc = int(round(dale * hidden_size))
            sign = torch.cat([torch.ones(n_exc), -torch.ones(hidden_size - n_exc)])
            self.register_buffer("dale_sign", sign.to(**{k: v for k, v in kw.items() if v is not None}))
        else:
            self.dale_sign = None
        self.dale = dale
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator=None):
        H, I = self.hidden_size, self.input_size
        if self.init == "torch":
            bound = 1 / math.sqrt(H)
            uniform = lambda *shape: (torch.rand(*shape, generator=generator) * 2 - 1) * bound  # noqa: E731
            self.weight_ih.copy_(uniform(H, I))
            self.weight_hh.copy_(uniform(H, H) * self.g)
            if self.bias is not None:
                self.bias.copy_(uniform(H))
                self.bias_hh.copy_(uniform(H))
            return
        self.weight_ih.copy_(torch.randn(H, I, generator=generator) / math.sqrt(max(I, 1)))
        w = torch.randn(H, H, generator=generator) * (self.g / math.sqrt(H))
        if self.dale_sign is not None:
            # balanced E/I: scale inhibitory columns so each row sums to ~0 in expectation
            w = w.abs()
            n_exc = int((self.dale_sign > 0).sum())
            n_inh = H - n_exc
            if n_inh > 0:
                w[:, n_exc:] *= n_exc / n_inh
            w *= 1 / math.sqrt(1 - 2 / math.pi) / 2  # keep the spectral radius near g
        self.weight_hh.copy_(w)
        if self.bias is not None:
            self.bias.zero_()

    def recurrent_weight(self) -> torch.Tensor:
        """The effective recurrent matrix ``W_rec`` (Dale's law applied if enabled)."""
        if self.dale_sign is None:
            return self.weight_hh
        return self.weight_hh.abs() * self.dale_sign

    def input_drive(self, x):
        """``W_in x + b`` (both bias vectors under ``init='torch'``): the input's part of the pre-activation."""
        d = x @ self.weight_ih.T
        if self.bias is not None:
            d = d + self.bias
        return d + self.bias_hh if self.bias_hh is not None else d

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a torch-initialised cell saved before it had torch's second bias vector: b_hh = 0 keeps
        # its function (``state_dict`` is already the loader's own copy)
        if self.bias_hh is not None and prefix + "bias" in state_dict and prefix + "bias_hh" not in state_dict:
            state_dict[prefix + "bias_hh"] = torch.zeros_like(state_dict[prefix + "bias"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x, z):
        phi, _ = _activation(self.activation)
        W = self.recurrent_weight()
        a = self.alpha
        if self.form == "rate":
            return (1 - a) * z + a * phi(self.input_drive(x) + z @ W.T)
        return (1 - a) * z + a * (phi(z) @ W.T + self.input_drive(x))

    @torch.no_grad()
    def linearize(self, inputs, z_prev):
        phi, dphi = _activation(self.activation)
        W = self.recurrent_weight().detach()
        a = self.alpha
        B, T, H = z_prev.shape
        # each step works in place on its fresh matrix product and folds the leak into one add (alpha=):
        # at small B the elementwise passes cost as much as the product itself
        if self.form == "rate":
            d = a * dphi(self.input_drive(inputs) + z_prev @ W.T)

            def jvp(dz, t):
                return (dz @ W.T).mul_(d[:, t]).add_(dz, alpha=1 - a)

            def vjp(e, t):
                return ((d[:, t] * e) @ W).add_(e, alpha=1 - a)
        else:
            d = dphi(z_prev)
            da = a * d

            def jvp(dz, t):
                return ((d[:, t] * dz) @ W.T).mul_(a).add_(dz, alpha=1 - a)

            def vjp(e, t):
                return (e @ W).mul_(da[:, t]).add_(e, alpha=1 - a)
        return StateLinearization(jvp, vjp, B, T, H)

    @torch.no_grad()
    def parameter_sites(self, inputs, z_prev):
        phi, dphi = _activation(self.activation)
        X = inputs.reshape(-1, self.input_size)
        Z = z_prev.reshape(-1, self.hidden_size)
        W = self.recurrent_weight().detach()
        scale = None
        if self.dale_sign is not None:
            scale = torch.sign(self.weight_hh.detach()) * self.dale_sign
        bias = "bias" if self.bias is not None else None
        bias_hh = "bias_hh" if self.bias_hh is not None else None
        if self.form == "rate":
            a = self.input_drive(X).detach() + Z @ W.T
            c = (self.alpha * dphi(a))[:, None, None, :]
            return [ParameterSite("weight_ih", bias, X, c), ParameterSite("weight_hh", bias_hh, Z, c, scale)]
        c = torch.full((1, 1, 1, self.hidden_size), self.alpha, dtype=X.dtype, device=X.device).expand(X.shape[0], 1, 1, -1)
        return [ParameterSite("weight_ih", bias, X, c), ParameterSite("weight_hh", bias_hh, phi(Z), c, scale)]

    @torch.no_grad()
    def unit_separable_terms(self, x, z_prev):
        """The exact K of this cell as ``([(C, F), ...], n_units, n_state_blocks)``: per term, unit
        coefficients ``C [B, T, blocks·H]`` and the features ``F [B, T, d]`` of the trained parameters,
        so that ``K = Σ_terms (C C*) ⊙ (F F*)`` unit by unit (see :mod:`neurokpflow.kpflow.structured`).
        ``x [B, T, I]`` are the inputs and ``z_prev [B, T, S]`` the states before each step."""
        phi, dphi = ACTIVATIONS[self.activation]
        a = self.alpha
        _check_dale(self)
        if self.form == "rate":
            pre = self.input_drive(x) + z_prev @ self.recurrent_weight().T
            C = a * dphi(pre)
            F = _features(x if _trained(self.weight_ih) else None, z_prev if _trained(self.weight_hh) else None,
                          _ones(x) if _trained(self.bias) else None, _ones(x) if _trained(self.bias_hh) else None)
        else:
            C = torch.full_like(z_prev, a)
            F = _features(phi(z_prev) if _trained(self.weight_hh) else None, x if _trained(self.weight_ih) else None,
                          _ones(x) if _trained(self.bias) else None, _ones(x) if _trained(self.bias_hh) else None)
        return [(C, F)], self.hidden_size, 1

    def run_sequence(self, x, z0, *, noise_std=0.0, generator=None, full_state=True):
        """The leaky loop with the input drive of every step computed at once (noise enters the drive)."""
        phi, _ = ACTIVATIONS[self.activation]
        a = self.alpha
        W = self.recurrent_weight()
        drive = self.input_drive(x)
        drive_noise = None
        if noise_std > 0:
            scale = noise_std * math.sqrt(2 / a) if self.form == "rate" else noise_std * math.sqrt(2 * a)
            drive_noise = torch.randn(drive.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
            drive_noise = drive_noise * scale
        z, out = z0, []
        for t in range(x.shape[1]):
            if self.form == "rate":
                pre = drive[:, t] + z @ W.T
                if drive_noise is not None:
                    pre = pre + drive_noise[:, t]
                z = (1 - a) * z + a * phi(pre)
            else:
                z = (1 - a) * z + a * (phi(z) @ W.T + drive[:, t])
                if drive_noise is not None:
                    z = z + drive_noise[:, t]
            out.append(z)
        return torch.stack(out, dim=1)

    @classmethod
    def from_model_config(cls, n_in, n_hidden, config, generator=None):
        return cls(n_in, n_hidden, alpha=config["alpha"], activation=config["activation"], form=config["form"],
                   bias=config["bias"], g=config["g"], dale=config["dale"], generator=generator, init=config["init"])

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, form={self.form!r}, alpha={self.alpha}, "
                f"activation={self.activation!r}, bias={self.bias is not None}, dale={self.dale}")


class GatedCell(RecurrentCell):
    """What the gated cells share: torch's parameter layout (``N_GATES`` gates stacked in
    ``weight_ih [N_GATES·H, I]`` / ``weight_hh [N_GATES·H, H]``), its initialisation and the gate
    pre-activations."""

    N_GATES: int = 0
    STATE_BLOCKS: int = 1   # the state is STATE_BLOCKS · H entries ([h] or [h, c])

    def __init__(self, input_size, hidden_size, bias=True, g=1.0, generator=None, dtype=None, device=None):
        super().__init__()
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.state_size = self.STATE_BLOCKS * int(hidden_size)
        self.g = float(g)
        kw = dict(dtype=dtype, device=device)
        GH, H = self.N_GATES * int(hidden_size), int(hidden_size)
        self.weight_ih = nn.Parameter(torch.empty(GH, input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(GH, H, **kw))
        self.bias_ih = nn.Parameter(torch.empty(GH, **kw)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(GH, **kw)) if bias else None
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator=None):
        """torch's default U(-1/√H, 1/√H) initialisation, recurrent weights scaled by ``g``."""
        k = 1 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            p.copy_((torch.rand(p.shape, generator=generator) * 2 - 1) * k)
        self.weight_hh.mul_(self.g)

    def gate_preactivations(self, x, h):
        """``(W_i x + b_i, W_h h + b_h)``, all gates stacked along the last axis."""
        gi = x @ self.weight_ih.T
        gh = h @ self.weight_hh.T
        if self.bias_ih is not None:
            gi = gi + self.bias_ih
            gh = gh + self.bias_hh
        return gi, gh

    def run_sequence(self, x, z0, *, noise_std=0.0, generator=None, full_state=True):
        """torch's fused kernel without noise; the step-by-step loop with it."""
        if noise_std > 0:
            return super().run_sequence(x, z0, noise_std=noise_std, generator=generator, full_state=full_state)
        return self._fused(x, z0, full_state)

    def _flat_weights(self):
        weights = [self.weight_ih, self.weight_hh]
        if self.bias_ih is not None:
            weights += [self.bias_ih, self.bias_hh]
        return weights

    def _pname(self, name):
        return name


class GRUCell(GatedCell):
    """Gated recurrent unit with exactly torch's equations and parameter layout
    (``weight_ih [3H, I]``, ``weight_hh [3H, H]``, gates ordered r, z, n), so its weights
    load into a fused ``nn.GRU``::

        r = σ(W_ir x + b_ir + W_hr h + b_hr)      u = σ(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))      h' = (1 - u) ⊙ n + u ⊙ h
    """

    N_GATES = 3

    def gates(self, x, h):
        """``(r, u, n, W_hn h + b_hn)``: reset and update gates, candidate state, and the recurrent
        part of the candidate's pre-activation (torch's equations)."""
        gi, gh = self.gate_preactivations(x, h)
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        return r, torch.sigmoid(i_z + h_z), torch.tanh(i_n + r * h_n), h_n

    def forward(self, x, z):
        _, u, n, _ = self.gates(x, z)
        return (1 - u) * n + u * z

    def _coefficients(self, inputs, z_prev):
        """(D_hidden, D_input, u, r): δh' = Σ_g D_h,g ⊙ δgh_g + Σ_g D_i,g ⊙ δgi_g + u ⊙ δh; D_hidden is
        D_input with the candidate gate's part times the reset gate r."""
        r, u, n, h_n = self.gates(inputs, z_prev)
        cn = (1 - u) * (1 - n * n)
        d_r = cn * r * (1 - r) * h_n
        d_z = u * (1 - u) * (z_prev - n)
        return torch.cat([d_r, d_z, cn * r], dim=-1), torch.cat([d_r, d_z, cn], dim=-1), u, r

    @torch.no_grad()
    def linearize_all(self, inputs, z_prev):
        W = self.weight_hh.detach()
        B, T, H = z_prev.shape
        # J dz = D_r ⊙ (W_hr dz) + D_z ⊙ (W_hz dz) + D_n ⊙ (W_hn dz) + u ⊙ dz
        D, Di, u, r = self._coefficients(inputs, z_prev)

        # in place on the fresh product, gates summed through a view, u ⊙ · fused (addcmul): fewer
        # passes over the step's [.., B, 3H] temporaries, which cost as much as the product at small B
        def jvp(dz, t):
            a = (dz @ W.T).mul_(D[:, t])
            return a.unflatten(-1, (3, H)).sum(-2).addcmul_(u[:, t], dz)

        def vjp(e, t):
            g = (D[:, t].unflatten(-1, (3, H)) * e.unsqueeze(-2)).flatten(-2)
            return (g @ W).addcmul_(u[:, t], e)

        bi, bh = ("bias_ih", "bias_hh") if self.bias_ih is not None else (None, None)
        site_i = ParameterSite(self._pname("weight_ih"), self._pname(bi), inputs.reshape(B * T, -1),
                               Di.reshape(B * T, 1, 3, H))
        sites = [site_i,
                 ParameterSite(self._pname("weight_hh"), self._pname(bh), z_prev.reshape(B * T, H),
                               D.reshape(B * T, 1, 3, H), base=site_i, gate_factor={2: r.reshape(B * T, H)})]
        return StateLinearization(jvp, vjp, B, T, H), sites

    def linearize(self, inputs, z_prev):
        return self.linearize_all(inputs, z_prev)[0]

    def parameter_sites(self, inputs, z_prev):
        return self.linearize_all(inputs, z_prev)[1]

    @torch.no_grad()
    def unit_separable_terms(self, x, z_prev):
        """The exact K of this cell as ``([(C, F), ...], n_units, n_state_blocks)``: per term, unit
        coefficients ``C [B, T, blocks·H]`` and the features ``F [B, T, d]`` of the trained parameters,
        so that ``K = Σ_terms (C C*) ⊙ (F F*)`` unit by unit (see :mod:`neurokpflow.kpflow.structured`).
        ``x [B, T, I]`` are the inputs and ``z_prev [B, T, S]`` the states before each step."""
        h = z_prev
        r, u, n, h_n = self.gates(x, h)
        cn = (1 - u) * (1 - n * n)
        fx, fbi, fh, fbh = _gate_features(self, x, h)
        both = _features(fx, fbi, fh, fbh)
        terms = [(cn * r * (1 - r) * h_n, both), (u * (1 - u) * (h - n), both),
                 (cn, _features(fx, fbi)), (cn * r, _features(fh, fbh))]
        return terms, self.hidden_size, 1

    def _fused(self, x, z0, full_state):
        h, _ = torch.gru(x, z0[None].contiguous(), self._flat_weights(), self.bias_ih is not None, 1, 0.0,
                         self.training, False, True)
        return h

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}, g={self.g}"


class LSTMCell(GatedCell):
    """Long short-term memory cell with torch's equations and parameter layout (gates i, f, g, o).

    The state is ``z = [h, c]`` (size ``2H``); the readout sees ``h`` (``output_slice``)::

        c' = f ⊙ c + i ⊙ g        h' = o ⊙ tanh(c')
    """

    N_GATES = 4
    STATE_BLOCKS = 2

    @torch.no_grad()
    def parameter_sites(self, inputs, z_prev):
        H = self.hidden_size
        X = inputs.reshape(-1, self.input_size)
        Z = z_prev.reshape(-1, 2 * H)
        h, c = Z[:, :H], Z[:, H:]
        gi, gh = self.gate_preactivations(X, h)
        i, f, g, o = (gi + gh).chunk(4, -1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        tc = torch.tanh(f * c + i * g)
        s = o * (1 - tc * tc)
        Dc = torch.stack([g * i * (1 - i), c * f * (1 - f), i * (1 - g * g), torch.zeros_like(g)], dim=1)
        Do = torch.stack([torch.zeros_like(g)] * 3 + [o * (1 - o) * tc], dim=1)
        coeff = torch.stack([s[:, None] * Dc + Do, Dc], dim=1)  # [rows, (h, c), 4 gates, H]
        bi, bh = ("bias_ih", "bias_hh") if self.bias_ih is not None else (None, None)
        return [ParameterSite(self._pname("weight_ih"), self._pname(bi), X, coeff),
                ParameterSite(self._pname("weight_hh"), self._pname(bh), h, coeff)]

    def gates(self, x, z):
        """``(i, f, g, o, c')``: input, forget, candidate and output gates and the new cell state from
        the state ``z = [h, c]`` (torch's equations)."""
        H = self.hidden_size
        h, c = z[..., :H], z[..., H:]
        gi, gh = self.gate_preactivations(x, h)
        i, f, g, o = (gi + gh).chunk(4, -1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        return i, f, g, o, f * c + i * g

    def forward(self, x, z):
        *_, o, c2 = self.gates(x, z)
        return torch.cat([o * torch.tanh(c2), c2], dim=-1)

    @torch.no_grad()
    def linearize(self, inputs, z_prev):
        W = self.weight_hh.detach()
        H = self.hidden_size
        B, T, S = z_prev.shape
        h, c = z_prev[..., :H], z_prev[..., H:]
        gi, gh = self.gate_preactivations(inputs, h)
        i, f, g, o = (gi + gh).chunk(4, -1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c2 = f * c + i * g
        tc = torch.tanh(c2)
        Dc = torch.cat([g * i * (1 - i), c * f * (1 - f), i * (1 - g * g)], dim=-1)  # acts on a_i, a_f, a_g
        Do = o * (1 - o) * tc
        s = o * (1 - tc * tc)
        del gi, gh, i, g, o, c2, tc

        def jvp(dz, t):
            dh, dc = dz[..., :H], dz[..., H:]
            a = dh @ W.T
            q = Dc[:, t] * a[..., :3 * H]
            dc2 = q[..., :H] + q[..., H:2 * H] + q[..., 2 * H:] + f[:, t] * dc
            dh2 = Do[:, t] * a[..., 3 * H:] + s[:, t] * dc2
            return torch.cat([dh2, dc2], dim=-1)

        def vjp(e, t):
            eh, ec = e[..., :H], e[..., H:]
            ec2 = ec + s[:, t] * eh
            ga = torch.cat([Dc[:, t] * ec2.tile(3), Do[:, t] * eh], dim=-1)
            return torch.cat([ga @ W, f[:, t] * ec2], dim=-1)

        return StateLinearization(jvp, vjp, B, T, S)

    @torch.no_grad()
    def unit_separable_terms(self, x, z_prev):
        """The exact K of this cell as ``([(C, F), ...], n_units, n_state_blocks)``: per term, unit
        coefficients ``C [B, T, blocks·H]`` and the features ``F [B, T, d]`` of the trained parameters,
        so that ``K = Σ_terms (C C*) ⊙ (F F*)`` unit by unit (see :mod:`neurokpflow.kpflow.structured`).
        ``x [B, T, I]`` are the inputs and ``z_prev [B, T, S]`` the states before each step."""
        H = self.hidden_size
        h, c = z_prev[..., :H], z_prev[..., H:]
        i, f, g, o, c2 = self.gates(x, z_prev)
        tc = torch.tanh(c2)
        s = o * (1 - tc * tc)
        F = _features(*_gate_features(self, x, h))
        dc = [g * i * (1 - i), c * f * (1 - f), i * (1 - g * g)]
        terms = [(torch.cat([s * d, d], -1), F) for d in dc]
        terms.append((torch.cat([o * (1 - o) * tc, torch.zeros_like(tc)], -1), F))
        return terms, H, 2

    def _fused(self, x, z0, full_state):
        H = self.hidden_size
        h0, c0 = z0[:, :H], z0[:, H:]
        h, _, _ = torch.lstm(x, (h0[None].contiguous(), c0[None].contiguous()), self._flat_weights(),
                             self.bias_ih is not None, 1, 0.0, self.training, False, True)
        if not full_state:
            return h
        # the cell state follows from h: gates at t depend on (x_t, h_{t-1}) only, so they are one
        # batched product, and c_t = f_t c_{t-1} + i_t g_t is an elementwise scan.
        h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1)
        gi, gh = self.gate_preactivations(x, h_prev)
        i, f, g, _ = (gi + gh).chunk(4, -1)
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        cs, cell_state = [], c0
        for t in range(x.shape[1]):
            cell_state = f[:, t] * cell_state + i[:, t] * g[:, t]
            cs.append(cell_state)
        return torch.cat([h, torch.stack(cs, dim=1)], dim=-1)

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}, g={self.g}"


def unroll(cell, inputs: torch.Tensor, z0: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``cell`` step by step: returns states ``[B, T, S]`` with ``out[:, t] = z(t+1)``."""
    B, T, _ = inputs.shape
    if z0 is None:
        z = torch.zeros(B, cell.state_size, dtype=inputs.dtype, device=inputs.device)
    else:
        z = z0.expand(B, -1) if z0.dim() == 1 else z0
    out = []
    for t in range(T):
        z = cell(inputs[:, t], z)
        out.append(z)
    return torch.stack(out, dim=1)
