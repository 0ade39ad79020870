"""Sweep specification: a grid of training runs and what to compute per run.

A sweep is declared in a small TOML file (:func:`load`) or in Python (:class:`Sweep`).  The
``[grid]`` table holds lists whose Cartesian product gives the runs; scalars are shared by all
runs.  ``[compute]`` names the checkpoints at which collapse statistics are computed and at which
the model is compared with the ``[recordings]`` (one session each, by path or URL) under the named
measures and statistics.  The whole specification is validated before anything runs; an error
names the field in one line.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["Sweep", "SweepSpecError", "load", "RUN_FIELDS", "COMPUTE_FIELDS", "RECORDING_FIELDS"]


class SweepSpecError(InputError):
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
#: [compute] fields: accepted type, default, type of list items (None: not a list)
COMPUTE_FIELDS = {
    "collapse_at": (list, [], int),
    "definitions": (list, ["ER1"], str),
    "subtask_at": (list, [], int),         # checkpoints of sub-task alignment (task mixes only; 0 = untrained)
    "compare_at": (list, [], int),         # checkpoints compared with every recording (0 = untrained)
    "measures": (list, ["cka"], str),      # names from neurokpflow.compare.MEASURES
    "stats": (list, [], str),              # statistics of neurokpflow.compare.compare
    "n_boot": (int, 200, None),
    "n_perm": (int, 200, None),
}
#: fields of one [recordings.NAME] table (a bare string is its path)
RECORDING_FIELDS = {
    "path": ((str,), None),                # a local path (relative: to the spec file) or an http(s)/s3 URL
    "condition": ((str,), "condition"),    # trials column whose values label the conditions
    "align_to": ((str,), "start_time"),
    "bin_size": ((float, int), 0.05),
    "smooth": ((float, int), 0.05),        # Gaussian SD in s (0: none)
}
STATS = ("bootstrap", "permutation", "noise_ceiling", "cross_validated")
TOP_FIELDS = {"name", "grid", "compute", "threads", "recordings", "device"}


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
    ``compute`` holds ``collapse_at`` (checkpoint steps; empty = no collapse), ``definitions``
    (effective-rank ids), ``subtask_at`` (checkpoint steps of the sub-task alignment of a task
    mix), ``compare_at`` (checkpoint steps compared with every recording; 0 = the
    untrained network), ``measures``, ``stats``, ``n_boot`` and ``n_perm`` (see
    :func:`neurokpflow.compare.compare`); ``recordings`` maps a session name to a path or URL, or
    to a table of :data:`RECORDING_FIELDS`; ``threads`` is the torch thread count of every run;
    ``device`` ("cpu" or "cuda") is where runs train (with dask-cuda's ``LocalCUDACluster`` each
    worker sees its own GPU as "cuda"); analyses run on the CPU."""

    grid: dict = field(default_factory=dict)
    compute: dict = field(default_factory=dict)
    name: str = "sweep"
    threads: int = 1
    recordings: dict = field(default_factory=dict)
    device: str = "cpu"

    def __post_init__(self):
        if not isinstance(self.grid, dict):
            _fail(f"sweep field grid: expected a table, got {type(self.grid).__name__}")
        if not isinstance(self.compute, dict):
            _fail(f"sweep field compute: expected a table, got {type(self.compute).__name__}")
        if not isinstance(self.recordings, dict):
            _fail(f"sweep field recordings: expected a table, got {type(self.recordings).__name__}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1:
            _fail(f"sweep field threads: expected a positive int, got {self.threads!r}")
        if self.device not in ("cpu", "cuda"):
            _fail(f"sweep field device: 'cpu' or 'cuda', got {self.device!r}")
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
            kind, _, item = COMPUTE_FIELDS[key]
            if isinstance(value, bool) or not isinstance(value, kind) or (
                    item is not None and any(isinstance(v, bool) or not isinstance(v, item) for v in value)):
                want = f"a list of {item.__name__}" if item is not None else kind.__name__
                _fail(f"sweep field compute.{key}: expected {want}, got {value!r}")
        for key in ("n_boot", "n_perm"):
            if self.compute.get(key, 1) < 1:
                _fail(f"sweep field compute.{key}: must be positive, got {self.compute[key]!r}")
        self._check_steps("collapse_at", minimum=1)
        self._check_steps("compare_at", minimum=0)
        self._check_steps("subtask_at", minimum=0)
        if self.compute.get("subtask_at"):
            single = [r["task"] for r in self.runs() if isinstance(r["task"], str) or len(r["task"]) < 2]
            if single:
                _fail(f"sweep field compute.subtask_at: sub-task alignment needs a task mix, but a run trains "
                      f"{single[0]!r} alone; give grid.task as a list of task names")
        for name, rec in self.recordings.items():
            _check_recording(name, rec)
        self._check_comparison()

    def _check_steps(self, key, minimum):
        steps = self.compute.get(key, [])
        if any(s < minimum for s in steps):
            _fail(f"sweep field compute.{key}: expected checkpoint steps >= {minimum}, got {steps!r}")
        for run in self.runs():
            bad = [s for s in steps if s not in (0, run["steps"]) and s % run["checkpoint_every"]]
            if bad or any(s > run["steps"] for s in steps):
                _fail(f"sweep field compute.{key}: steps {steps} are not all checkpoints of a run with "
                      f"steps={run['steps']}, checkpoint_every={run['checkpoint_every']}")

    def _check_comparison(self):
        from ..compare import MEASURES

        for m in self.compute.get("measures", []):
            if m not in MEASURES:
                _fail(f"sweep field compute.measures: unknown measure {m!r}; known: {', '.join(MEASURES)}")
        for st in self.compute.get("stats", []):
            if st not in STATS:
                _fail(f"sweep field compute.stats: unknown statistic {st!r}; known: {', '.join(STATS)}")
        if self.compute.get("compare_at") and not self.recordings:
            _fail("sweep field compute.compare_at: no [recordings] to compare with; add one "
                  "([recordings.NAME] path = ...) or remove compare_at")
        if self.recordings and not self.compute.get("compare_at"):
            _fail("sweep field recordings: no compute.compare_at checkpoints to compare them at; add e.g. "
                  "compare_at = [0, STEPS]")

    def recording_options(self) -> dict:
        """Session name -> complete recording options (defaults filled in), in declaration order."""
        out = {}
        for name, rec in self.recordings.items():
            rec = {"path": rec} if isinstance(rec, str) else rec
            out[name] = {k: rec.get(k, default) for k, (_, default) in RECORDING_FIELDS.items()}
        return out

    def analysis(self) -> dict:
        """What is computed per run (compute fields with defaults, and the recordings): plain values."""
        compute = {k: self.compute.get(k, default) for k, (_, default, _) in COMPUTE_FIELDS.items()}
        out: dict[str, Any] = {"compute": compute, "recordings": self.recording_options()}
        if self.device != "cpu":  # absent for CPU, so CPU sweeps keep their analysis ids
            out["device"] = self.device
        return out

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
        return {"name": self.name, "threads": self.threads, "grid": self.grid, "compute": self.compute,
                "recordings": self.recordings, "device": self.device}


def _check_recording(name, rec):
    from ..data.sources import is_remote

    where = f"recordings.{name}"
    if isinstance(rec, str):
        rec = {"path": rec}
    if not isinstance(rec, dict):
        _fail(f"sweep field {where}: expected a path, a URL or a table, got {type(rec).__name__}")
    for key, value in rec.items():
        if key not in RECORDING_FIELDS:
            _fail(f"unknown sweep field {where}.{key}; accepted: {', '.join(RECORDING_FIELDS)}")
        types, _ = RECORDING_FIELDS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            _fail(f"sweep field {where}.{key}: expected {' or '.join(t.__name__ for t in types)}, "
                  f"got {type(value).__name__} {value!r}")
    if "path" not in rec:
        _fail(f"sweep field {where}.path: missing; give the recording's path or URL")
    if rec.get("bin_size", 1) <= 0 or rec.get("smooth", 0) < 0:
        _fail(f"sweep field {where}: bin_size must be positive and smooth non-negative")
    path = rec["path"]
    if not is_remote(path) and not Path(path).exists():
        _fail(f"sweep field {where}.path: recording {path} does not exist")


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
    recordings = data.get("recordings")
    if isinstance(recordings, dict):  # relative paths are relative to the specification's folder
        data["recordings"] = {name: _relative_to(rec, path.parent) for name, rec in recordings.items()}
    return Sweep(**data)


def _relative_to(rec, folder):
    from ..data.sources import is_remote

    entry = {"path": rec} if isinstance(rec, str) else rec
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or is_remote(entry["path"]):
        return rec
    full = os.path.abspath(folder / entry["path"])
    return full if isinstance(rec, str) else {**rec, "path": full}
