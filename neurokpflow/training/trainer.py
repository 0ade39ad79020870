"""``train(model, task, steps, out_dir, **options)`` and ``resume(out_dir)``.

Reproducibility: the batch of step ``s`` is ``task.sample(batch_size, seed=SeedSequence([seed, s]))``
and its recurrent noise comes from a generator seeded from ``(seed, s, 1)``, so a run depends only
on its seed, the model's initial parameters and the optimiser state — which is what makes
:func:`resume` continue bit-identically (on the CPU) from any checkpoint.

With ``dataset_size=N`` the trials are instead a fixed noisy set ``task.sample(N, seed=
SeedSequence([seed, 2]))`` drawn once (the KPFlow reference protocol); it is shuffled once per
epoch by a permutation seeded from ``(seed, epoch, 3)`` and cut into ``ceil(N / batch_size)``
consecutive batches (the last one smaller when ``batch_size`` does not divide ``N``), so every
epoch covers the set exactly once and the batch of a step again depends only on ``(seed, step)``.
With ``batch_draw="step"`` every step instead takes the first ``batch_size`` trials of a fresh
permutation seeded from ``(seed, step, 3)``: ``batch_size`` distinct trials drawn uniformly and
independently of every other step, which is what the KPFlow reference's data loader does (a new
shuffled iterator every step).
"""
from __future__ import annotations

import json
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .. import models, tasks as tasks_mod
from .._io import write_netcdf
from .._logging import get_logger
from .._validation import Flag, Interval, Options, OptionsMixin, Rule
from .checkpoint import FORMAT, VERSION, atomic_write, checkpoint_path, list_checkpoints, read_checkpoint
from .loss import MASK_MODES, masked_mse
from ..errors import InputError, InputTypeError, MissingFileError, OutputExistsError

__all__ = ["train", "resume", "TrainConfig", "TrainResult", "DEFAULTS", "evaluate", "batch_indices", "fixed_dataset"]

#: how a batch is drawn from a fixed training set (module docstring)
BATCH_DRAWS = ("epoch", "step")
#: options that only affect how a run executes, not what it computes (not saved)
RUNTIME = {"device": "auto", "progress": True, "callback": None}

LOG_FILE = "log.nc"
log_ = get_logger(__name__)  # (``log`` names the training log in this module)


_POSITIVE_NUMBER_OR_NONE = Rule((None, Interval(low=0, closed="neither")))
_COUNT = Rule(Interval(numbers.Integral, 1, None))


@dataclass(frozen=True)
class TrainConfig(OptionsMixin):
    """What :func:`train` computes (frozen, validated once, saved in every checkpoint and the log).

    ``batch_size``; ``optimizer`` ("adam" | "sgd"), ``lr``, ``momentum`` (SGD only),
    ``weight_decay``; ``clip_grad_norm`` (max global L2 norm of the gradient) and
    ``clip_grad_value`` (every entry to ±value; Yang: 1); ``mask_mode`` (see
    :func:`neurokpflow.training.masked_mse`); ``noise`` (recurrent noise during training, the
    model's ``noise_std``); ``checkpoint_every``; ``eval_every`` (default: ``checkpoint_every``)
    and ``eval_grid`` (options of ``task.test_grid``); ``target_accuracy`` (stop when the minimum
    per-task test-grid accuracy reaches it) and ``target_loss`` (stop when the mean of the previous
    and current logged loss falls below it; KPFlow); ``log_every``; ``seed``; ``dataset_size``
    (``None``: fresh trials every step; N: a fixed noisy set of N trials) and ``batch_draw``
    (with a fixed set: ``"epoch"``, each trial once per epoch, or ``"step"``, a fresh draw).
    """

    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    clip_grad_norm: float | None = None
    clip_grad_value: float | None = None
    mask_mode: str = "pre_square"
    noise: bool = True
    checkpoint_every: int = 100
    eval_every: int | None = None
    eval_grid: Mapping = field(default_factory=dict)
    target_accuracy: float | None = None
    target_loss: float | None = None
    log_every: int = 10
    seed: int = 0
    dataset_size: int | None = None
    batch_draw: str = "epoch"

    RULES: ClassVar[dict] = {
        "batch_size": _COUNT, "checkpoint_every": _COUNT, "log_every": _COUNT,
        "eval_every": Rule((None, Interval(numbers.Integral, 1, None))),
        "dataset_size": Rule((None, Interval(numbers.Integral, 1, None)), "trials in the fixed set, or None"),
        "optimizer": Rule(Options("adam", "sgd")),
        "mask_mode": Rule(Options(*MASK_MODES)),
        "batch_draw": Rule(Options(*BATCH_DRAWS)),
        "lr": Rule(Interval(low=0)),
        "clip_grad_norm": _POSITIVE_NUMBER_OR_NONE, "clip_grad_value": _POSITIVE_NUMBER_OR_NONE,
        "target_loss": _POSITIVE_NUMBER_OR_NONE,
        "target_accuracy": Rule((None, Interval(low=0, high=1))),
        "noise": Rule(Flag()),
        "seed": Rule(Interval(numbers.Integral, 0, None), "training needs a fixed seed (exact resume)"),
    }

    def __post_init__(self):
        super().__post_init__()
        if self.dataset_size is not None and self.batch_size > self.dataset_size:
            raise InputError(f"batch_size={self.batch_size} exceeds dataset_size={self.dataset_size}; lower "
                             "batch_size or raise dataset_size")


#: saved training options and their defaults (the fields of :class:`TrainConfig`)
DEFAULTS = TrainConfig().to_dict()


@dataclass
class TrainResult:
    """What :func:`train` / :func:`resume` return."""

    model: torch.nn.Module
    log: xr.Dataset
    out_dir: Path
    step: int
    stop_reason: str


def _device(choice):
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda' requested but CUDA is not available; use device='auto' or 'cpu'")
    return dev


def _check_options(options):
    """The saved options (a plain dict) of a :class:`TrainConfig` or of its fields as keywords."""
    unknown = set(options) - set(DEFAULTS) - set(RUNTIME) - {"config"}
    if unknown:
        raise InputTypeError(f"unknown training option(s) {sorted(unknown)}; accepted: {sorted({**DEFAULTS, **RUNTIME})}")
    config = TrainConfig.resolve(options.get("config"), {k: v for k, v in options.items() if k in DEFAULTS}, "train")
    return config.to_dict()


def _check_pair(model, task):
    if not isinstance(task, tasks_mod.Task):
        raise InputTypeError(f"task must be a neurokpflow task (tasks.make / tasks.mix), got {type(task).__name__}")
    if not hasattr(model, "cell") or not hasattr(model, "config"):
        raise InputTypeError("model must be built with neurokpflow.models.make (it needs .cell and .config)")
    if (model.n_in, model.n_out) != (task.n_inputs, task.n_outputs):
        raise InputError(f"model maps {model.n_in} inputs to {model.n_out} outputs but task {task.name!r} has "
                         f"{task.n_inputs} inputs and {task.n_outputs} outputs; build the model with "
                         f"models.make(kind, {task.n_inputs}, n_hidden, {task.n_outputs})")


def _optimizer(model, opts):
    if opts["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=opts["lr"], weight_decay=opts["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=opts["lr"], momentum=opts["momentum"],
                           weight_decay=opts["weight_decay"])


def _step_seed(seed, step, stream):
    return np.random.SeedSequence([int(seed), int(step), stream])


def fixed_dataset(task, opts):
    """The fixed training set of a run with ``dataset_size`` (``None`` without one)."""
    if opts.get("dataset_size") is None:
        return None
    return task.sample(opts["dataset_size"], seed=np.random.SeedSequence([int(opts["seed"]), 2]))


def batch_indices(step: int, dataset_size: int, batch_size: int, seed: int, draw: str = "epoch") -> np.ndarray:
    """Trial indices into the fixed set for optimiser step ``step`` (0-based).

    ``draw="epoch"``: epoch ``e`` shuffles the set with a permutation seeded from ``(seed, e, 3)``
    and takes ``ceil(dataset_size / batch_size)`` consecutive slices of it, so each epoch visits
    every trial exactly once.  ``draw="step"``: the first ``batch_size`` entries of a permutation
    seeded from ``(seed, step, 3)`` (distinct trials, drawn afresh every step).  Either way a step's
    batch depends only on ``(seed, step)``.
    """
    if draw not in BATCH_DRAWS:
        raise InputError(f"draw must be one of {BATCH_DRAWS}, got {draw!r}")
    if draw == "step":
        return np.random.default_rng(_step_seed(seed, step, 3)).permutation(dataset_size)[:batch_size]
    per_epoch = -(-dataset_size // batch_size)
    epoch, k = divmod(int(step), per_epoch)
    perm = np.random.default_rng(_step_seed(seed, epoch, 3)).permutation(dataset_size)
    return perm[k * batch_size:(k + 1) * batch_size]


@torch.no_grad()
def evaluate(model, task, batch, mask_mode="pre_square"):
    """Noise-free loss and per-task accuracy of ``model`` on ``batch``: ``(loss, {task: acc})``."""
    was_training = model.training
    model.eval()
    try:
        outputs, _ = model(batch.inputs, full_state=False)
    finally:
        model.train(was_training)
    loss = float(masked_mse(outputs, batch.targets, batch.mask, mask_mode))
    return loss, task.accuracy(outputs, batch)


def _rng_record(opts):
    """What a checkpoint stores about random state: only the scheme.  Every random draw of a run comes
    from ``SeedSequence([seed, step, stream])`` (batches: stream 0, noise: stream 1) through its own
    generators, so a run neither reads nor sets process-global random state, and several runs can
    share a process (or its threads); resuming needs nothing but the step."""
    return {"scheme": "SeedSequence([seed, step, stream])", "seed": opts["seed"]}


class _Log:
    """Training log held in plain lists (saved in every checkpoint, written to ``log.nc``)."""

    def __init__(self, task_names, data=None):
        self.task_names = list(task_names)
        data = data or {}
        self.loss = list(data.get("loss", []))
        self.eval_step = list(data.get("eval_step", []))
        self.eval_loss = list(data.get("eval_loss", []))
        self.accuracy = [list(a) for a in data.get("accuracy", [])]
        self.elapsed = list(data.get("elapsed", []))

    def state(self):
        return {"loss": self.loss, "eval_step": self.eval_step, "eval_loss": self.eval_loss,
                "accuracy": self.accuracy, "elapsed": self.elapsed}

    def dataset(self, attrs):
        acc = np.asarray(self.accuracy, dtype=np.float64).reshape(len(self.eval_step), len(self.task_names))
        return xr.Dataset(
            {"loss": ("step", np.asarray(self.loss, dtype=np.float64), {"long_name": "training loss (masked MSE)"}),
             "eval_loss": ("eval_step", np.asarray(self.eval_loss, dtype=np.float64),
                           {"long_name": "noise-free test-grid loss"}),
             "accuracy": (("eval_step", "task"), acc, {"long_name": "test-grid accuracy (task criterion)"}),
             "elapsed": ("eval_step", np.asarray(self.elapsed, dtype=np.float64), {"units": "s"})},
            coords={"step": np.arange(1, len(self.loss) + 1), "eval_step": np.asarray(self.eval_step, dtype=np.int64),
                    "task": self.task_names},
            attrs=attrs)


def train(model, task, steps: int, out_dir, config: TrainConfig | None = None, **options) -> TrainResult:
    """Train ``model`` on ``task`` for ``steps`` optimiser steps, checkpointing into ``out_dir``.

    Loss: :func:`masked_mse` (``mask_mode``) on batches of ``batch_size`` fresh trials.  What is
    computed is a :class:`TrainConfig` (``config``); its fields may also be given as keywords
    (``train(m, t, 500, out, lr=1e-2)``), which override it.  :class:`neurokpflow.training.Protocol`
    bundles a whole protocol.  Runtime options, not saved: ``device`` ("auto" = CUDA when
    available, or e.g. "cpu"), ``progress`` (tqdm bar with loss and per-task accuracy) and
    ``callback(step, loss, model)`` (called after every step; a truthy return stops the run).

    Checkpoints are written every ``checkpoint_every`` steps and at the end (or early stop);
    the log (``loss`` per step, ``eval_loss``/``accuracy`` per evaluation) is written to
    ``out_dir/log.nc`` with each checkpoint.  ``out_dir`` must not already hold checkpoints
    (use :func:`resume`).  The model is trained in place and returned in the result.
    """
    if not isinstance(steps, int) or steps < 1:
        raise InputError(f"steps must be a positive int, got {steps!r}")
    _check_pair(model, task)
    opts = _check_options({**options, "config": config})
    out_dir = Path(out_dir)
    existing = list_checkpoints(out_dir)
    if existing:
        raise OutputExistsError(f"{out_dir} already holds checkpoints (last: {existing[-1].name}); call "
                              f"neurokpflow.training.resume({str(out_dir)!r}) to continue or choose a new out_dir")
    out_dir.mkdir(parents=True, exist_ok=True)
    runtime = {**RUNTIME, **{k: v for k, v in options.items() if k in RUNTIME}}
    device = _device(runtime["device"])
    model.to(device)
    optimizer = _optimizer(model, opts)
    log_.info("training %s on %s for %d steps on %s into %s", model.kind, task.name if hasattr(task, "name") else
              type(task).__name__, steps, device, out_dir)
    return _run(model, task, optimizer, opts, steps, 0, _Log(task.task_names), out_dir, device, runtime, 0.0)


def resume(out_dir, steps: int | None = None, **runtime) -> TrainResult:
    """Continue the run in ``out_dir`` from its last checkpoint, exactly as if uninterrupted.

    ``steps`` raises the total step count (default: the original one; a run that stopped early
    is then returned as it is).  Only the runtime
    options ``device``, ``progress`` and ``callback`` may be given.  Raises
    ``FileNotFoundError`` when there is no checkpoint (it never starts from scratch) and
    :class:`CheckpointError` when the last checkpoint is damaged.
    """
    unknown = set(runtime) - set(RUNTIME)
    if unknown:
        raise InputTypeError(f"resume accepts only the runtime options {sorted(RUNTIME)}, got {sorted(unknown)}")
    out_dir = Path(out_dir)
    found = list_checkpoints(out_dir)
    if not found:
        raise MissingFileError(f"no checkpoints in {out_dir / 'checkpoints'}; nothing to resume (start with train())")
    data = read_checkpoint(found[-1])
    config = data["config"]
    total = config["steps"] if steps is None else int(steps)
    if total < data["step"]:
        raise InputError(f"steps={total} is below the checkpoint's step {data['step']}")
    opts = {**DEFAULTS, **config["train"]}
    task = tasks_mod.from_spec(config["task"])
    model = models.from_config(config["model"])
    model.load_state_dict(data["model_state"])
    runtime = {**RUNTIME, **runtime}
    device = _device(runtime["device"])
    model.to(device)
    optimizer = _optimizer(model, opts)
    optimizer.load_state_dict(data["optimizer_state"])
    log = _Log(task.task_names, data["log"])
    finished = data["step"] >= total or (steps is None and data.get("stop_reason", "steps") != "steps")
    if finished:
        return TrainResult(model, log.dataset(_attrs(model, task, opts, data.get("stop_reason", "steps"))),
                           out_dir, int(data["step"]), data.get("stop_reason", "steps"))
    elapsed = log.elapsed[-1] if log.elapsed else 0.0
    log_.info("resuming %s from step %d to %d", out_dir, int(data["step"]), total)
    return _run(model, task, optimizer, opts, total, int(data["step"]), log, out_dir, device, runtime, elapsed)


def _attrs(model, task, opts, stop_reason):
    return {"model_config": json.dumps(model.config, sort_keys=True), "task_spec": json.dumps(task.spec),
            "train_options": json.dumps(opts, sort_keys=True), "mask_mode": opts["mask_mode"],
            "stop_reason": stop_reason}


def _save(out_dir, model, optimizer, task, opts, steps, step, log, stop_reason):
    data = {"format": FORMAT, "version": VERSION, "step": step,
            "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer_state": optimizer.state_dict(),
            "config": {"model": model.config, "task": task.spec, "train": opts, "steps": steps},
            "log": log.state(), "rng": _rng_record(opts), "stop_reason": stop_reason}
    atomic_write(checkpoint_path(out_dir, step), lambda tmp: torch.save(data, tmp))
    log_.debug("checkpoint %s written (step %d of %d)", checkpoint_path(out_dir, step).name, step, steps)
    dataset = log.dataset(_attrs(model, task, opts, stop_reason))
    write_netcdf(dataset, Path(out_dir) / LOG_FILE)
    return dataset


def _run(model, task, optimizer, opts, steps, start, log, out_dir, device, runtime, elapsed0):
    every_ckpt = opts["checkpoint_every"]
    every_eval = opts["eval_every"] or every_ckpt
    eval_batch = task.test_grid(**opts["eval_grid"]).to(device)
    noise = bool(opts["noise"]) and model.noise_std > 0
    callback = runtime["callback"]
    trials = fixed_dataset(task, opts)
    pending = []
    stop_reason, postfix = "steps", {}
    t0 = time.perf_counter() - elapsed0
    model.train()
    bar = tqdm(total=steps, initial=start, disable=not runtime["progress"], desc="train", dynamic_ncols=True)
    step = start
    try:
        while step < steps:
            if trials is None:
                batch = task.sample(opts["batch_size"], seed=_step_seed(opts["seed"], step, 0)).to(device)
            else:
                batch = trials[batch_indices(step, trials.n_trials, opts["batch_size"], opts["seed"],
                                             opts["batch_draw"])].to(device)
            gen = None
            if noise:
                gen = torch.Generator().manual_seed(int(_step_seed(opts["seed"], step, 1).generate_state(1)[0]))
            outputs, _ = model(batch.inputs, noise=noise, generator=gen, full_state=False)
            loss = masked_mse(outputs, batch.targets, batch.mask, opts["mask_mode"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if opts["clip_grad_value"] is not None:
                torch.nn.utils.clip_grad_value_(model.parameters(), opts["clip_grad_value"])
            if opts["clip_grad_norm"] is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts["clip_grad_norm"])
            optimizer.step()
            step += 1
            pending.append(loss.detach())
            if callback is not None and callback(step, loss.detach(), model):
                stop_reason = "callback"
            if step % opts["log_every"] == 0 or step % every_eval == 0 or step % every_ckpt == 0 or step == steps:
                previous = log.loss[-1] if log.loss else None
                log.loss.extend(torch.stack(pending).cpu().tolist())
                pending = []
                postfix["loss"] = f"{log.loss[-1]:.4g}"
                if (opts["target_loss"] is not None and previous is not None
                        and (previous + log.loss[-1]) / 2 < opts["target_loss"]):
                    stop_reason = "target_loss"
            if step % every_eval == 0 or step == steps or stop_reason != "steps":
                eval_loss, acc = evaluate(model, task, eval_batch, opts["mask_mode"])
                log.eval_step.append(step)
                log.eval_loss.append(eval_loss)
                log.accuracy.append([acc.get(t, float("nan")) for t in log.task_names])
                log.elapsed.append(time.perf_counter() - t0)
                postfix.update({t[:12]: f"{a:.2f}" for t, a in acc.items()})
                if opts["target_accuracy"] is not None and min(acc.values()) >= opts["target_accuracy"]:
                    stop_reason = "target_accuracy"
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            if stop_reason != "steps" or step % every_ckpt == 0 or step == steps:
                if pending:  # a callback stop between log points
                    log.loss.extend(torch.stack(pending).cpu().tolist())
                    pending = []
                dataset = _save(out_dir, model, optimizer, task, opts, steps, step, log, stop_reason)
            if stop_reason != "steps":
                break
    finally:
        bar.close()
    log_.info("training stopped at step %d (%s); run folder %s", step, stop_reason, out_dir)
    return TrainResult(model, dataset, Path(out_dir), step, stop_reason)
