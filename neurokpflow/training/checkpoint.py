"""Checkpoint files: atomic writes, listing, loading with clear errors.

A run directory holds ``checkpoints/step_XXXXXXXX.pt`` (one per saved step) and ``log.nc``.
Files are written to a hidden temporary file in the same directory and renamed into place
(``os.replace``), so a crash never leaves a partial file under a checkpoint name.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

from .. import models

__all__ = ["CheckpointError", "CheckpointMismatchError", "list_checkpoints", "load_checkpoint",
           "read_checkpoint", "atomic_write", "checkpoint_path"]

FORMAT = "neurokpflow-checkpoint"
VERSION = 1
_REQUIRED = ("format", "version", "step", "model_state", "optimizer_state", "config", "log", "rng")
_NAME = re.compile(r"^step_(\d{8,})\.pt$")


from .._io import atomic_write
from ..errors import CheckpointError


class CheckpointMismatchError(CheckpointError):
    """A checkpoint does not fit the model it is being loaded into."""


def checkpoint_path(out_dir, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"step_{step:08d}.pt"


def list_checkpoints(out_dir) -> list:
    """Checkpoint paths of a run directory, sorted by step (temporary files are ignored)."""
    folder = Path(out_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def read_checkpoint(path) -> dict:
    """The raw checkpoint dictionary, validated; raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/EOFError/UnpicklingError/... on damage
        raise CheckpointError(f"checkpoint {path} is corrupted or partially written ({type(exc).__name__}: "
                              f"{exc}); delete it to fall back to an earlier checkpoint") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a neurokpflow training checkpoint")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it is incomplete or from another version")
    if data["version"] > VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {data['version']}, newer than this "
                              f"neurokpflow understands ({VERSION})")
    return data


def load_checkpoint(path, model=None):
    """Load a checkpoint.

    Returns ``(model, info)``: the model rebuilt from the saved config (or the given ``model``,
    whose config must match) with the saved parameters, in eval mode on the CPU (unless a model
    was given), and ``info`` = ``{"step", "config", "model_config", "task_spec", "train_options",
    "path"}``.  Rebuild the task with ``neurokpflow.tasks.from_spec(info["task_spec"])``.
    """
    data = read_checkpoint(path)
    model_config = data["config"]["model"]
    if model is None:
        model = models.from_config(model_config)
    else:
        theirs = getattr(model, "config", None)
        if theirs is None:
            raise CheckpointMismatchError(f"cannot load {path} into a {type(model).__name__} without a .config")
        diff = {k for k in set(theirs) | set(model_config) if theirs.get(k) != model_config.get(k) and k != "seed"}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {model_config.get(k)!r} vs model {theirs.get(k)!r}" for k in sorted(diff))
            raise CheckpointMismatchError(f"checkpoint {path} was saved from a different architecture ({detail})")
    try:
        model.load_state_dict(data["model_state"])
    except RuntimeError as exc:
        raise CheckpointMismatchError(f"checkpoint {path} does not fit the model's parameters: {exc}") from exc
    model.eval()
    info = {"step": int(data["step"]), "config": data["config"], "model_config": model_config,
            "task_spec": data["config"]["task"], "train_options": data["config"]["train"], "path": Path(path)}
    return model, info
