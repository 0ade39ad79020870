"""Trainer with atomic checkpoints, exact resume and an xarray/netCDF training log.

>>> from neurokpflow import models, tasks, training
>>> task = tasks.make("memory_pro", dt=0.1)
>>> model = models.make("gru", task.n_inputs, 128, task.n_outputs, seed=0)
>>> result = training.train(model, task, steps=2000, out_dir="runs/memory_pro")
>>> result = training.resume("runs/memory_pro", steps=4000)        # continue / extend
>>> model, info = training.load_checkpoint(training.list_checkpoints("runs/memory_pro")[-1])
"""
from .checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    list_checkpoints,
    load_checkpoint,
    read_checkpoint,
)
from .loss import MASK_MODES, masked_mse
from .protocol import PACKAGE, PROTOCOLS, REFERENCE, Protocol
from .trainer import DEFAULTS, LOG_FILE, TrainConfig, TrainResult, batch_indices, evaluate, fixed_dataset, resume, train
from .runs import RUN_CONFIG, RunSpec, models_over_training, resume_run, run_checkpoints, start_run

__all__ = ["train", "resume", "TrainConfig", "TrainResult", "evaluate", "DEFAULTS", "LOG_FILE", "masked_mse", "MASK_MODES",
           "Protocol", "REFERENCE", "PACKAGE", "PROTOCOLS", "batch_indices", "fixed_dataset",
           "list_checkpoints", "load_checkpoint", "read_checkpoint", "CheckpointError", "CheckpointMismatchError",
           "RunSpec", "start_run", "resume_run", "run_checkpoints", "models_over_training", "RUN_CONFIG"]
