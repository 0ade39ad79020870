"""Task base class and the vectorised helpers that turn epoch boundaries into arrays."""
from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from .batch import Batch, PAD_EPOCH
from .._validation import numpy_rng
from ..errors import InputError

__all__ = ["Task", "as_rng", "window"]  # assemble: the task modules' shared helper


def as_rng(seed) -> np.random.Generator:
    """A numpy Generator under the package's seed convention (``None``: fresh OS entropy; see
    :mod:`neurokpflow._validation`)."""
    return numpy_rng(seed)


def window(start, stop, n_steps):
    """Boolean ``[B, T]`` array, True where ``start[b] <= t < stop[b]`` (scalars broadcast)."""
    t = np.arange(n_steps)[None, :]
    start, stop = np.atleast_1d(start), np.atleast_1d(stop)
    return (t >= start[:, None]) & (t < stop[:, None])


def assemble(task_name, inputs, targets, mask, epochs, meta, dt, input_names, output_names):
    """Build a :class:`Batch` from numpy arrays plus ``epochs = [(name, start[B], stop[B]), ...]``.

    ``meta`` must contain ``n_steps``; the epoch labels and ``{name}_start/_stop`` entries
    are derived here, and steps at or after ``n_steps`` are labelled ``"pad"``.
    """
    B, T = inputs.shape[:2]
    labels = np.full((B, T), PAD_EPOCH, dtype=object)
    meta = {"task": np.full(B, task_name), **meta}
    for name, start, stop in epochs:
        start = np.broadcast_to(np.asarray(start, dtype=np.int64), (B,)).copy()
        stop = np.broadcast_to(np.asarray(stop, dtype=np.int64), (B,)).copy()
        labels[window(start, stop, T)] = name
        meta[f"{name}_start"], meta[f"{name}_stop"] = start, stop
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return Batch(tensor(inputs), tensor(targets), tensor(mask), meta, labels.astype(str), float(dt),
                 tuple(input_names), tuple(output_names))


class Task:
    """Base class of a cognitive task: an immutable configuration plus seeded generators.

    Subclasses set ``name``, ``input_names``, ``output_names``, ``dt``, ``epoch_names`` and
    implement ``sample(batch_size, seed=None)``, ``test_grid(...)`` and ``score(outputs, batch)``.
    Options given at construction are kept (``spec``) so that :func:`neurokpflow.tasks.from_spec`
    rebuilds an identical task.  Attributes cannot be reassigned after construction.
    """

    name: str = "task"
    input_names: tuple = ()
    output_names: tuple = ()
    epoch_names: tuple = ()
    dt: float = 0.02
    _options: Mapping[str, Any]  # set in __init__ (read-only view of the construction options)

    def __init__(self, **options):
        object.__setattr__(self, "_options", MappingProxyType(dict(options)))

    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(f"{type(self).__name__} is immutable; build a new task with "
                                 f"neurokpflow.tasks.make({self.name!r}, ...) instead of setting {key!r}")
        object.__setattr__(self, key, value)

    def _freeze(self):
        object.__setattr__(self, "_frozen", True)

    def __reduce__(self):
        # plain pickle (multiprocessing, dask workers) through the portable spec
        return (_rebuild, (self.spec,))

    @property
    def options(self) -> dict:
        return dict(self._options)

    @property
    def spec(self) -> dict:
        """Plain-dict description (JSON/pickle friendly) accepted by ``tasks.from_spec``."""
        return {"name": self.name, "options": _plain(self._options)}

    @property
    def n_inputs(self) -> int:
        return len(self.input_names)

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    @property
    def task_names(self) -> tuple:
        """Names of the tasks whose trials this object produces (itself for a single task)."""
        return (self.name,)

    def sample(self, batch_size: int, seed=None) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def test_grid(self, *args: Any, **options: Any) -> Batch:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, outputs, batch: Batch) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def accuracy(self, outputs, batch: Batch) -> dict:
        """Fraction of correct trials per task name, ``{task: float}`` (see ``score``)."""
        correct = self.score(outputs, batch)
        names = batch.meta["task"]
        return {t: float(correct[names == t].mean()) for t in batch.tasks}

    def __eq__(self, other):
        return type(other) is type(self) and other.spec == self.spec

    def __hash__(self):
        return hash(repr(self.spec))

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"<task {self.name}({opts})>"


def check_batch_size(batch_size):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _plain(value):
    """Deep-copy options into plain Python containers (tuples become lists)."""
    if isinstance(value, (dict, MappingProxyType)):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _rebuild(spec):
    """Unpickle a task from its ``spec`` (see ``Task.__reduce__``)."""
    from . import from_spec
    return from_spec(spec)
