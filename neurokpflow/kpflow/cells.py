"""Bring any recurrent cell into the flat-state form ``z' = f(x, z; θ)`` the operators use.

* neurokpflow cells (:mod:`neurokpflow.models.cells`) are used as they are;
* torch's ``nn.RNNCell``, ``nn.GRUCell``, ``nn.LSTMCell`` and single-layer ``nn.RNN``,
  ``nn.GRU``, ``nn.LSTM`` are wrapped (sharing their parameters) so that they get the
  hand-derived linearisations;
* any other ``nn.Module`` with ``forward(x, h) -> h'`` (same shape as ``h``) takes the
  generic path: per-step ``torch.func.jvp`` / ``torch.func.vjp``, vmapped over probes.
"""
from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.func import jvp as _jvp, vjp as _vjp, vmap

from ..models.cells import (ACTIVATIONS, GRUCell, LSTMCell, ParameterSite, RecurrentCell, StateLinearization,
                            GatedCell)
from ..errors import InputError, InputTypeError

__all__ = ["as_state_cell", "TorchCellAdapter", "GenericCell"]


_TORCH_KINDS = {nn.RNNCell: "rnn", nn.RNN: "rnn", nn.GRUCell: "gru", nn.GRU: "gru", nn.LSTMCell: "lstm",
                nn.LSTM: "lstm"}


class TorchCellAdapter(RecurrentCell):
    """A torch RNN/GRU/LSTM (cell, or single-layer sequence module) seen as a flat-state cell.

    The wrapped module's parameters are used directly (``named_parameters`` are those of
    the wrapped module, prefixed ``cell.``), so gradients and ``J_θ`` refer to them.
    ``TorchCellAdapter(module)`` builds the subclass for the module's kind, which inherits the
    equations and linearisation of the matching neurokpflow cell (same parameter layout).
    """

    kind = ""

    def __new__(cls, module: nn.Module):
        if cls is TorchCellAdapter:
            if type(module) not in _TORCH_KINDS:
                raise InputTypeError(f"TorchCellAdapter wraps torch's RNN/GRU/LSTM modules, got {type(module).__name__}")
            cls = {"rnn": _TorchRNN, "gru": _TorchGRU, "lstm": _TorchLSTM}[_TORCH_KINDS[type(module)]]
        return super().__new__(cls)

    def __init__(self, module: nn.Module):
        nn.Module.__init__(self)  # the parameters are the wrapped module's: no cell constructor runs
        if isinstance(module, (nn.RNN, nn.GRU, nn.LSTM)):
            if module.num_layers != 1:
                raise InputError(
                    f"{type(module).__name__} has num_layers={module.num_layers}; the KPFlow operators need a "
                    "single recurrent cell: pass one layer (num_layers=1) or a custom cell module"
                )
            if module.bidirectional:
                raise InputError(f"bidirectional {type(module).__name__} is not a causal recurrent cell")
            if getattr(module, "proj_size", 0):
                raise InputError("LSTM with proj_size > 0 is not supported; use proj_size=0")
            self._suffix = "_l0"
        else:
            self._suffix = ""
        self.cell = module
        # ints on every torch RNN module (nn.Module's __getattr__ is typed Tensor | Module)
        self.input_size, self.hidden_size = cast(int, module.input_size), cast(int, module.hidden_size)
        self.state_size = 2 * self.hidden_size if self.kind == "lstm" else self.hidden_size

    def _p(self, name):
        return getattr(self.cell, name + self._suffix, None)

    @property
    def weight_ih(self):
        return self._p("weight_ih")

    @property
    def weight_hh(self):
        return self._p("weight_hh")

    @property
    def bias_ih(self):
        return self._p("bias_ih")

    @property
    def bias_hh(self):
        return self._p("bias_hh")

    def _pname(self, name):
        return None if name is None else f"cell.{name}{self._suffix}"


class _TorchGRU(TorchCellAdapter, GRUCell):
    """``nn.GRU`` / ``nn.GRUCell``: :class:`GRUCell`'s equations on the wrapped parameters."""

    kind = "gru"


class _TorchLSTM(TorchCellAdapter, LSTMCell):
    """``nn.LSTM`` / ``nn.LSTMCell``: :class:`LSTMCell`'s equations on the wrapped parameters."""

    kind = "lstm"

    def forward(self, x, z):
        if self._suffix:
            return LSTMCell.forward(self, x, z)
        H = self.hidden_size  # an nn.LSTMCell runs its own fused step
        return torch.cat(self.cell(x, (z[..., :H].contiguous(), z[..., H:].contiguous())), dim=-1)


class _TorchRNN(TorchCellAdapter, GatedCell):
    """``nn.RNN`` / ``nn.RNNCell``: ``h' = φ(W_ih x + b_ih + W_hh h + b_hh)`` (one "gate" in the shared layout)."""

    kind = "rnn"
    N_GATES = 1

    def __init__(self, module: nn.Module):
        super().__init__(module)
        if module.nonlinearity not in ("tanh", "relu"):
            raise InputError(f"unsupported nonlinearity {module.nonlinearity!r}")

    @torch.no_grad()
    def parameter_sites(self, inputs, z_prev):
        X = inputs.reshape(-1, self.input_size)
        Z = z_prev.reshape(-1, self.hidden_size)
        gi, gh = self.gate_preactivations(X, Z)
        d = ACTIVATIONS[self.cell.nonlinearity][1](gi + gh)[:, None, None, :]
        has_b = self.bias_ih is not None
        return [ParameterSite(self._pname("weight_ih"), self._pname("bias_ih" if has_b else None), X, d),
                ParameterSite(self._pname("weight_hh"), self._pname("bias_hh" if has_b else None), Z, d)]

    def forward(self, x, z):
        gi, gh = self.gate_preactivations(x, z)
        return ACTIVATIONS[self.cell.nonlinearity][0](gi + gh)

    def run_sequence(self, x, z0, *, noise_std=0.0, generator=None, full_state=True):
        return RecurrentCell.run_sequence(self, x, z0, noise_std=noise_std, generator=generator, full_state=full_state)

    @torch.no_grad()
    def linearize(self, inputs, z_prev):
        W = self.weight_hh.detach()
        gi, gh = self.gate_preactivations(inputs, z_prev)
        d = ACTIVATIONS[self.cell.nonlinearity][1](gi + gh)

        def jvp(dz, t):
            return d[:, t] * (dz @ W.T)

        def vjp(e, t):
            return (d[:, t] * e) @ W

        B, T, H = z_prev.shape
        return StateLinearization(jvp, vjp, B, T, H)


class GenericCell(RecurrentCell):
    """Any module ``h' = cell(x, h)`` whose output has the state's shape; linearised by ``torch.func``."""

    def __init__(self, module: nn.Module, input_size: int, state_size: int):
        super().__init__()
        self.cell = module
        self.input_size, self.hidden_size, self.state_size = int(input_size), int(state_size), int(state_size)

    def forward(self, x, z):
        return self.cell(x, z)

    def linearize(self, inputs, z_prev):
        B, T, S = z_prev.shape
        I = inputs.shape[-1]
        f = self.cell
        vjp_cache = {}  # per-step VJP closures, created on first use (they hold the step's residuals)

        def rows(t):
            x, z = inputs[:, t], z_prev[:, t]
            return x.reshape(-1, I), z.reshape(-1, S), z.shape

        def apply(fn, v, zshape, n_rows):
            lead = v.shape[: v.dim() - len(zshape)]
            V = v.reshape(-1, n_rows, S)
            out = fn(V[0])[None] if V.shape[0] == 1 else vmap(fn)(V)
            return out.reshape(*lead, *zshape)

        def jvp(dz, t):
            x, z, zshape = rows(t)
            with torch.no_grad():
                return apply(lambda v: _jvp(lambda zz: f(x, zz), (z,), (v,))[1], dz, zshape, z.shape[0])

        def vjp(e, t):
            x, z, zshape = rows(t)
            key = (t.start, t.stop, t.step) if isinstance(t, slice) else t
            with torch.no_grad():
                if key not in vjp_cache:
                    vjp_cache[key] = _vjp(lambda zz: f(x, zz), z)[1]
                fn = vjp_cache[key]
                return apply(lambda w: fn(w)[0], e, zshape, z.shape[0])

        return StateLinearization(jvp, vjp, B, T, S)


def as_state_cell(cell: nn.Module, input_size: int | None = None, state_size: int | None = None) -> RecurrentCell:
    """Return ``cell`` in flat-state form (see the module docstring)."""
    if isinstance(cell, RecurrentCell):
        return cell
    if not isinstance(cell, nn.Module):
        raise InputTypeError(
            f"cell must be a torch.nn.Module implementing h' = f(x, h; θ), got {type(cell).__name__}"
        )
    if type(cell) in (nn.RNNCell, nn.GRUCell, nn.LSTMCell, nn.RNN, nn.GRU, nn.LSTM):
        return TorchCellAdapter(cell)
    if hasattr(cell, "cell") and isinstance(getattr(cell, "cell"), nn.Module) and hasattr(cell, "readout"):
        raise InputTypeError(
            "got a whole model; pass model.cell (or use neurokpflow.kpflow.operators_from_model(model, batch))"
        )
    if input_size is None or state_size is None:
        raise InputError("a generic cell needs input_size and state_size (taken from inputs and hidden)")
    return GenericCell(cell, input_size, state_size)
