"""Run folders: what ``neurokpflow train`` (and the demo) starts, and the models along a finished run.

A run folder holds ``checkpoints/step_*.pt`` and ``log.nc`` (written by :func:`train`) and
``run.json``, the :class:`RunSpec` it was started from.

>>> spec = RunSpec(tasks=("memory_pro",), model="gru", hidden=32, steps=200)   # doctest: +SKIP
>>> result = start_run(spec, "runs/gru")                                        # doctest: +SKIP
>>> pairs, task = models_over_training("runs/gru")    # [(0, untrained), (50, ...), ...]  # doctest: +SKIP
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from .. import models, tasks
from .._io import atomic_write
from .._validation import Interval, Options, OptionsMixin, Rule
from ..errors import CheckpointError, InputError, MissingFileError, OutputExistsError, UnknownNameError
from .checkpoint import list_checkpoints, load_checkpoint
from .trainer import TrainResult, resume, train

__all__ = ["RunSpec", "start_run", "resume_run", "build_task", "build_model", "write_run_config",
           "run_checkpoints", "models_over_training", "RUN_CONFIG"]

#: name of the settings file in a run folder
RUN_CONFIG = "run.json"
_COUNT = Rule(Interval(numbers.Integral, 1, None))


@dataclass(frozen=True)
class RunSpec(OptionsMixin):
    """A training run as ``neurokpflow train`` starts it (saved as ``run.json`` in the run folder).

    ``tasks``: one name or several (a mix, one rule input per task); ``model``: a kind of
    :data:`neurokpflow.models.KINDS`; ``hidden`` units; ``tau`` (s): the leaky RNN's time constant,
    ``alpha = dt / tau`` clipped to 1 (GRU/LSTM ignore it); ``dt`` (s, ``None``: the task's);
    ``steps``, ``batch_size``, ``lr``, ``checkpoint_every``, ``seed`` as for
    :class:`~neurokpflow.training.TrainConfig`; ``task_options``: keywords of the task
    constructors; ``eval_grid``: options of ``task.test_grid`` for the trainer's evaluations.
    """

    tasks: tuple = ("memory_pro",)
    model: str = "rnn"
    hidden: int = 64
    tau: float = 0.1
    dt: float | None = None
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    checkpoint_every: int = 50
    seed: int = 0
    task_options: Mapping = field(default_factory=dict)
    eval_grid: Mapping = field(default_factory=dict)

    RULES: ClassVar[dict] = {
        "model": Rule(Options(*sorted(models.KINDS))),
        "hidden": _COUNT, "steps": _COUNT, "batch_size": _COUNT, "checkpoint_every": _COUNT,
        "tau": Rule(Interval(low=0, closed="neither")),
        "dt": Rule((None, Interval(low=0, closed="neither"))),
        "lr": Rule(Interval(low=0)),
        "seed": Rule(Interval(numbers.Integral, 0, None)),
    }

    def __post_init__(self):
        names = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        object.__setattr__(self, "tasks", names)
        super().__post_init__()
        if not names:
            raise InputError("tasks=(): expected at least one task name; see neurokpflow.tasks.known_tasks()")


def build_task(names, dt=None, **options):
    """One task (a name) or a mix (several names; one rule input per task, mixed batches)."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise InputError("give at least one task name (see neurokpflow.tasks.known_tasks())")
    if dt is not None:
        options["dt"] = dt
    built = []
    for name in names:
        if name not in tasks.known_tasks():
            raise UnknownNameError(f"unknown task {name!r}; known tasks: {', '.join(tasks.known_tasks())}")
        built.append(tasks.make(name, **options))
    return built[0] if len(built) == 1 else tasks.mix(built)


def build_model(kind, task, hidden, seed, **options):
    """A model whose input/output sizes fit ``task``; ``seed`` fixes its initial parameters."""
    if kind not in models.KINDS:
        raise UnknownNameError(f"unknown model kind {kind!r}; choose one of {', '.join(sorted(models.KINDS))}")
    return models.make(kind, task.n_inputs, int(hidden), task.n_outputs, seed=int(seed), **options)


def write_run_config(out_dir, settings: dict) -> Path:
    """Save a run's settings as ``run.json`` (atomic)."""
    return atomic_write(Path(out_dir) / RUN_CONFIG, json.dumps(settings, indent=2, sort_keys=True, default=str))


def start_run(spec: RunSpec, out_dir, *, device: str = "auto", progress: bool = True) -> TrainResult:
    """Train a fresh model described by ``spec`` into ``out_dir`` (which must not hold checkpoints yet)."""
    task = build_task(spec.tasks, dt=spec.dt, **dict(spec.task_options))
    options = {"alpha": min(1.0, task.dt / spec.tau)} if spec.model == "rnn" else {}
    model = build_model(spec.model, task, spec.hidden, spec.seed, **options)
    out_dir = Path(out_dir)
    if list_checkpoints(out_dir):
        raise OutputExistsError(f"{out_dir} already holds a run; resume it (neurokpflow train --resume) or choose "
                                "another folder")
    settings = {**spec.to_dict(), "dt": task.dt}
    settings.pop("eval_grid")
    settings["model"] = spec.model
    write_run_config(out_dir, settings)
    return train(model, task, spec.steps, out_dir, batch_size=spec.batch_size, lr=spec.lr,
                 checkpoint_every=spec.checkpoint_every, seed=spec.seed, device=device, progress=progress,
                 eval_grid=dict(spec.eval_grid))


def resume_run(out_dir, steps=None, *, device: str = "auto", progress: bool = True) -> TrainResult:
    """Continue the run in ``out_dir`` from its last checkpoint (up to ``steps`` in total)."""
    run_checkpoints(out_dir)  # clear errors for a missing folder or a folder without checkpoints
    return resume(out_dir, steps=steps, device=device, progress=progress)


def run_checkpoints(run_dir) -> list:
    """The checkpoint paths of ``run_dir`` in step order; a clear error when there are none."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise MissingFileError(2, f"run folder {run_dir} does not exist (create one with neurokpflow train --out "
                                  f"{run_dir})", str(run_dir))
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run folder")
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} holds no checkpoints (expected {run_dir / 'checkpoints'}/step_*.pt written "
                              "by neurokpflow train)")
    return found


def models_over_training(run_dir, include_initial: bool = True, every: int = 1) -> tuple[list, Any]:
    """``([(step, model), ...], task)`` along a run, CPU models in eval mode.

    The trainer saves its first checkpoint after ``checkpoint_every`` steps; with
    ``include_initial`` the untrained network (step 0) is rebuilt from the saved model config,
    whose seed fixes the initial parameters.  ``every`` keeps every k-th checkpoint (the last one
    always).
    """
    paths = run_checkpoints(run_dir)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InputError(f"every={every!r}: expected an integer >= 1; e.g. every=2 keeps every second checkpoint")
    chosen = paths[::every]
    if chosen[-1] != paths[-1]:
        chosen.append(paths[-1])
    pairs = []
    info: dict = {}
    for path in chosen:
        model, info = load_checkpoint(path)
        pairs.append((info["step"], model))
    task = tasks.from_spec(info["task_spec"])
    if include_initial and pairs[0][0] > 0:
        config = info["model_config"]
        if config.get("seed") is None:
            raise CheckpointError(f"run {run_dir} has no step-0 checkpoint and its model has no seed, so the "
                                  "untrained network cannot be rebuilt; train with a seed")
        pairs.insert(0, (0, models.from_config(config).eval()))
    return pairs, task
