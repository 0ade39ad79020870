"""The ``train`` step: build task and model from command-line settings, train, resume."""
from __future__ import annotations

from pathlib import Path

from .errors import EXIT_UNUSABLE, CLIError
from .runs import build_model, build_task, write_run_config

__all__ = ["train_run", "resume_run"]


def train_run(task_names, *, kind="rnn", hidden=64, tau=0.1, dt=None, steps=1000, batch_size=64, lr=1e-3,
              checkpoint_every=50, seed=0, device="auto", out_dir, progress=True, task_options=None,
              eval_grid=None):
    """Train a fresh model into ``out_dir`` (which must not hold checkpoints yet).

    The leaky RNN uses ``alpha = dt / tau`` (clipped to 1); GRU/LSTM ignore ``tau``.  The
    settings are saved in ``out_dir/run.json`` next to the trainer's checkpoints and ``log.nc``.
    """
    from .. import training

    task = build_task(task_names, dt=dt, **(task_options or {}))
    options = {"alpha": min(1.0, task.dt / tau)} if kind == "rnn" else {}
    model = build_model(kind, task, hidden, seed, **options)
    out_dir = Path(out_dir)
    if training.list_checkpoints(out_dir):
        raise CLIError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out",
                       EXIT_UNUSABLE)
    settings = {"tasks": [task_names] if isinstance(task_names, str) else list(task_names), "model": kind,
                "hidden": hidden, "tau": tau, "dt": task.dt, "steps": steps, "batch_size": batch_size, "lr": lr,
                "checkpoint_every": checkpoint_every, "seed": seed, "task_options": task_options or {}}
    write_run_config(out_dir, settings)
    return training.train(model, task, steps=steps, out_dir=out_dir, batch_size=batch_size, lr=lr,
                          checkpoint_every=checkpoint_every, seed=seed, device=device, progress=progress,
                          eval_grid=eval_grid or {})


def resume_run(out_dir, steps=None, device="auto", progress=True):
    """Continue the run in ``out_dir`` from its last checkpoint (up to ``steps`` in total)."""
    from .. import training
    from .runs import run_checkpoints

    run_checkpoints(out_dir)  # clear errors for a missing folder or a folder without checkpoints
    return training.resume(out_dir, steps=steps, device=device, progress=progress)
