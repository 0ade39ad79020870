"""Input handling shared by the analyses: checkpoint sequences, models, evaluation batches.

A *checkpoint sequence* is any of

* a run directory written by :func:`neurokpflow.training.train` (its ``checkpoints/`` are used);
* a sequence of checkpoint file paths (loaded with :func:`neurokpflow.training.load_checkpoint`);
* a sequence of ``(step, model)`` pairs, or a mapping ``{step: model}`` (models in memory);

where a *model* is anything with a recurrent ``.cell`` (and a linear ``.readout`` for the loss).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ..errors import InputError, InputTypeError, MissingFileError

__all__ = ["Checkpoint", "resolve_checkpoints", "architecture", "check_model", "check_batch", "batch_fingerprint"]


@dataclass
class Checkpoint:
    """One point of a training run: its optimiser ``step``, the ``model`` and where it came from."""

    step: int
    model: object
    source: str
    task_spec: dict | None = None


def _is_path(x) -> bool:
    return isinstance(x, (str, os.PathLike))


def check_model(model, arg: str = "model"):
    """Raise a ``TypeError`` unless ``model`` has a recurrent ``.cell`` with parameters."""
    cell = getattr(model, "cell", None)
    if not isinstance(cell, torch.nn.Module):
        raise InputTypeError(f"{arg} must be a model with a recurrent .cell (e.g. neurokpflow.models.make(...)), "
                        f"got {type(model).__name__}")
    if next(cell.parameters(), None) is None:
        raise InputError(f"{arg}.cell has no parameters; the KPFlow operators need recurrent parameters")
    return model


def architecture(model) -> str:
    """A JSON signature of a model's architecture (not its parameter values).

    Models built by :func:`neurokpflow.models.make` are described by their ``config`` without
    the seed; other models by their cell and readout classes and parameter shapes.
    """
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        return json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
    parts = {"cell": type(model.cell).__name__,
             "cell_parameters": [[n, list(p.shape)] for n, p in model.cell.named_parameters()]}
    readout = getattr(model, "readout", None)
    if readout is not None:
        parts["readout"] = [[n, list(p.shape)] for n, p in readout.named_parameters()]
    return json.dumps(parts, sort_keys=True)


def _step_from_name(path: Path):
    stem = path.stem
    if stem.startswith("step_") and stem[5:].isdigit():
        return int(stem[5:])
    return None


def resolve_checkpoints(checkpoints, arg: str = "checkpoints") -> list:
    """Turn a checkpoint sequence (module docstring) into sorted :class:`Checkpoint` objects.

    Every model is loaded and checked to share one architecture, so that a mixed sequence is
    refused before any computation starts.
    """
    from .. import training

    if _is_path(checkpoints):
        folder = Path(checkpoints)
        if folder.is_file():
            raise MissingFileError(f"{arg}={str(folder)!r} is not a directory; pass a run directory, a list of "
                                   "checkpoint files or (step, model) pairs")
        checkpoints = training.run_checkpoints(folder)  # the one listing of a run folder, with its errors
    if isinstance(checkpoints, Mapping):
        checkpoints = list(checkpoints.items())
    if isinstance(checkpoints, (torch.nn.Module,)) or hasattr(checkpoints, "cell"):
        raise InputTypeError(f"{arg} must be a sequence of checkpoints; for a single model pass [(step, model)]")
    try:
        items = list(checkpoints)
    except TypeError:
        raise InputTypeError(f"{arg} must be a run directory, a sequence of checkpoint paths or of (step, model) "
                        f"pairs, got {type(checkpoints).__name__}") from None
    if not items:
        raise InputError(f"{arg} is empty")
    out = []
    for k, item in enumerate(items):
        if _is_path(item):
            model, info = training.load_checkpoint(item)
            out.append(Checkpoint(int(info["step"]), model, str(item), info.get("task_spec")))
        elif isinstance(item, tuple) and len(item) == 2:
            step, model = item
            if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
                raise InputTypeError(f"{arg}[{k}]: the step of a (step, model) pair must be an int, got {step!r}")
            check_model(model, f"{arg}[{k}] model")
            out.append(Checkpoint(int(step), model, f"memory:{k}"))
        else:
            raise InputTypeError(f"{arg}[{k}] must be a checkpoint path or a (step, model) pair, got "
                            f"{type(item).__name__}")
    reference = architecture(out[0].model)
    for c in out[1:]:
        if architecture(c.model) != reference:
            raise InputError(f"{arg} mixes architectures: step {out[0].step} ({out[0].source}) is {reference} but "
                             f"step {c.step} ({c.source}) is {architecture(c.model)}; analyse one run at a time")
    steps = [c.step for c in out]
    dup = sorted({s for s in steps if steps.count(s) > 1})
    if dup:
        raise InputError(f"{arg} holds several checkpoints for step(s) {dup}; each step must appear once")
    return sorted(out, key=lambda c: c.step)


def check_batch(batch, model, arg: str = "batch"):
    """Validate an evaluation batch against a model: tensors, shapes and device.

    Returns ``(inputs, targets, mask)``; ``targets``/``mask`` may be ``None`` when absent.
    """
    inputs = getattr(batch, "inputs", None)
    if not isinstance(inputs, torch.Tensor):
        raise InputTypeError(f"{arg} must be a task batch with .inputs/.targets/.mask (neurokpflow.tasks), got "
                        f"{type(batch).__name__}")
    if inputs.dim() != 3:
        raise InputError(f"{arg}.inputs must have shape [trial, time, input], got {tuple(inputs.shape)}")
    targets, mask = getattr(batch, "targets", None), getattr(batch, "mask", None)
    p = next(model.cell.parameters())
    for name, t in (("inputs", inputs), ("targets", targets), ("mask", mask)):
        if t is not None and t.device != p.device:
            raise InputError(f"{arg}.{name} is on device {t.device} but the model is on {p.device}; move the batch "
                             f"with {arg}.to({str(p.device)!r}) (or the model to {t.device})")
    n_in = getattr(model.cell, "input_size", inputs.shape[-1])
    if inputs.shape[-1] != n_in:
        raise InputError(f"{arg}.inputs has {inputs.shape[-1]} input channels but the model expects {n_in}")
    if mask is None and targets is not None:
        mask = torch.ones_like(targets)
    if targets is not None and targets.shape[:2] != inputs.shape[:2]:
        raise InputError(f"{arg}.targets has shape {tuple(targets.shape)}, which does not match the inputs "
                         f"{tuple(inputs.shape)} in (trial, time)")
    return inputs, targets, mask


def batch_fingerprint(*tensors) -> str:
    """SHA-1 of the tensors' values (identifies the evaluation data of a saved analysis)."""
    h = hashlib.sha1()
    for t in tensors:
        if t is None:
            h.update(b"none")
            continue
        a = t.detach().cpu().contiguous().numpy()
        h.update(str(a.shape).encode())
        h.update(str(a.dtype).encode())
        h.update(a.tobytes())
    return h.hexdigest()
