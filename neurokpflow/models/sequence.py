"""Sequence models built on the single-step cells: ``make(kind, n_in, n_hidden, n_out, **options)``.

A model is an ``nn.Module`` with

* ``model.cell`` — the single-step :class:`~neurokpflow.models.cells.RecurrentCell` the KPFlow
  operators take (it owns the recurrent parameters);
* ``model.readout`` — ``nn.Linear`` reading ``state[..., cell.output_slice]``;
* ``model.initial_state(batch_size)`` — zeros, or a learned vector (``initial_state="learned"``);
* ``model(inputs)`` — the fast sequence forward returning ``(outputs [B,T,O], states [B,T,S])``
  with ``states[:, t]`` the state after consuming ``inputs[:, t]``.  GRU/LSTM run through torch's
  fused (cuDNN on GPU) ``torch.gru`` / ``torch.lstm`` kernels on the *same* parameter tensors as
  the cell; the leaky RNN runs a tight loop with the input drive precomputed;
* ``model.config`` — a plain dict; :func:`from_config` rebuilds the same architecture.

Recurrent noise is added only when asked for (``model(inputs, noise=True)``) and ``noise_std > 0``:
leaky RNN rate form (F1) ``σ·sqrt(2/α)·ξ`` on the pre-activation (Yang), state form (F2)
``sqrt(2α)·σ·ξ`` on the state; GRU/LSTM ``σ·ξ`` on ``h`` after each step (these then run the
cell loop instead of the fused kernel).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .cells import ACTIVATIONS, GRUCell, LeakyRNNCell, LSTMCell
from .._validation import dtype_name, resolve_dtype
from ..errors import InputError, InputTypeError

__all__ = ["RecurrentModel", "make", "from_config", "KINDS"]

_COMMON = {"initial_state": "zeros", "noise_std": 0.0, "bias": True, "readout_bias": True, "g": 1.0,
           "seed": None, "dtype": "float32"}
#: kind -> default options (beyond the common ones)
KINDS = {
    "rnn": {"form": "rate", "alpha": 1.0, "activation": "tanh", "dale": None, "init": "normal"},
    "gru": {},
    "lstm": {},
}



def make(kind: str, n_in: int, n_hidden: int, n_out: int, **options) -> "RecurrentModel":
    """Build a sequence model.

    Parameters
    ----------
    kind : {"rnn", "gru", "lstm"}
        ``"rnn"`` is the leaky vanilla RNN (:class:`LeakyRNNCell`) with options ``form``
        ("rate" = F1, "state" = F2), ``alpha`` (= dt/τ), ``activation``, ``dale`` (excitatory
        fraction or None), ``init`` ("normal" or "torch", see :class:`LeakyRNNCell`).
    n_in, n_hidden, n_out : int
    initial_state : {"zeros", "learned"}
    noise_std : float
        Recurrent noise σ (used only when the forward is called with ``noise=True``).
    g : float
        Initial recurrent scale (see the cells).
    bias, readout_bias : bool
    seed : int or None
        Seeds the parameter initialisation (``None``: torch's global generator).
    dtype : {"float32", "float64"}
    """
    if kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; known kinds: {sorted(KINDS)}")
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    allowed = {**_COMMON, **KINDS[kind]}
    unknown = set(options) - set(allowed)
    if unknown:
        raise InputTypeError(f"unknown option(s) {sorted(unknown)} for kind {kind!r}; accepted: {sorted(allowed)}")
    config = {"kind": kind, "n_in": n_in, "n_hidden": n_hidden, "n_out": n_out, **allowed, **options}
    return RecurrentModel(config)


def from_config(config: dict) -> "RecurrentModel":
    """Rebuild a model (same architecture and, with a seed, the same initial parameters)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise InputError(f"not a model config (a dict with 'kind', 'n_in', 'n_hidden', 'n_out'): {config!r}")
    return make(**config)


class RecurrentModel(nn.Module):
    """A recurrent cell with a linear readout; build it with :func:`make`."""

    def __init__(self, config: dict):
        super().__init__()
        cfg = dict(config)
        if cfg["initial_state"] not in ("zeros", "learned"):
            raise InputError(f"initial_state must be 'zeros' or 'learned', got {cfg['initial_state']!r}")
        dtype = resolve_dtype(cfg["dtype"])
        if not isinstance(cfg["dtype"], str):
            cfg["dtype"] = dtype_name(dtype)  # the config stays JSON-serialisable
        if cfg["noise_std"] < 0:
            raise InputError(f"noise_std must be >= 0, got {cfg['noise_std']}")
        if cfg["kind"] == "rnn" and cfg["activation"] not in ACTIVATIONS:
            raise InputError(f"unknown activation {cfg['activation']!r}; choose one of {sorted(ACTIVATIONS)}")
        self._config = cfg
        gen = torch.Generator().manual_seed(int(cfg["seed"])) if cfg["seed"] is not None else None
        kind, n_in, H = cfg["kind"], cfg["n_in"], cfg["n_hidden"]
        self.cell: LeakyRNNCell | GRUCell | LSTMCell
        if kind == "rnn":
            self.cell = LeakyRNNCell(n_in, H, alpha=cfg["alpha"], activation=cfg["activation"], form=cfg["form"],
                                     bias=cfg["bias"], g=cfg["g"], dale=cfg["dale"], generator=gen,
                                     init=cfg["init"])
        else:
            cls = GRUCell if kind == "gru" else LSTMCell
            self.cell = cls(n_in, H, bias=cfg["bias"], g=cfg["g"], generator=gen)
        # skip_init: no default initialisation, so building a seeded model draws nothing from (and does
        # not advance) the process-global torch RNG; the parameters are set just below
        self.readout = nn.utils.skip_init(nn.Linear, H, cfg["n_out"], bias=cfg["readout_bias"])
        with torch.no_grad():
            bound = 1 / math.sqrt(H)
            for p in self.readout.parameters():
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
        if cfg["initial_state"] == "learned":
            self.z0 = nn.Parameter(torch.zeros(self.cell.state_size))
        self.to(dtype)

    @property
    def config(self) -> dict:
        """The architecture as a plain dict (a copy); ``from_config(model.config)`` rebuilds it."""
        return dict(self._config)

    @property
    def kind(self) -> str:
        return self._config["kind"]

    @property
    def noise_std(self) -> float:
        return float(self._config["noise_std"])

    @property
    def n_in(self) -> int:
        return self.cell.input_size

    @property
    def n_out(self) -> int:
        return self.readout.out_features

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """``[batch_size, state_size]``: zeros, or the learned initial state broadcast."""
        p = self.readout.weight
        if hasattr(self, "z0"):
            return self.z0.expand(batch_size, -1)
        return torch.zeros(batch_size, self.cell.state_size, dtype=p.dtype, device=p.device)

    def forward(self, inputs: torch.Tensor, *, noise: bool = False, generator: torch.Generator | None = None,
                initial_state: torch.Tensor | None = None, full_state: bool = True):
        """Run a batch of sequences.

        Parameters
        ----------
        inputs : ``[B, T, n_in]`` (cast to the model's dtype)
        noise : bool
            Add recurrent noise (``config["noise_std"]``); never on by default.
        generator : torch.Generator, optional
            Source of the noise (for reproducible training).
        initial_state : ``[B, S]`` or ``[S]``, optional (default ``model.initial_state(B)``)
        full_state : bool
            For the LSTM, return the full ``[h, c]`` state; with False only ``h`` (cheaper).

        Returns
        -------
        outputs ``[B, T, n_out]``, states ``[B, T, S]``
        """
        p = self.readout.weight
        if inputs.dim() != 3 or inputs.shape[-1] != self.n_in:
            raise InputError(f"inputs must have shape [B, T, {self.n_in}], got {tuple(inputs.shape)}")
        x = inputs.to(dtype=p.dtype, device=p.device)
        B = x.shape[0]
        z0 = self.initial_state(B) if initial_state is None else initial_state.to(p.dtype).expand(B, -1)
        sigma = self.noise_std if noise else 0.0
        if self.kind == "rnn":
            states = self._leaky_loop(x, z0, sigma, generator)
        elif sigma > 0:
            states = self._noisy_cell_loop(x, z0, sigma, generator)
        else:
            states = self._fused(x, z0, full_state)
        outputs = self.readout(states[..., self.cell.output_slice])
        return outputs, states

    def _leaky_loop(self, x, z, sigma, generator):
        cell = self.cell
        phi, _ = ACTIVATIONS[cell.activation]
        a = cell.alpha
        W = cell.recurrent_weight()
        drive = cell._drive(x)
        if sigma > 0:
            scale = sigma * math.sqrt(2 / a) if cell.form == "rate" else sigma * math.sqrt(2 * a)
            drive_noise = torch.randn(drive.shape, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
            drive_noise = drive_noise * scale
        out = []
        for t in range(x.shape[1]):
            if cell.form == "rate":
                pre = drive[:, t] + z @ W.T
                if sigma > 0:
                    pre = pre + drive_noise[:, t]
                z = (1 - a) * z + a * phi(pre)
            else:
                z = (1 - a) * z + a * (phi(z) @ W.T + drive[:, t])
                if sigma > 0:
                    z = z + drive_noise[:, t]
            out.append(z)
        return torch.stack(out, dim=1)

    def _noisy_cell_loop(self, x, z, sigma, generator):
        H = self.cell.hidden_size
        xi = torch.randn(x.shape[0], x.shape[1], H, generator=generator, dtype=x.dtype, device="cpu").to(x.device)
        out = []
        for t in range(x.shape[1]):
            z = self.cell(x[:, t], z)
            z = torch.cat([z[..., :H] + sigma * xi[:, t], z[..., H:]], dim=-1)
            out.append(z)
        return torch.stack(out, dim=1)

    def _flat_weights(self):
        c = self.cell
        weights = [c.weight_ih, c.weight_hh]
        if c.bias_ih is not None:
            weights += [c.bias_ih, c.bias_hh]
        return weights

    def _fused(self, x, z0, full_state):
        c = self.cell
        H = c.hidden_size
        weights, has_bias = self._flat_weights(), c.bias_ih is not None
        if self.kind == "gru":
            h, _ = torch.gru(x, z0[None].contiguous(), weights, has_bias, 1, 0.0, self.training, False, True)
            return h
        h0, c0 = z0[:, :H], z0[:, H:]
        h, _, _ = torch.lstm(x, (h0[None].contiguous(), c0[None].contiguous()), weights, has_bias, 1, 0.0,
                             self.training, False, True)
        if not full_state:
            return h
        # the cell state follows from h: gates at t depend on (x_t, h_{t-1}) only, so they are one
        # batched product, and c_t = f_t c_{t-1} + i_t g_t is an elementwise scan.
        h_prev = torch.cat([h0[:, None], h[:, :-1]], dim=1)
        gi, gh = c._gates(x, h_prev)
        i, f, g, _ = (gi + gh).chunk(4, -1)
        i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
        cs, cell_state = [], c0
        for t in range(x.shape[1]):
            cell_state = f[:, t] * cell_state + i[:, t] * g[:, t]
            cs.append(cell_state)
        return torch.cat([h, torch.stack(cs, dim=1)], dim=-1)

    def extra_repr(self):
        return f"initial_state={self._config['initial_state']!r}, noise_std={self.noise_std}"
