"""Training protocols as validated options objects: the package's own and the KPFlow reference's.

A :class:`Protocol` fixes everything about how a Memory-Pro tanh RNN is trained that the KPFlow
paper's collapse figures could depend on — the data (fresh trials every step, or a fixed noisy
set), batch size, optimiser and learning rate, gradient-norm clip, stopping loss, the RNN's
initialisation and leak, and the task's period lengths.  It turns into the three things the
package already takes::

    proto = training.REFERENCE.replace(dataset_size=1000)   # a reduced size
    task = proto.task()
    model = models.make("rnn", task.n_inputs, 64, task.n_outputs, **proto.model_options(g=1.0), seed=0)
    training.train(model, task, proto.max_steps, "runs/ref", **proto.train_options())

``REFERENCE`` follows the reference's experiment script of the poster's time
(``examples/example_1/train.py`` of the KPFlow repository at commit 504414c, 1 August 2025, the
example the figures' effective-rank-over-GD plot comes from):

* data: one fixed set of 5000 noisy Memory-Pro trials (periods of 30 steps, T = 90, input noise
  SD 0.1·√2), batches of 200;
* Adam, learning rate 1e-3, MSE averaged over all entries, no recurrent noise;
* gradient-norm clip 1e-4 (``clip_grad_norm_(..., .0001)`` before every step);
* stop when the mean of the last loss logged on a 20-step grid and the current loss falls below
  1e-3, at most 10 000 steps (here the rule is checked every 20 steps, not every step);
* torch's ``nn.RNN`` (tanh, α = 1, i.e. no leak) with its default uniform initialisation and
  the recurrent weight multiplied by ``g`` (``init="torch"`` of :class:`LeakyRNNCell`), H = 256.

Later versions of the script changed two of these: on 25 August 2025 (f45f8cf) the batch was the
whole set (5000) and the clip line was commented out; from October 2025 the batch is 500 and the
clip an option (default none).  ``REFERENCE.replace(batch_size=5000, clip_grad_norm=None)`` gives
the former.

The reference draws each batch as the first 200 trials of a fresh shuffle of the set (a new data
loader iterator every step); ``REFERENCE`` does the same (``batch_draw="step"``).  With
``batch_draw="epoch"`` the set is instead shuffled once per epoch and walked through, so every
trial is seen once per 25 steps.  The two are the same when the batch is the whole set.

The model has torch's parameterisation too: ``init="torch"`` keeps ``nn.RNN``'s two bias vectors
(``b_ih``, ``b_hh``), so Adam and the clipped norm see the same parameters as in the reference.

Whether a run leaves the loss plateaus and learns within the 10 000 steps depends on the seed,
in the reference code as here (``benchmarks/learning_by_seed.py``, docs/reproducing-kpflow.md §4).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..models.cells import INITS
from ..errors import InputError, InputTypeError

__all__ = ["Protocol", "REFERENCE", "PACKAGE", "PROTOCOLS"]


@dataclass(frozen=True)
class Protocol:
    """How a Memory-Pro RNN is trained (see the module docstring); every field is validated.

    Fields
    ------
    name : label used in logs and file names.
    dataset_size : trials in the fixed noisy training set, or ``None`` for fresh trials every step.
    batch_size : trials per optimiser step (``<= dataset_size``).
    batch_draw : with a fixed set, ``"epoch"`` (each trial once per epoch) or ``"step"`` (distinct
        trials drawn afresh every step, as the reference's data loader does).
    optimizer, lr : ``"adam"`` or ``"sgd"`` and its learning rate.
    clip_grad_norm : maximum global gradient L2 norm, or ``None`` (no clip).
    target_loss : stop when the two-point mean of the logged loss falls below it, or ``None``.
    log_every : steps between logged losses (the stopping rule's grid).
    max_steps : optimiser steps when the loss target is not reached.
    checkpoint_every : steps between checkpoints.
    init : RNN initialisation, ``"torch"`` (reference) or ``"normal"`` (package default).
    alpha : RNN leak ``dt/τ``; 1 means no leak.
    period : steps of each of the three Memory-Pro periods (T = 3·period).
    seed : seed of the data (and of the batches).
    """

    name: str = "package"
    dataset_size: int | None = None
    batch_size: int = 64
    batch_draw: str = "epoch"
    optimizer: str = "adam"
    lr: float = 1e-3
    clip_grad_norm: float | None = None
    target_loss: float | None = None
    log_every: int = 10
    max_steps: int = 3000
    checkpoint_every: int = 100
    init: str = "normal"
    alpha: float = 1.0
    period: int = 30
    seed: int = 0

    def __post_init__(self):
        def positive_int(key):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"Protocol.{key} must be a positive int, got {v!r}")

        def positive_or_none(key):
            v = getattr(self, key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
                raise InputError(f"Protocol.{key} must be a positive number or None, got {v!r}")

        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"Protocol.name must be a non-empty string, got {self.name!r}")
        for key in ("batch_size", "log_every", "max_steps", "checkpoint_every", "period"):
            positive_int(key)
        if self.dataset_size is not None:
            positive_int("dataset_size")
            if self.batch_size > self.dataset_size:
                raise InputError(f"Protocol.batch_size={self.batch_size} exceeds dataset_size={self.dataset_size}; "
                                 "lower batch_size or raise dataset_size")
        if self.batch_draw not in ("epoch", "step"):
            raise InputError(f"Protocol.batch_draw must be 'epoch' or 'step', got {self.batch_draw!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise InputError(f"Protocol.optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise InputError(f"Protocol.lr must be a positive number, got {self.lr!r}")
        positive_or_none("clip_grad_norm")
        positive_or_none("target_loss")
        if self.init not in INITS:
            raise InputError(f"Protocol.init must be one of {INITS}, got {self.init!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha <= 1:
            raise InputError(f"Protocol.alpha (= dt/tau) must lie in (0, 1], got {self.alpha!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise InputError(f"Protocol.seed must be an int, got {self.seed!r}")

    def replace(self, **changes) -> "Protocol":
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputTypeError(f"Protocol has no field(s) {sorted(unknown)}; fields: "
                            f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def train_options(self) -> dict:
        """Keyword options of :func:`neurokpflow.training.train` for this protocol."""
        return {"dataset_size": self.dataset_size, "batch_size": self.batch_size, "batch_draw": self.batch_draw,
                "optimizer": self.optimizer,
                "lr": float(self.lr), "clip_grad_norm": self.clip_grad_norm, "target_loss": self.target_loss,
                "log_every": self.log_every, "checkpoint_every": self.checkpoint_every, "noise": False,
                "mask_mode": "pre_square", "seed": self.seed}

    def model_options(self, g: float = 1.0) -> dict:
        """Options of ``models.make("rnn", ...)``: the tanh RNN of the KPFlow paper at initial scale ``g``."""
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not g >= 0:
            raise InputError(f"g must be a number >= 0, got {g!r}")
        return {"form": "rate", "activation": "tanh", "alpha": float(self.alpha), "init": self.init, "g": float(g),
                "bias": True, "readout_bias": True, "noise_std": 0.0}

    def task(self):
        """The KPFlow Memory-Pro task with this protocol's periods (T = 3·period)."""
        from ..tasks.kpflow import KPFlowMemoryTask
        return KPFlowMemoryTask("kpflow_memory_pro", T_stim=self.period, T_memory=self.period,
                                T_response=self.period)


#: the KPFlow reference's paper-era protocol (module docstring)
REFERENCE = Protocol(name="reference", dataset_size=5000, batch_size=200, batch_draw="step", optimizer="adam",
                     lr=1e-3, clip_grad_norm=1e-4, target_loss=1e-3, log_every=20, max_steps=10_000, checkpoint_every=100,
                     init="torch", alpha=1.0, period=30)
#: the package's default trainer settings on the same task (fresh trials every step)
PACKAGE = Protocol(name="package")
PROTOCOLS = {"reference": REFERENCE, "package": PACKAGE}
