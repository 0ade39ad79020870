"""Run folders for the command line: the one implementation is :mod:`neurokpflow.training.runs`."""
from __future__ import annotations

from .._runtime import torch_threads
from ..training.runs import (RUN_CONFIG, build_model, build_task, models_over_training, run_checkpoints,
                             write_run_config)

__all__ = ["torch_threads", "build_task", "build_model", "run_checkpoints", "models_over_training", "write_run_config",
           "RUN_CONFIG"]
