"""Supervised neurogym / gymnasium environments as :class:`~neurokpflow.tasks.Task` objects.

>>> from neurokpflow import tasks
>>> task = tasks.from_gym("PerceptualDecisionMaking-v0", dt=0.02)   # a registered id (+ env options)
>>> task = tasks.from_gym(env)                                      # or an environment you built
>>> batch = task.sample(64, seed=0)

Supported environments follow neurogym's supervised-trial protocol (``neurogym.TrialEnv``):
``env.new_trial()`` draws one trial and leaves its observations in ``env.ob`` ``[T, n_obs]`` and
its ground-truth actions in ``env.gt`` ``[T]`` (``[T, d]`` for a ``Box`` action space), its
periods in ``env.start_ind`` / ``env.end_ind`` (steps) and its variables in ``env.trial``.
Environments wrapped only by gymnasium's bookkeeping wrappers (``OrderEnforcing``,
``PassiveEnvChecker``, ``TimeLimit``) are unwrapped; wrappers that change observations step by step
cannot be read trial by trial and are refused, as are environments without trials (e.g. CartPole)
and action spaces other than ``Discrete`` / ``Box``.

Conversion, per trial (trials of one batch are padded at the end, see :class:`~neurokpflow.tasks.Batch`):

- ``inputs`` = ``env.ob``; channel names from ``observation_space.name`` (``fixation``,
  ``stimulus_0``, ...) or ``obs_<i>``;
- ``targets``: ``Discrete(n)`` actions become one-hot targets over the ``n`` actions (names from
  ``action_space.name``, else ``action_<i>``); ``Box`` actions are the targets themselves;
- ``mask`` 1 on every step of the trial (the environment's supervised loss covers every step), 0 on
  padding;
- epochs: the environment's periods (``meta["<period>_start" / "_stop"]``, labels in ``batch.epochs``);
- ``meta["trial.<key>"]``: the scalar entries of ``env.trial`` (e.g. ``trial.ground_truth``,
  ``trial.coh``); ``meta["condition"]`` is -1, the angle entries NaN.

``task.dt`` is in seconds: ``env.dt`` (milliseconds, neurogym's unit) / 1000.  Sampling is seeded:
``sample(B, seed)`` calls ``new_trial()`` ``B`` times on a fresh copy of the environment after
``copy.seed(int(numpy.random.SeedSequence(seed).generate_state(1)[0]))`` (the environment you passed
is never stepped, seeded or changed).  ``score`` is correct when the
argmax of the outputs at each trial's final step is the ground-truth action there (``Discrete``),
or every output lies within ``tolerance`` of its target there (``Box``).
"""
from __future__ import annotations

import copy
import importlib
import numbers

import numpy as np

from .base import Task, assemble, check_batch_size
from .batch import Batch
from .scoring import final_step, score_final_channels_within
from ..errors import InputError, InputTypeError, require_extra

__all__ = ["GymTask", "UnsupportedEnvError", "from_gym"]

_BOOKKEEPING_WRAPPERS = ("OrderEnforcing", "PassiveEnvChecker", "TimeLimit")


class UnsupportedEnvError(InputTypeError):
    """The environment cannot be read as supervised trials (see :mod:`neurokpflow.tasks.gym`)."""


def _require(module):
    return require_extra(module, "tasks.from_gym", "neurogym")


def _unwrap(env):
    """The trial environment under gymnasium's bookkeeping wrappers."""
    inner = env
    while hasattr(inner, "env") and type(inner).__name__ in _BOOKKEEPING_WRAPPERS:
        inner = inner.env
    if hasattr(inner, "env") and inner is not getattr(inner, "unwrapped", inner):
        raise UnsupportedEnvError(f"wrapper {type(inner).__name__} changes the environment step by step; "
                                  f"from_gym reads whole trials: pass the unwrapped environment (env.unwrapped)")
    if not callable(getattr(inner, "new_trial", None)):
        raise UnsupportedEnvError(f"{type(inner).__name__} has no supervised trials (needs neurogym's "
                                  f"new_trial() with ob / gt); from_gym wraps neurogym TrialEnv environments")
    return inner


def _channel_names(space, n, prefix):
    """Names from a neurogym space's ``name`` dict (int or range values), else ``<prefix>_<i>``."""
    names = [f"{prefix}_{i}" for i in range(n)]
    given = getattr(space, "name", None)
    if isinstance(given, dict):
        for key, where in given.items():
            idx = [where] if isinstance(where, numbers.Integral) else list(where)
            for j, i in enumerate(idx):
                if 0 <= int(i) < n:
                    names[int(i)] = str(key) if len(idx) == 1 else f"{key}_{j}"
    if len(set(names)) != n:
        names = [f"{prefix}_{i}" for i in range(n)]
    return tuple(names)


class GymTask(Task):
    """A neurogym trial environment as a task; build it with :func:`from_gym`.

    Parameters
    ----------
    env : environment
        A neurogym ``TrialEnv`` (optionally inside gymnasium's bookkeeping wrappers).  It is copied;
        later changes to it do not reach the task.
    tolerance : float, default 0.1
        Absolute tolerance of ``score`` for ``Box`` action spaces.
    """

    def __init__(self, env, *, tolerance=0.1, _env_id=None, _env_kwargs=None):
        spaces = _require("gymnasium").spaces
        inner = _unwrap(env)
        super().__init__(tolerance=tolerance)
        self._env = copy.deepcopy(inner)
        action = inner.action_space
        if isinstance(action, spaces.Discrete):
            self.n_actions = int(action.n)
            self.output_names = _channel_names(action, self.n_actions, "action")
        elif isinstance(action, spaces.Box):
            self.n_actions = None
            self.output_names = tuple(f"target_{i}" for i in range(int(np.prod(action.shape))))
        else:
            raise UnsupportedEnvError(f"action space {action} of {type(inner).__name__} is not supported; "
                                      f"from_gym converts Discrete (one-hot targets) and Box action spaces")
        obs = inner.observation_space
        if not isinstance(obs, spaces.Box):
            raise UnsupportedEnvError(f"observation space {obs} of {type(inner).__name__} is not a Box")
        self.input_names = _channel_names(obs, int(np.prod(obs.shape)), "obs")
        if not (isinstance(getattr(inner, "dt", None), numbers.Real) and inner.dt > 0):
            raise UnsupportedEnvError(f"{type(inner).__name__} has no positive time step env.dt (milliseconds)")
        self.dt = float(inner.dt) / 1000.0
        if not callable(getattr(inner, "seed", None)):
            raise UnsupportedEnvError(f"{type(inner).__name__} has no seed(seed) method; from_gym needs it to "
                                      f"draw reproducible trials")
        spec = getattr(env, "spec", None) or getattr(inner, "spec", None)
        self.env_id = _env_id or (spec.id if spec is not None else None)
        self.env_kwargs = dict(_env_kwargs if _env_kwargs is not None else (spec.kwargs if spec is not None else {}))
        self.name = f"gym.{self.env_id or type(inner).__name__}"
        self.tolerance = float(tolerance)
        self.epoch_names = tuple(getattr(inner, "timing", {}) or ())
        self._freeze()

    @property
    def env(self):
        """A fresh copy of the wrapped (unwrapped) environment."""
        return copy.deepcopy(self._env)

    @property
    def spec(self) -> dict:
        """``{"name": "gym.<id>", "options": {...}}`` for a registered environment (``from_spec`` makes it
        again with ``neurogym.make`` / ``gymnasium.make``)."""
        if self.env_id is None:
            raise UnsupportedEnvError(f"{self.name} was built from an unregistered environment and has no "
                                      f"portable spec; build it with tasks.from_gym('<registered id>', ...)")
        options = {"env_kwargs": _plain_kwargs(self.env_kwargs, self.name)}
        if self.tolerance != 0.1:
            options["tolerance"] = self.tolerance
        return {"name": f"gym.{self.env_id}", "options": options}

    def _portable(self) -> bool:
        try:
            self.spec
        except UnsupportedEnvError:
            return False
        return True

    def __reduce__(self):
        if not self._portable():  # no spec: plain pickle of the environment itself
            return (_rebuild_env, (self._env, self.tolerance))
        return super().__reduce__()

    def __eq__(self, other):
        if not (isinstance(other, GymTask) and self._portable() and other._portable()):
            return self is other
        return super().__eq__(other)

    def __hash__(self):
        return hash(self.name)

    def sample(self, batch_size: int, seed=None) -> Batch:
        """``batch_size`` trials of a fresh copy of the environment seeded from ``seed``."""
        B = check_batch_size(batch_size)
        seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        env = copy.deepcopy(self._env)
        env.seed(int(seq.generate_state(1)[0]))
        trials = []
        for _ in range(B):
            env.new_trial()
            trials.append((np.asarray(env.ob, dtype=np.float64), np.asarray(env.gt),
                           dict(env.start_ind), dict(env.end_ind), dict(env.trial)))
        return self._batch(trials)

    def _batch(self, trials):
        B = len(trials)
        lengths = np.array([len(ob) for ob, *_ in trials], dtype=np.int64)
        T = int(lengths.max())
        x = np.zeros((B, T, self.n_inputs))
        y = np.zeros((B, T, self.n_outputs))
        gt_last = np.zeros(B)
        for b, (ob, gt, *_) in enumerate(trials):
            n = len(ob)
            if ob.reshape(n, -1).shape[1] != self.n_inputs or len(gt) != n:
                raise UnsupportedEnvError(f"{self.name} produced ob {ob.shape} and gt {gt.shape}; expected "
                                          f"[T, {self.n_inputs}] and [T] / [T, {self.n_outputs}]")
            x[b, :n] = ob.reshape(n, -1)
            if self.n_actions is not None:
                y[b, np.arange(n), gt.astype(np.int64)] = 1.0
                gt_last[b] = gt[-1]
            else:
                y[b, :n] = gt.reshape(n, -1)
        inside = np.arange(T)[None, :] < lengths[:, None]
        mask = np.repeat(inside[..., None].astype(np.float64), self.n_outputs, axis=2)
        periods = list(dict.fromkeys(k for _, _, start, _, _ in trials for k in start))
        epochs = []
        for name in periods:  # zero-length periods are kept in meta with start == stop
            start = np.array([t[2].get(name, -1) for t in trials], dtype=np.int64)
            stop = np.array([t[3].get(name, -1) for t in trials], dtype=np.int64)
            epochs.append((name, start, stop))
        nan = np.full(B, np.nan)
        meta = {"condition": np.full(B, -1, dtype=np.int64), "stimulus_angle": nan, "response_angle": nan.copy(),
                "n_steps": lengths}
        if self.n_actions is not None:
            meta["ground_truth_final"] = gt_last.astype(np.int64)
        keys = list(dict.fromkeys(k for *_, info in trials for k, v in info.items() if np.ndim(v) == 0))
        for key in keys:
            values = [t[4].get(key) for t in trials]
            if all(isinstance(v, (numbers.Real, np.bool_)) for v in values):
                meta[f"trial.{key}"] = np.array(values, dtype=np.float64)
            else:
                meta[f"trial.{key}"] = np.array([str(v) for v in values])
        return assemble(self.name, x, y, mask, epochs, meta, self.dt, self.input_names, self.output_names)

    def test_grid(self, n_trials: int = 64, seed=0) -> Batch:
        """``n_trials`` trials drawn with a fixed ``seed`` (the environments have no deterministic grid)."""
        return self.sample(n_trials, seed=seed)

    def score(self, outputs, batch):
        """Discrete actions: argmax of the outputs at the final step is the final ground-truth action.
        Box actions: every output within ``tolerance`` of its target at the final step."""
        if self.n_actions is None:
            return score_final_channels_within(outputs, batch, tolerance=self.tolerance, channels=slice(None))
        return final_step(outputs, batch).argmax(axis=1) == np.asarray(batch.meta["ground_truth_final"])

    def __repr__(self):
        return f"<task {self.name} dt={self.dt} s, {self.n_inputs} inputs, {self.n_outputs} outputs>"


def _plain_kwargs(kwargs, name):
    import json
    try:
        return json.loads(json.dumps(kwargs))
    except TypeError:
        raise UnsupportedEnvError(f"the options of {name} ({kwargs!r}) are not plain data; it has no portable spec") \
            from None


def _rebuild_env(env, tolerance):
    return GymTask(env, tolerance=tolerance)


def from_gym(env, *, tolerance=0.1, dt: float | None = None, **env_kwargs) -> GymTask:
    """Wrap a neurogym / gymnasium supervised environment as a task (see :mod:`neurokpflow.tasks.gym`).

    ``env``: an environment object, or a registered id (``"PerceptualDecisionMaking-v0"``), made with
    ``neurogym.make(env, **env_kwargs)`` (``gymnasium.make`` without neurogym); ``dt`` in seconds
    is passed to it in milliseconds.  Options apply to ids only.  Raises :class:`UnsupportedEnvError`
    (a ``TypeError``) for environments without supervised trials, and ``ImportError`` ("install
    neurokpflow[neurogym]") without gymnasium.
    """
    if isinstance(env, str):
        if dt is not None:
            if not (isinstance(dt, numbers.Real) and dt > 0):
                raise InputError(f"dt must be a positive number of seconds, got {dt!r}")
            env_kwargs["dt"] = dt * 1000.0
        return registered(env, env_kwargs, tolerance=tolerance)
    _require("gymnasium")
    if dt is not None or env_kwargs:
        raise InputTypeError(f"dt and environment options ({sorted(env_kwargs)}) apply to registered ids only; "
                        f"build the environment with them instead")
    return GymTask(env, tolerance=tolerance)


def registered(env_id, env_kwargs, tolerance=0.1) -> GymTask:
    """The task of registered environment ``env_id`` made with ``env_kwargs`` (the environment's own
    units: ``dt`` in ms); what ``task.spec`` stores."""
    gymnasium = _require("gymnasium")
    try:
        maker = importlib.import_module("neurogym").make
    except ImportError:
        maker = gymnasium.make
    try:
        made = maker(env_id, **env_kwargs)
    except gymnasium.error.Error as err:
        raise InputError(f"cannot make environment {env_id!r}: {err}") from None
    return GymTask(made, tolerance=tolerance, _env_id=env_id, _env_kwargs=env_kwargs)
