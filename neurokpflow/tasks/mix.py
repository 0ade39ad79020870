"""Multi-task mixes with one input/output layout across their tasks."""
from __future__ import annotations

import numpy as np
import torch

from .base import Task, as_rng, check_batch_size
from .batch import Batch
from ..errors import InputError, InputTypeError

__all__ = ["Mix"]


class Mix(Task):
    """Sample several tasks with one I/O layout.

    The inputs are the tasks' common inputs followed by one rule unit per task of the mix
    (``rule_<task>``, in mix order, 1 for the whole trial of that task).  All tasks must share
    ``dt`` and their input/output channel names.

    Parameters
    ----------
    tasks : sequence of Task
    weights : sequence of float, optional
        Sampling weights (normalised); uniform by default.
    mode : {"mixed", "per_batch"}
        ``"mixed"``: every trial draws its task; ``"per_batch"``: one task per batch (Yang).
    """

    name = "mix"

    def __init__(self, tasks, weights=None, mode="mixed"):
        tasks = tuple(tasks)
        if len(tasks) < 1 or not all(isinstance(t, Task) for t in tasks):
            raise InputTypeError("mix needs a non-empty sequence of task objects (see neurokpflow.tasks.make)")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names) or any(isinstance(t, Mix) for t in tasks):
            raise InputError(f"mix needs distinct single tasks, got {names}")
        for t in tasks[1:]:
            if (t.input_names, t.output_names) != (tasks[0].input_names, tasks[0].output_names):
                raise InputError(f"tasks {tasks[0].name!r} and {t.name!r} have different I/O layouts "
                                 f"({tasks[0].input_names}->{tasks[0].output_names} vs "
                                 f"{t.input_names}->{t.output_names}); they cannot share a network")
            if not np.isclose(t.dt, tasks[0].dt):
                raise InputError(f"inconsistent dt in mix: {tasks[0].name!r} has {tasks[0].dt}, {t.name!r} has {t.dt}")
        if weights is None:
            weights = [1.0] * len(tasks)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(tasks),) or np.any(weights < 0) or weights.sum() <= 0:
            raise InputError(f"weights must be {len(tasks)} non-negative numbers with a positive sum, got {weights}")
        if mode not in ("mixed", "per_batch"):
            raise InputError(f"mode must be 'mixed' or 'per_batch', got {mode!r}")
        super().__init__(weights=weights.tolist(), mode=mode)
        self.tasks, self.mode = tasks, mode
        self.weights = weights / weights.sum()
        self.dt = tasks[0].dt
        self.input_names = tasks[0].input_names + tuple(f"rule_{n}" for n in names)
        self.output_names = tasks[0].output_names
        self.epoch_names = tuple(dict.fromkeys(e for t in tasks for e in t.epoch_names))
        self._freeze()

    @property
    def task_names(self):
        return tuple(t.name for t in self.tasks)

    @property
    def spec(self):
        # the weights as given (not renormalised), so that spec -> from_spec -> spec is exact
        return {"mix": [t.spec for t in self.tasks], "weights": list(self._options["weights"]), "mode": self.mode}

    def _with_rule(self, index, batch: Batch) -> Batch:
        rule = torch.zeros(batch.n_trials, batch.n_steps, len(self.tasks))
        inside = torch.from_numpy(np.arange(batch.n_steps)[None, :] < batch.meta["n_steps"][:, None])
        rule[:, :, index] = inside.float()
        return Batch(torch.cat([batch.inputs, rule], dim=2), batch.targets, batch.mask, batch.meta, batch.epochs,
                     batch.dt, self.input_names, self.output_names)

    def sample(self, batch_size: int, seed=None):
        """Random trials; in ``"mixed"`` mode the trials of different tasks are interleaved in
        the order drawn (trial ``b`` belongs to the task drawn for ``b``)."""
        B = check_batch_size(batch_size)
        seq = np.random.SeedSequence(seed) if not isinstance(seed, np.random.SeedSequence) else seed
        rng = as_rng(seq.spawn(1)[0])
        if self.mode == "per_batch":
            choice = np.full(B, rng.choice(len(self.tasks), p=self.weights))
        else:
            choice = rng.choice(len(self.tasks), size=B, p=self.weights)
        child_seeds = seq.spawn(len(self.tasks))
        parts, order = [], []
        for i, task in enumerate(self.tasks):
            idx = np.flatnonzero(choice == i)
            if len(idx):
                parts.append(self._with_rule(i, task.sample(len(idx), seed=child_seeds[i])))
                order.append(idx)
        batch = Batch.concat(parts)
        return batch[np.argsort(np.concatenate(order), kind="stable")]

    def test_grid(self, **options):
        """Every task's test grid (with the same ``options``), concatenated in task blocks."""
        return Batch.concat([self._with_rule(i, t.test_grid(**options)) for i, t in enumerate(self.tasks)])

    def score(self, outputs, batch):
        """Each trial scored by the criterion of its own task (``meta["task"]``)."""
        correct = np.zeros(batch.n_trials, dtype=bool)
        names = batch.meta["task"]
        for task in self.tasks:
            sel = np.flatnonzero(names == task.name)
            if len(sel):
                correct[sel] = task.score(np.asarray(_numpy(outputs))[sel], batch[sel])
        unknown = set(names.tolist()) - set(self.task_names)
        if unknown:
            raise InputError(f"batch holds trials of tasks {sorted(unknown)} that are not in this mix {self.task_names}")
        return correct

    def __repr__(self):
        return f"<mix {list(self.task_names)} weights={self.weights.round(3).tolist()} mode={self.mode!r}>"


def _numpy(a):
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a
