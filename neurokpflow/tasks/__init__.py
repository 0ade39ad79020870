"""Seeded cognitive-task generators.

>>> from neurokpflow import tasks
>>> task = tasks.make("memory_pro", dt=0.1)
>>> batch = task.sample(64, seed=0)          # inputs / targets / mask [B, T, ·], meta, epochs
>>> grid = task.test_grid(n_angles=16)        # deterministic, noise-free analysis trials
>>> four = tasks.mix([tasks.make(n, dt=0.1) for n in ("memory_pro", "memory_anti")])
>>> yang = tasks.make("yang19")               # the 20 Yang 2019 tasks as one mix (85 inputs)
>>> dm1 = tasks.make("yang19.dm1")            # one of them; dm1.trials(params) for explicit trials
>>> dris = tasks.make("driscoll24")           # the 15 Driscoll 2024 tasks as one mix (20 inputs)
>>> pdm = tasks.from_gym("PerceptualDecisionMaking-v0", dt=0.02)   # a neurogym environment (extra "neurogym")

Tasks are immutable configurations; every ``sample`` call draws from its own generator
seeded by ``seed`` (no global random state).  ``task.spec`` is a plain dict that
:func:`from_spec` turns back into an identical task.
"""
from __future__ import annotations

from typing import Any

from .base import Task
from .batch import Batch, PAD_EPOCH
from .driscoll import DRISCOLL_TASKS, DriscollTask
from .driscoll24 import DRISCOLL24_PAPER_NAMES, DRISCOLL24_TASKS, Driscoll24Task
from .gym import GymTask, UnsupportedEnvError, from_gym
from .gym import registered as _gym_registered
from .kpflow import KPFLOW_VARIANTS, FlipFlopTask, KPFlowContextMix, KPFlowMemoryTask
from .mix import Mix
from .yang19 import YANG19_TASKS, Yang19Task, popvec, score_ring_response_within
from .scoring import (
    ResponseCriterion,
    circular_distance,
    final_step,
    score_final_channels_within,
    score_final_sign_match,
    score_response_angle_within,
)
from .._registry import Registry
from ..errors import InputError, UnknownNameError

__all__ = [
    "make", "mix", "suite", "known_suites", "from_spec", "known_tasks", "TASKS", "Task", "Batch", "Mix", "PAD_EPOCH",
    "from_gym", "GymTask", "UnsupportedEnvError",
    "DriscollTask", "Driscoll24Task", "Yang19Task", "score_ring_response_within", "popvec", "KPFlowMemoryTask",
    "KPFlowContextMix", "FlipFlopTask",
    "score_response_angle_within", "ResponseCriterion", "score_final_channels_within", "score_final_sign_match",
    "final_step", "circular_distance",
]

#: every task :func:`make` builds by name.  Capabilities: ``family`` (the generator: "driscoll",
#: "kpflow", "flip_flop", "yang19", "driscoll24", "mix"), ``suite`` (the suite it belongs to, or None)
#: and ``angles`` (whether its test grid is indexed by stimulus angle, ``test_grid(n_angles=...)``).
#: Register a new task with ``TASKS.register(name, factory, family=..., angles=...)``; the task
#: contract tests run over every entry.
TASKS = Registry("task", {"family": "", "suite": None, "angles": True})
for _name in DRISCOLL_TASKS:
    TASKS.register(_name, (lambda n: lambda **o: DriscollTask(n, **o))(_name), family="driscoll")
for _name in KPFLOW_VARIANTS:
    TASKS.register(_name, (lambda n: lambda **o: KPFlowMemoryTask(n, **o))(_name), family="kpflow")
TASKS.register("kpflow_multitask", lambda **o: KPFlowContextMix(**o), family="mix")
TASKS.register("flip_flop", lambda **o: FlipFlopTask(**o), family="flip_flop", angles=False)
for _name in YANG19_TASKS:
    TASKS.register(f"yang19.{_name}", (lambda n: lambda **o: Yang19Task(n, **o))(_name), family="yang19",
                   suite="yang19", angles=False)
for _name in DRISCOLL24_TASKS:
    TASKS.register(f"driscoll24.{_name}", (lambda n: lambda **o: Driscoll24Task(n, **o))(_name),
                   family="driscoll24", suite="driscoll24", angles=False)

#: suite name -> its task names, in the order of the suite's rule inputs
_SUITES = {suite_name: tuple(TASKS.names(suite=suite_name)) for suite_name in ("yang19", "driscoll24")}


def known_suites() -> list:
    """Names accepted by :func:`suite` (and by :func:`make`, which returns the suite's mix)."""
    return sorted(_SUITES)


def suite(name: str, **options) -> list:
    """The tasks of a suite, in its rule order, each built with ``options``.

    ``"yang19"``: the 20 tasks of Yang et al. 2019 (:class:`Yang19Task`).
    ``mix(suite("yang19"))`` has the original 85 inputs (fixation, 2 rings of 32, 20 rules).
    ``"driscoll24"``: the 15 tasks of Driscoll et al. 2024 (:class:`Driscoll24Task`); its mix has
    the original 20 inputs (fixation, sin/cos of 2 modalities, 15 rules).
    """
    if name not in _SUITES:
        raise InputError(f"unknown suite {name!r}; known suites: {', '.join(known_suites())}")
    return [make(n, **options) for n in _SUITES[name]]


def known_tasks() -> list:
    """Names accepted by :func:`make`."""
    return sorted(TASKS)


def make(name: str, **options) -> Task:
    """Build a task by name (see :func:`known_tasks`); ``options`` go to its constructor.

    Names: memory_pro, memory_anti, delay_pro, delay_anti, react_pro, react_anti (Driscoll 2024
    I/O, :class:`DriscollTask`), kpflow_memory_pro / _anti, kpflow_delay_pro / _anti
    (:class:`KPFlowMemoryTask`), kpflow_multitask (the KPFlow 4-task context mix,
    :class:`KPFlowContextMix`), flip_flop (:class:`FlipFlopTask`), yang19.<rule> (the 20 Yang
    2019 tasks, :class:`Yang19Task`), driscoll24.<rule> (the 15 Driscoll 2024 tasks,
    :class:`Driscoll24Task`) and gym.<registered environment id> (:func:`from_gym`).  A suite name
    (``"yang19"``, ``"driscoll24"``) gives the mix of its tasks.
    """
    if name in _SUITES:
        return mix(suite(name, **options))
    if isinstance(name, str) and name.startswith("gym."):  # a registered environment (see from_gym)
        if "env_kwargs" in options:  # as stored by GymTask.spec
            options = dict(options)
            return _gym_registered(name[len("gym."):], dict(options.pop("env_kwargs")), **options)
        return from_gym(name[len("gym."):], **options)
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}; "
                               f"suites: {', '.join(known_suites())}")
    return TASKS.make(name, **options)


def mix(tasks, weights=None, mode: str = "mixed") -> Mix:
    """Mix tasks (objects or names) into one task with appended rule inputs; see :class:`Mix`."""
    return Mix([make(t) if isinstance(t, str) else t for t in tasks], weights=weights, mode=mode)


def from_spec(spec: dict) -> Task:
    """Rebuild a task from ``task.spec``."""
    if not isinstance(spec, dict) or not ({"name", "options"} <= set(spec) or "mix" in spec):
        raise InputError(f"not a task spec (expected a dict with 'name' and 'options', or 'mix'): {spec!r}")
    if "mix" in spec:
        return Mix([from_spec(s) for s in spec["mix"]], weights=spec.get("weights"), mode=spec.get("mode", "mixed"))
    options: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["options"].items()}
    if isinstance(options.get("durations"), dict):
        options["durations"] = {k: tuple(v) for k, v in options["durations"].items()}
    return make(spec["name"], **options)
