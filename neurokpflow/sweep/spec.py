"""Sweep specification: a grid of training runs and what to compute per run.

A sweep is declared in a small TOML file (:func:`load`) or in Python (:class:`Sweep`).  The
``[grid]`` table holds lists whose Cartesian product gives the runs; scalars are shared by all
runs.  ``[compute]`` names the checkpoints at which collapse statistics are computed.  The whole
specification is validated before anything runs; an error names the field in one line.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Sweep", "SweepSpecError", "load", "RUN_FIELDS"]


class SweepSpecError(ValueError):
    """A sweep specification is invalid (unknown field, wrong type, missing file)."""


#: run fields, their accepted types and defaults
RUN_FIELDS = {
    "task": ((str, list), "memory_pro"),   # a task name, or a list of names (a mix)
    "cell": ((str,), "rnn"),
    "hidden": ((int,), 32),
    "g": ((float, int), 1.0),
    "alpha": ((float, int), 0.2),          # leak of the vanilla RNN (ignored by gru/lstm)
    "optimizer": ((str,), "adam"),
    "lr": ((float, int), 1e-3),
    "batch_size": ((int,), 64),
    "steps": ((int,), 100),
    "checkpoint_every": ((int,), 50),
    "seed": ((int,), 0),
}
COMPUTE_FIELDS = {"collapse_at": (list, []), "definitions": (list, ["ER1"])}
TOP_FIELDS = {"name", "grid", "compute", "threads"}


def _fail(msg):
    raise SweepSpecError(msg)


def _check_value(name, value):
    types, _ = RUN_FIELDS[name]
    if isinstance(value, bool) or not isinstance(value, types):
        _fail(f"sweep field grid.{name}: expected {' or '.join(t.__name__ for t in types)}, "
              f"got {type(value).__name__} {value!r}")
    if name == "task" and isinstance(value, list) and not all(isinstance(v, str) for v in value):
        _fail(f"sweep field grid.task: a mix is a list of task names, got {value!r}")
    if name == "task":
        from ..tasks import known_tasks
        for t in [value] if isinstance(value, str) else value:
            if t not in known_tasks():
                _fail(f"sweep field grid.task: unknown task {t!r}; known: {', '.join(known_tasks())}")
    if name in ("hidden", "steps", "checkpoint_every", "batch_size") and value < 1:
        _fail(f"sweep field grid.{name}: must be positive, got {value!r}")
    if name == "optimizer" and value not in ("adam", "sgd"):
        _fail(f"sweep field grid.optimizer: 'adam' or 'sgd', got {value!r}")
    if name == "cell" and value not in ("rnn", "gru", "lstm"):
        _fail(f"sweep field grid.cell: 'rnn', 'gru' or 'lstm', got {value!r}")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: ``grid`` maps run fields (:data:`RUN_FIELDS`) to a value or a list of
    values (the product is taken; for ``task`` a list of lists gives several mixes),
    ``compute`` holds ``collapse_at`` (checkpoint steps; empty = no collapse) and
    ``definitions`` (effective-rank ids), ``threads`` is the torch thread count of every run."""

    grid: dict = field(default_factory=dict)
    compute: dict = field(default_factory=dict)
    name: str = "sweep"
    threads: int = 1

    def __post_init__(self):
        if not isinstance(self.grid, dict):
            _fail(f"sweep field grid: expected a table, got {type(self.grid).__name__}")
        if not isinstance(self.compute, dict):
            _fail(f"sweep field compute: expected a table, got {type(self.compute).__name__}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            _fail(f"sweep field threads: expected a positive int, got {self.threads!r}")
        for key, value in self.grid.items():
            if key not in RUN_FIELDS:
                _fail(f"unknown sweep field grid.{key}; accepted: {', '.join(RUN_FIELDS)}")
            values = value if self._is_axis(key, value) else [value]
            if not values:
                _fail(f"sweep field grid.{key}: empty list")
            for v in values:
                _check_value(key, v)
        for key, value in self.compute.items():
            if key not in COMPUTE_FIELDS:
                _fail(f"unknown sweep field compute.{key}; accepted: {', '.join(COMPUTE_FIELDS)}")
            if not isinstance(value, list):
                _fail(f"sweep field compute.{key}: expected a list, got {type(value).__name__}")
        steps = self.compute.get("collapse_at", [])
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in steps):
            _fail(f"sweep field compute.collapse_at: expected a list of step numbers, got {steps!r}")
        for run in self.runs():
            bad = [s for s in steps if s != run["steps"] and s % run["checkpoint_every"]]
            if bad or any(s > run["steps"] for s in steps):
                _fail(f"sweep field compute.collapse_at: steps {steps} are not all checkpoints of a run with "
                      f"steps={run['steps']}, checkpoint_every={run['checkpoint_every']}")

    @staticmethod
    def _is_axis(key, value):
        if key == "task":
            # a list of names is one mix; a list holding lists is an axis of tasks/mixes
            return isinstance(value, list) and any(isinstance(v, list) for v in value)
        return isinstance(value, list)

    def axes(self) -> dict:
        """Grid axes: field -> list of values (scalars give one-element lists)."""
        out = {}
        for key, (_, default) in RUN_FIELDS.items():
            value = self.grid.get(key, default)
            out[key] = list(value) if self._is_axis(key, value) else [value]
        return out

    def runs(self) -> list:
        """Every run's plain spec dict, in grid order."""
        axes = self.axes()
        return [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]

    def to_dict(self) -> dict:
        return {"name": self.name, "threads": self.threads, "grid": self.grid, "compute": self.compute}


def run_id(run: dict) -> str:
    """Stable id of a run: a hash of its canonical JSON spec (same spec -> same id)."""
    text = json.dumps(run, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load(path) -> Sweep:
    """Read and validate a TOML sweep specification."""
    path = Path(path)
    if not path.is_file():
        _fail(f"sweep specification {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        _fail(f"sweep specification {path} is not valid TOML: {err}")
    unknown = set(data) - TOP_FIELDS
    if unknown:
        _fail(f"unknown sweep field {sorted(unknown)[0]}; accepted: {', '.join(sorted(TOP_FIELDS))}")
    return Sweep(**data)
