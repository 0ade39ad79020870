"""Run folders: build the task and model of a ``train`` command, and walk a run's checkpoints.

A run folder (written by :func:`neurokpflow.training.train`) holds ``checkpoints/step_*.pt``,
``log.nc`` and, when made by the command line, ``run.json`` (the command's settings).
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import EXIT_MISSING, EXIT_UNUSABLE, CLIError
from .._io import atomic_write
from .._runtime import torch_threads

__all__ = ["torch_threads", "build_task", "build_model", "run_checkpoints", "models_over_training", "write_run_config",
           "RUN_CONFIG"]

RUN_CONFIG = "run.json"




def build_task(names, dt=None, **options):
    """One task (a name) or a mix (several names; one rule input per task, mixed batches)."""
    from .. import tasks

    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise CLIError("give at least one task name (see 'neurokpflow train --help')")
    if dt is not None:
        options["dt"] = dt
    built = []
    for name in names:
        if name not in tasks.known_tasks():
            raise CLIError(f"unknown task {name!r}; known tasks: {', '.join(tasks.known_tasks())}")
        built.append(tasks.make(name, **options))
    return built[0] if len(built) == 1 else tasks.mix(built)


def build_model(kind, task, hidden, seed, **options):
    """A model whose input/output sizes fit ``task``; ``seed`` fixes its initial parameters."""
    from .. import models

    if kind not in models.KINDS:
        raise CLIError(f"unknown model kind {kind!r}; choose one of {', '.join(sorted(models.KINDS))}")
    return models.make(kind, task.n_inputs, int(hidden), task.n_outputs, seed=int(seed), **options)


def write_run_config(out_dir, settings: dict) -> Path:
    """Save the command's settings as ``run.json`` (atomic)."""
    return atomic_write(Path(out_dir) / RUN_CONFIG, json.dumps(settings, indent=2, sort_keys=True, default=str))


def run_checkpoints(run_dir):
    """The checkpoint paths of ``run_dir`` in step order; a clear error when there are none."""
    from ..training import list_checkpoints

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise CLIError(f"run folder {run_dir} does not exist (create one with 'neurokpflow train --out {run_dir}')",
                       EXIT_MISSING)
    if not run_dir.is_dir():
        raise CLIError(f"{run_dir} is a file, not a run folder", EXIT_UNUSABLE)
    found = list_checkpoints(run_dir)
    if not found:
        raise CLIError(f"{run_dir} holds no checkpoints (expected {run_dir / 'checkpoints'}/step_*.pt written by "
                       f"'neurokpflow train')", EXIT_UNUSABLE)
    return found


def models_over_training(run_dir, include_initial=True, every=1):
    """``[(step, model), ...]`` along a run, CPU models in eval mode.

    The trainer saves its first checkpoint after ``checkpoint_every`` steps; with
    ``include_initial`` the untrained network (step 0) is rebuilt from the saved model config,
    whose seed fixes the initial parameters.  ``every`` keeps every k-th checkpoint (the last one
    always).  The task of the run is returned alongside: ``(pairs, task)``.
    """
    from .. import models, tasks
    from ..training import load_checkpoint

    paths = run_checkpoints(run_dir)
    if every < 1:
        raise CLIError(f"--every must be >= 1, got {every}")
    chosen = paths[::every]
    if chosen[-1] != paths[-1]:
        chosen.append(paths[-1])
    pairs = []
    info = None
    for path in chosen:
        model, info = load_checkpoint(path)
        pairs.append((info["step"], model))
    task = tasks.from_spec(info["task_spec"])
    if include_initial and pairs[0][0] > 0:
        config = info["model_config"]
        if config.get("seed") is None:
            raise CLIError(f"run {run_dir} has no step-0 checkpoint and its model has no seed, so the untrained "
                           "network cannot be rebuilt; train with a seed", EXIT_UNUSABLE)
        initial = models.from_config(config).eval()
        pairs.insert(0, (0, initial))
    return pairs, task
