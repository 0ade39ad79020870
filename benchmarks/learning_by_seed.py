"""Does the tanh RNN learn T = 90 Memory-Pro under the KPFlow reference protocol?  Run by run.

For every run folder given, evaluates each checkpoint on 64 noise-free test angles of the reference
protocol's Memory-Pro (``training.REFERENCE.task().test_grid(64)``, the package's criterion: the
response direction within the task's tolerance at the last step) and prints one line per run:
the last step, its evaluation loss and accuracy, the best accuracy and where, the first step with
accuracy >= 95 %, and how often the evaluation loss went back above the untrained plateau's level
(0.1) after having left it.

A run folder is either the package's (``training.train`` output: ``checkpoints/step_*.pt``) or the
reference code's (``checkpoint_<iteration>.pt`` files of a torch ``nn.RNN``, loaded as in
``rank_torch_checkpoints.py``).

Usage (from the repository root):
    python -m benchmarks.learning_by_seed RUN [RUN ...] [--every 100] [--labels a b ...]
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch

from neurokpflow import training

from .rank_torch_checkpoints import load_reference_rnn

PLATEAU = 0.1


def _checkpoints(run: Path, task):
    """``(step, loader)`` pairs of a package or a reference-code run folder, sorted by step."""
    package = training.list_checkpoints(run)
    if package:
        return [(int(re.findall(r"\d+", p.stem)[-1]), lambda p=p: training.load_checkpoint(p)[0]) for p in package]
    files = sorted(run.glob("checkpoint_*.pt"), key=lambda p: int(re.findall(r"\d+", p.stem)[-1]))
    if not files:
        raise SystemExit(f"{run}: neither package checkpoints nor checkpoint_*.pt files")
    return [(int(re.findall(r"\d+", f.stem)[-1]), lambda f=f: load_reference_rnn(f, task)) for f in files]


def summarise(run: Path, every: int) -> dict:
    task = training.REFERENCE.task()
    grid = task.test_grid(64)
    cks = _checkpoints(run, task)
    cks = [c for c in cks if c[0] % every == 0 or c is cks[-1]]
    steps, losses, accs = [], [], []
    for step, load in cks:
        loss, acc = training.evaluate(load(), task, grid)
        steps.append(step)
        losses.append(loss)
        accs.append(min(acc.values()))
    losses, accs = np.asarray(losses), np.asarray(accs)
    left = np.flatnonzero(losses < PLATEAU)
    returns = int(np.sum((losses[1:] >= PLATEAU) & (losses[:-1] < PLATEAU)))
    reached = np.flatnonzero(accs >= 0.95)
    return {"steps": steps, "loss": losses, "accuracy": accs, "last": steps[-1],
            "first_left": steps[left[0]] if len(left) else None, "returns": returns,
            "first_95": steps[reached[0]] if len(reached) else None,
            "best": (float(accs.max()), steps[int(accs.argmax())])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--every", type=int, default=100, help="evaluate every checkpoint whose step is a multiple")
    parser.add_argument("--labels", nargs="*", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    labels = args.labels or [str(r) for r in args.runs]
    if len(labels) != len(args.runs):
        raise SystemExit("give one label per run")
    print(f"{'run':<28} {'last step':>9} {'loss':>8} {'acc':>6} {'best acc (step)':>17} {'left plateau':>12} "
          f"{'returns':>7} {'first >= 95 %':>13}")
    for label, run in zip(labels, args.runs):
        s = summarise(run, args.every)
        best = f"{s['best'][0]:.3f} ({s['best'][1]})"
        print(f"{label:<28} {s['last']:>9} {s['loss'][-1]:>8.4f} {s['accuracy'][-1]:>6.3f} {best:>17} "
              f"{str(s['first_left']):>12} {s['returns']:>7} {str(s['first_95']):>13}")


if __name__ == "__main__":
    main()
