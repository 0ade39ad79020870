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

from collections.abc import Mapping

from .._registry import Registry
from .cells import GRUCell, LeakyRNNCell, LSTMCell, RecurrentCell
from .._validation import dtype_name, resolve_dtype, torch_generator
from ..errors import InputError, InputTypeError, UnknownNameError

__all__ = ["RecurrentModel", "make", "from_config", "KINDS", "CELLS"]

_COMMON = {"initial_state": "zeros", "noise_std": 0.0, "bias": True, "readout_bias": True, "g": 1.0,
           "seed": None, "dtype": "float32"}
#: every model kind :func:`make` builds: the entry's factory is the cell class; capabilities:
#: ``options`` (the kind's options beyond the common ones, with defaults) and ``unit_separable``
#: (the cell has ``unit_separable_terms()``, so :func:`neurokpflow.kpflow.unit_separable_K` gives its
#: exact K).  A new cell registers here with ``CELLS.register(name, CellClass, options={...})``; it
#: needs ``from_model_config`` (the base class's suits cells taking ``bias`` and ``g``) and the
#: :class:`RecurrentCell` interface.  The cell contract tests run over every entry.
CELLS = Registry("cell", {"options": {}, "unit_separable": False})
CELLS.register("rnn", LeakyRNNCell, description="leaky vanilla RNN", unit_separable=True,
               options={"form": "rate", "alpha": 1.0, "activation": "tanh", "dale": None, "init": "normal"})
CELLS.register("gru", GRUCell, description="gated recurrent unit (torch layout)", unit_separable=True)
CELLS.register("lstm", LSTMCell, description="long short-term memory (torch layout)", unit_separable=True)


class _KindsView(Mapping):
    """``kind -> default options``, read from :data:`CELLS` (kept for code written before the registry)."""

    def __getitem__(self, kind):
        return dict(CELLS[kind].capabilities["options"])

    def __iter__(self):
        return iter(CELLS)

    def __len__(self):
        return len(CELLS)


KINDS = _KindsView()



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
        Seeds the parameter initialisation (``None``: fresh OS entropy, as everywhere in the package; the
        model then cannot be rebuilt from its config).
    dtype : {"float32", "float64"}
    """
    if kind not in CELLS:
        raise UnknownNameError(f"unknown model kind {kind!r}; known kinds: {sorted(CELLS)}")
    for name, value in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive int, got {value!r}")
    allowed = {**_COMMON, **CELLS[kind].capabilities["options"]}
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
        self._config = cfg
        gen = torch_generator(cfg["seed"])  # None: fresh OS entropy (the package's seed convention)
        kind, n_in, H = cfg["kind"], cfg["n_in"], cfg["n_hidden"]
        self.cell: RecurrentCell
        cell_class: type[RecurrentCell] = CELLS[kind].factory  # type: ignore[assignment]  # entries are cell classes
        self.cell = cell_class.from_model_config(n_in, H, cfg, gen)
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
        states = self.cell.run_sequence(x, z0, noise_std=sigma, generator=generator, full_state=full_state)
        outputs = self.readout(states[..., self.cell.output_slice])
        return outputs, states

    def extra_repr(self):
        return f"initial_state={self._config['initial_state']!r}, noise_std={self.noise_std}"
