"""The :class:`Batch` container every task returns.

Time convention: step ``t`` covers ``[t·dt, (t+1)·dt)``; ``batch.times[t] = t·dt`` (seconds).
``inputs[:, t]`` is what the network receives at step ``t`` and a model's state at index ``t``
is the state *after* consuming it.  Trials of different lengths share one batch by padding
at the end: padded steps have zero inputs, targets and mask and the epoch label ``"pad"``;
``meta["n_steps"]`` holds each trial's own length.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from ..errors import InputError

__all__ = ["Batch", "PAD_EPOCH"]

#: epoch label of the padding appended to trials shorter than their batch
PAD_EPOCH = "pad"


def _pad_time(a, n_steps, fill):
    """Pad the time axis (axis 1) of a numpy array or torch tensor at the end."""
    extra = n_steps - a.shape[1]
    if extra == 0:
        return a
    if isinstance(a, torch.Tensor):
        pad = torch.full((a.shape[0], extra, *a.shape[2:]), fill, dtype=a.dtype)
        return torch.cat([a, pad], dim=1)
    return np.concatenate([a, np.full((a.shape[0], extra, *a.shape[2:]), fill, dtype=a.dtype)], axis=1)


@dataclass(frozen=True)
class Batch:
    """A batch of trials.

    Attributes
    ----------
    inputs : torch.Tensor, float32 ``[B, T, I]``
    targets : torch.Tensor, float32 ``[B, T, O]``
    mask : torch.Tensor, float32 ``[B, T, O]``
        Loss weight per trial, step and output channel (0 on padding).
    meta : dict of str -> numpy array of length ``B``
        Per-trial metadata: ``task`` (name), ``condition`` (index in the task's test grid or
        sample order), ``stimulus_angle`` / ``response_angle`` (radians, NaN when absent),
        ``n_steps`` (the trial's own length) and, for every epoch ``e``, ``e_start`` /
        ``e_stop`` (step indices, half-open; -1 when the trial has no such epoch); tasks built
        from explicit parameters add ``param.<name>`` entries (see :attr:`params`).
    epochs : numpy array of str ``[B, T]``
        Per-step epoch labels (``"pad"`` after a trial's end).
    dt : float
        Time step in seconds.
    input_names, output_names : tuple of str
        Channel names.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    meta: dict
    epochs: np.ndarray
    dt: float
    input_names: tuple = field(default=())
    output_names: tuple = field(default=())

    def __post_init__(self):
        B, T = self.inputs.shape[:2]
        if self.targets.shape[:2] != (B, T) or self.mask.shape != self.targets.shape:
            raise InputError(f"inconsistent batch shapes: inputs {tuple(self.inputs.shape)}, targets "
                             f"{tuple(self.targets.shape)}, mask {tuple(self.mask.shape)}")
        if self.epochs.shape != (B, T):
            raise InputError(f"epochs must have shape {(B, T)}, got {self.epochs.shape}")
        for key, value in self.meta.items():
            if len(value) != B:
                raise InputError(f"meta[{key!r}] has {len(value)} entries for {B} trials")

    @property
    def n_trials(self) -> int:
        return self.inputs.shape[0]

    @property
    def n_steps(self) -> int:
        return self.inputs.shape[1]

    def __len__(self) -> int:
        return self.n_trials

    @property
    def times(self) -> np.ndarray:
        """Start time of every step in seconds, ``t·dt``."""
        return np.arange(self.n_steps) * self.dt

    @property
    def params(self) -> dict:
        """Per-trial task parameters (``meta["param.<name>"]``) as ``{name: array}``, leaving out
        those that no trial of the batch uses (all NaN); ``{}`` for tasks without them.
        For a single task, ``task.trials(batch.params)`` rebuilds the batch without noise."""
        out = {}
        for key, value in self.meta.items():
            if key.startswith("param."):
                value = np.asarray(value, dtype=np.float64)
                if not np.all(np.isnan(value)):
                    out[key[len("param."):]] = value.copy()
        return out

    @property
    def tasks(self) -> list:
        """Task names present, in order of first appearance."""
        return list(dict.fromkeys(self.meta["task"].tolist()))

    def to(self, device) -> "Batch":
        """A copy with the tensors on ``device`` (metadata stays in numpy)."""
        return Batch(self.inputs.to(device), self.targets.to(device), self.mask.to(device), self.meta,
                     self.epochs, self.dt, self.input_names, self.output_names)

    def __getitem__(self, index) -> "Batch":
        """Select trials (an int array, boolean mask or slice), keeping the time axis."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(self.n_trials)[index]
        t_idx = torch.as_tensor(idx, dtype=torch.long)
        return Batch(self.inputs[t_idx.to(self.inputs.device)], self.targets[t_idx.to(self.targets.device)],
                     self.mask[t_idx.to(self.mask.device)], {k: v[idx] for k, v in self.meta.items()},
                     self.epochs[idx], self.dt, self.input_names, self.output_names)

    @staticmethod
    def concat(batches) -> "Batch":
        """Stack trials of several batches, padding shorter ones at the end.

        All batches must share ``dt`` and their channel layout.  Metadata keys missing from some
        batches (tasks of different kinds in one mix) are filled for those trials with -1 (epoch
        boundaries and other integer keys) or NaN (float keys, e.g. ``param.*``).
        """
        batches = list(batches)
        if not batches:
            raise InputError("Batch.concat needs at least one batch")
        first = batches[0]
        for b in batches[1:]:
            if not np.isclose(b.dt, first.dt):
                raise InputError(f"cannot concatenate batches with dt {first.dt} and {b.dt}")
            if b.inputs.shape[2] != first.inputs.shape[2] or b.targets.shape[2] != first.targets.shape[2]:
                raise InputError("cannot concatenate batches with different input/output sizes: "
                                 f"{first.input_names} vs {b.input_names}")
        T = max(b.n_steps for b in batches)
        keys = list(dict.fromkeys(k for b in batches for k in b.meta))
        meta = {}
        for k in keys:
            parts = []
            for b in batches:
                if k in b.meta:
                    parts.append(np.asarray(b.meta[k]))
                elif k.endswith("_start") or k.endswith("_stop"):
                    parts.append(np.full(b.n_trials, -1, dtype=np.int64))
                else:  # a per-trial quantity another task does not have: NaN (float) or -1 (int)
                    kind = next(np.asarray(o.meta[k]).dtype.kind for o in batches if k in o.meta)
                    if kind not in "fiu":
                        raise InputError(f"meta key {k!r} is missing from some of the batches and holds "
                                         f"non-numeric values; give every batch a {k!r} entry")
                    parts.append(np.full(b.n_trials, np.nan if kind == "f" else -1,
                                         dtype=np.float64 if kind == "f" else np.int64))
            meta[k] = np.concatenate(parts)
        cat = lambda name, fill: torch.cat([_pad_time(getattr(b, name), T, fill) for b in batches])
        epochs = np.concatenate([_pad_time(b.epochs.astype(object), T, PAD_EPOCH) for b in batches]).astype(str)
        return Batch(cat("inputs", 0.0), cat("targets", 0.0), cat("mask", 0.0), meta, epochs, first.dt,
                     first.input_names, first.output_names)

    def __repr__(self):
        return (f"Batch(trials={self.n_trials}, steps={self.n_steps}, inputs={self.inputs.shape[2]}, "
                f"outputs={self.targets.shape[2]}, dt={self.dt}, tasks={self.tasks})")
