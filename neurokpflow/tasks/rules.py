"""Rule-cued task suites built from explicit per-trial parameters.

This module holds what the ``yang19`` and ``driscoll24`` suites share: the task families of Yang
et al. 2019 (go / react / delay go, decision making with and without delays and context, delayed
match to sample or category), their per-trial parameters, the trial builder behind
``task.trials(params)``, the cost mask and the sampling of epoch timings.  A suite subclass
(:class:`~neurokpflow.tasks.Yang19Task`, :class:`~neurokpflow.tasks.Driscoll24Task`) supplies the
stimulus and response encodings, the target baseline, its timing distributions, its test grids and
its performance measure.

Trial parameters (``task.param_names``; times in seconds from trial start, directions in radians):

==================  ==============================================================================
family              parameters
==================  ==============================================================================
go                  stim1_direction, stim1_modality, stim1_on, go, end — the stimulus stays on
react               stim1_direction, stim1_modality, go (= stimulus onset), end — fixation stays on
delay go            stim1_direction, stim1_modality, stim1_on, stim1_off, go, end
dm                  stim1_direction, stim2_direction, stim1_strength, stim2_strength, stim1_on, go,
                    end — both stimuli on from stim1_on to go
context / multi dm  as dm with per-modality strengths ``stimI_strength_modM`` (I, M ∈ {1, 2})
delay dm            stim1/stim2 direction and strength, stim1_on, stim1_off, stim2_on, stim2_off,
                    go, end
context delay dm    as delay dm with the four per-modality strengths
dms, dmc            stim1/stim2 direction and modality, stim1_on, stim1_off, stim2_on (= go), end —
                    fixation stays on, the test stimulus stays on
==================  ==============================================================================

The response is the stimulus direction (anti: + π), the direction of the stronger stimulus (dm:
strength in the task's modality; context dm: in the attended modality; multi dm: the sum over
modalities; ties go to stimulus 2 as in both originals), or, for the matching tasks, the test
direction when a response is due: dmsgo responds on a match (circular distance < π/36), dmsnogo on
a non-match, dmcgo when both directions lie in the same category (``θ mod 2π < π``), dmcnogo
otherwise.

Targets: every output starts at the suite's baseline; the fixation target is 0.8 until the go time
(the whole trial when no response is due); from the go time the response channels add the
suite's response code of the response direction.  Cost mask (the originals' ``lsq`` mask): 0 for
the first 100 ms, 1 from 100 ms to the go time, 0 for 100 ms after it, 5 afterwards; ×2 on the
fixation channel (values {0, 1, 2, 5, 10}).  Sampled durations are converted to steps by truncation
(``floor(seconds/dt)``), each duration separately, as the originals' ``int(ms/dt)``; explicit times
are rounded to whole steps.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Task, as_rng, assemble, check_batch_size, window
from .batch import Batch
from .scoring import circular_distance
from ..errors import InputError, InputTypeError, UnknownNameError

__all__ = ["RuleTask", "FAMILY_PARAMS", "PARAM_KEYS"]

_STRENGTHS4 = ("stim1_strength_mod1", "stim1_strength_mod2", "stim2_strength_mod1", "stim2_strength_mod2")
_DIRS = ("stim1_direction", "stim2_direction")
#: parameters per family (see the module docstring)
FAMILY_PARAMS = {
    "go": ("stim1_direction", "stim1_modality", "stim1_on", "go", "end"),
    "react": ("stim1_direction", "stim1_modality", "go", "end"),
    "delaygo": ("stim1_direction", "stim1_modality", "stim1_on", "stim1_off", "go", "end"),
    "dm": _DIRS + ("stim1_strength", "stim2_strength", "stim1_on", "go", "end"),
    "ctxdm": _DIRS + _STRENGTHS4 + ("stim1_on", "go", "end"),
    "delaydm": _DIRS + ("stim1_strength", "stim2_strength", "stim1_on", "stim1_off", "stim2_on", "stim2_off",
                        "go", "end"),
    "ctxdelaydm": _DIRS + _STRENGTHS4 + ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go", "end"),
    "dms": _DIRS + ("stim1_modality", "stim2_modality", "stim1_on", "stim1_off", "stim2_on", "end"),
}
FAMILY_PARAMS["dmc"] = FAMILY_PARAMS["dms"]
#: every parameter name of the families; ``batch.params`` holds those of the trial's task, NaN elsewhere
PARAM_KEYS = tuple(dict.fromkeys(k for keys in FAMILY_PARAMS.values() for k in keys))
_TIME_KEYS = ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go", "end")
_MATCH_TOLERANCE = math.pi / 36
_EPOCHS = {"go": ("fix1", "stim1", "go1"), "react": ("fix1", "go1"), "dm": ("fix1", "stim1", "go1"),
           "ctxdm": ("fix1", "stim1", "go1"), "delaygo": ("fix1", "stim1", "delay1", "go1"),
           "delaydm": ("fix1", "stim1", "delay1", "stim2", "delay2", "go1"),
           "dms": ("fix1", "stim1", "delay1", "go1")}
_EPOCHS.update(ctxdelaydm=_EPOCHS["delaydm"], dmc=_EPOCHS["dms"])


def uniform(lo, hi):
    """Timing entry: a duration drawn from ``U(lo, hi)`` seconds."""
    return ("uniform", (lo, hi))


def one_of(*values):
    """Timing entry: a duration drawn from ``values`` (seconds) with equal probability."""
    return ("choice", values)


def fixed(value):
    """Timing entry: a fixed duration (seconds)."""
    return ("fixed", (value,))


def at(**times):
    """Timing table of fixed absolute times (seconds), e.g. ``at(stim1_on=0.5, go=1.5, end=2.0)``."""
    return tuple((key, None, fixed(t)) for key, t in times.items())


class RuleTask(Task):
    """Base class of a task of a rule-cued suite; see the module docstring for the parameters.

    Subclasses set ``suite`` (the name prefix), ``rules`` (rule -> (family, variant)),
    ``baseline``, ``code_names`` / ``response_names`` (channel names of one modality's stimulus
    code and of the response code), ``random_timing`` / ``grid_timing`` (family -> sequence of
    ``(key, previous key or None, timing entry)``: each time is the previous one plus a truncated
    duration), ``grid_directions`` and ``grid_strengths`` (family -> (n, scale, offset): strengths
    ``scale·i/n + offset``), ``multi_split`` (range of the multisensory split) and implement
    ``stimulus_code``, ``response_code``, ``coherence``, ``category_directions`` and ``score``.
    """

    suite: str = ""
    rules: dict = {}
    baseline: float = 0.0
    code_names: tuple = ()
    response_names: tuple = ()
    random_timing: dict = {}
    grid_timing: dict = {}
    grid_directions: int = 20
    grid_strengths: dict = {}
    multi_split: tuple[float, float] = (0.2, 0.8)

    def __init__(self, name, *, dt, sample_timing, input_noise, tau, easy, tolerance, fixation_threshold,
                 **extra):
        prefix = f"{self.suite}."
        rule = name[len(prefix):] if isinstance(name, str) and name.startswith(prefix) else name
        if rule not in self.rules:
            raise InputError(f"unknown {self.suite} task {name!r}; known: {list(self.rules)}")
        super().__init__(dt=dt, sample_timing=sample_timing, input_noise=input_noise, tau=tau, easy=easy,
                         **extra, tolerance=tolerance, fixation_threshold=fixation_threshold)
        if not (isinstance(dt, (int, float)) and 0 < dt <= 0.1):
            raise InputError(f"dt must be a number of seconds in (0, 0.1] (100 ms mask edges), got {dt!r}")
        if sample_timing not in ("per_batch", "per_trial"):
            raise InputError(f"sample_timing must be 'per_batch' or 'per_trial', got {sample_timing!r}")
        if input_noise < 0 or tau <= 0:
            raise InputError(f"input_noise must be >= 0 and tau > 0, got {input_noise}, {tau}")
        self.name, self.rule = f"{self.suite}.{rule}", rule
        self.family, self.variant = self.rules[rule]
        self.dt, self.sample_timing, self.easy = float(dt), sample_timing, bool(easy)
        self.input_noise, self.tau = float(input_noise), float(tau)
        self.tolerance, self.fixation_threshold = float(tolerance), float(fixation_threshold)
        self.input_names = ("fixation",) + tuple(f"mod{m}_{c}" for m in (1, 2) for c in self.code_names)
        self.output_names = ("fixation",) + tuple(self.response_names)
        self.param_names = FAMILY_PARAMS[self.family]
        self.epoch_names = _EPOCHS[self.family]
        self._freeze()

    # ------------------------------------------------------------------ suite hooks
    def stimulus_code(self, direction) -> np.ndarray:  # pragma: no cover - abstract
        """``[B, len(code_names)]`` input of one modality for stimuli of unit strength."""
        raise NotImplementedError

    def response_code(self, direction) -> np.ndarray:  # pragma: no cover - abstract
        """``[B, len(response_names)]`` target (above the baseline) for a response in ``direction``."""
        raise NotImplementedError

    def coherence(self, rng, n, delayed) -> np.ndarray:  # pragma: no cover - abstract
        """``n`` strength differences of a dm pair (before their random sign)."""
        raise NotImplementedError

    def category_directions(self, rng, n) -> np.ndarray:  # pragma: no cover - abstract
        """``n`` directions of a random dmc stimulus."""
        raise NotImplementedError

    @property
    def noise_std(self) -> float:
        """SD of the input noise actually added: ``input_noise·sqrt(2τ/dt)``."""
        return self.input_noise * math.sqrt(2 * self.tau / self.dt)

    def _q(self, seconds):
        """Seconds -> whole steps by truncation, as ``int(ms/dt)`` in the originals."""
        return np.floor(np.asarray(seconds, dtype=np.float64) / self.dt + 1e-9).astype(np.int64)

    def _timing(self, table, rng, n, B) -> dict:
        """Times in seconds (whole steps) from a timing table (see the class docstring)."""
        steps: dict[str, np.ndarray] = {}
        for key, previous, (kind, values) in table:
            if kind == "uniform":
                draw = rng.uniform(values[0], values[1], n)
            elif kind == "choice":
                draw = rng.choice(np.asarray(values, dtype=np.float64), n)
            else:
                draw = np.asarray(values[0], dtype=np.float64)
            d = np.broadcast_to(self._q(draw), (B,))
            steps[key] = d if previous is None else steps[previous] + d
        return {k: v * self.dt for k, v in steps.items()}

    # ------------------------------------------------------------------ sampling (mode="random")
    def sample(self, batch_size: int, seed=None) -> Batch:
        """Random trials from the original ``mode="random"`` distributions; ``meta["condition"]`` is -1."""
        B = check_batch_size(batch_size)
        rng = as_rng(seed)
        n = 1 if self.sample_timing == "per_batch" else B
        choice = lambda values: np.broadcast_to(rng.choice(np.asarray(values, dtype=np.float64), n), (B,))
        fam, p = self.family, {}
        if fam in ("go", "react", "delaygo"):
            p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
            p["stim1_modality"] = choice([1, 2])
        elif fam in ("dm", "ctxdm", "delaydm", "ctxdelaydm"):
            dist = rng.uniform(0.5 * np.pi, 1.5 * np.pi, B) * rng.choice([-1.0, 1.0], B)
            p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
            p["stim2_direction"] = np.mod(p["stim1_direction"] + dist, 2 * np.pi)
            delayed = fam in ("delaydm", "ctxdelaydm")

            def pair():
                mean = rng.uniform(0.8, 1.2, B)
                c = self.coherence(rng, B, delayed) * rng.choice([1.0, -1.0], B)
                return mean + c, mean - c

            if fam in ("dm", "delaydm"):
                p["stim1_strength"], p["stim2_strength"] = pair()
            elif self.variant in (1, 2):
                (s11, s21), (s12, s22) = pair(), pair()
                p.update(zip(_STRENGTHS4, (s11, s12, s21, s22)))
            else:  # multisensory: split each stimulus' strength across the modalities
                s1, s2 = pair()
                d1 = s1 * rng.uniform(*self.multi_split, B) * rng.choice([1.0, -1.0], B)
                d2 = s2 * rng.uniform(*self.multi_split, B) * rng.choice([1.0, -1.0], B)
                p.update(zip(_STRENGTHS4, (s1 + d1 / 2, s1 - d1 / 2, s2 + d2 / 2, s2 - d2 / 2)))
        else:  # dms / dmc
            p["stim1_modality"], p["stim2_modality"] = choice([1, 2]), choice([1, 2])
            if fam == "dms":
                match = rng.choice([0.0, 1.0], B)
                dist = rng.uniform(np.pi / 9, np.pi * 17 / 9, B) * rng.choice([-1.0, 1.0], B)
                p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
                p["stim2_direction"] = np.mod(p["stim1_direction"] + dist * (1 - match), 2 * np.pi)
            else:
                p["stim1_direction"] = self.category_directions(rng, B)
                p["stim2_direction"] = self.category_directions(rng, B)
        p.update(self._timing(self.random_timing[fam], rng, n, B))
        return self._build(p, np.full(B, -1), rng if self.input_noise > 0 else None)

    # ------------------------------------------------------------------ deterministic grids (mode="test")
    def test_grid(self, noise: bool = False, seed=0) -> Batch:
        """The original ``mode="test"`` grid over ``grid_directions`` (D) directions ``2πk/D``: D × 2
        modalities (go family), D × S stimulus-1 strengths (dm, delay dm), D × S × S strengths in
        the two modalities (context / multi dm), D × 2 × 2 modalities (matching tasks, all
        responding).  ``meta["condition"]`` is the grid index (direction index slowest).  Input
        noise only if ``noise``."""
        fam, D = self.family, self.grid_directions
        direction = lambda k: 2 * np.pi * k / D
        if fam in ("go", "react", "delaygo"):
            k, mod = np.unravel_index(np.arange(2 * D), (D, 2))
            p = {"stim1_direction": direction(k), "stim1_modality": mod + 1.0}
        elif fam in ("dm", "delaydm"):
            S, scale, offset = self.grid_strengths[fam]
            k, i = np.unravel_index(np.arange(D * S), (D, S))
            p = {"stim1_direction": direction(k), "stim2_direction": np.mod(direction(k) + np.pi, 2 * np.pi),
                 "stim1_strength": scale * i / S + offset}
            p["stim2_strength"] = 2 - p["stim1_strength"]
        elif fam in ("ctxdm", "ctxdelaydm"):
            S, scale, offset = self.grid_strengths[fam]
            k, i, j = np.unravel_index(np.arange(D * S * S), (D, S, S))
            p = {"stim1_direction": direction(k), "stim2_direction": np.mod(direction(k) + np.pi, 2 * np.pi),
                 "stim1_strength_mod1": scale * i / S + offset, "stim1_strength_mod2": scale * j / S + offset}
            p["stim2_strength_mod1"] = 2 - p["stim1_strength_mod1"]
            p["stim2_strength_mod2"] = 2 - p["stim1_strength_mod2"]
        else:
            k, m1, m2 = np.unravel_index(np.arange(4 * D), (D, 2, 2))
            if fam == "dms":
                d1 = direction(k)
            else:
                half = np.arange(D // 2) / (D // 2)
                d1 = np.concatenate([0.1 + 0.8 * half, 1.1 + 0.8 * half])[k] * np.pi
            respond_on_match = self.variant == 0
            p = {"stim1_direction": d1,
                 "stim2_direction": np.mod(d1 + (0.0 if respond_on_match else np.pi), 2 * np.pi),
                 "stim1_modality": m1 + 1.0, "stim2_modality": m2 + 1.0}
        B = len(k)
        p.update(self._timing(self.grid_timing[fam], None, 1, B))
        rng = as_rng(seed) if noise and self.input_noise > 0 else None
        return self._build(p, np.arange(B), rng)

    # ------------------------------------------------------------------ explicit trials
    def trials(self, params) -> Batch:
        """Noise-free trials from explicit per-trial parameters (``task.param_names``; see the module
        docstring of :mod:`neurokpflow.tasks.rules`): a dict of equal-length arrays, times in
        seconds (rounded to whole steps).  ``task.trials(batch.params)`` rebuilds a sampled batch
        without its noise."""
        if not isinstance(params, dict):
            raise InputTypeError(f"params must be a dict of per-trial arrays with keys {list(self.param_names)}")
        missing = [k for k in self.param_names if k not in params]
        if missing:
            raise UnknownNameError(f"params for {self.name!r} lack {missing}; required: {list(self.param_names)}")
        extra = [k for k in params if k not in self.param_names
                 and not (k in PARAM_KEYS and np.all(np.isnan(np.asarray(params[k], dtype=float))))]
        if extra:
            raise InputError(f"params for {self.name!r} hold keys it does not use: {extra}; "
                             f"required: {list(self.param_names)}")
        p = {k: np.atleast_1d(np.asarray(params[k], dtype=np.float64)) for k in self.param_names}
        sizes = {len(v) for v in p.values()}
        if len(sizes) != 1:
            raise InputError(f"params must all have one length (one entry per trial), got lengths {sorted(sizes)}")
        return self._build(p, np.arange(sizes.pop()), None)

    def _build(self, p, condition, noise_rng) -> Batch:
        fam, B = self.family, len(condition)
        p = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (B,)).copy() for k, v in p.items()}
        for key, value in p.items():
            if not np.all(np.isfinite(value)):
                raise InputError(f"params[{key!r}] holds non-finite values")
        for key in ("stim1_modality", "stim2_modality"):
            if key in p and not np.all(np.isin(p[key], (1, 2))):
                raise InputError(f"params[{key!r}] must be 1 or 2")
        st = {k: np.rint(p[k] / self.dt).astype(np.int64) for k in _TIME_KEYS if k in p}
        end = st["end"]
        go = st["go"] if "go" in st else st["stim2_on"]
        order = [k for k in ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go") if k in st] + ["end"]
        for a, b in zip(order[:-1], order[1:]):
            if np.any(st[a] > st[b]) or (b == "end" and np.any(st[a] >= st[b])):
                raise InputError(f"params must satisfy 0 <= {' <= '.join(order)} (go < end) in whole steps of "
                                 f"dt = {self.dt} s; fix {a!r} / {b!r}")
        if np.any(st[order[0]] < 0):
            raise InputError(f"params[{order[0]!r}] must be >= 0")
        T = int(end.max())
        n_code = len(self.code_names)
        x = np.zeros((B, T, self.n_inputs))

        def add_stim(direction, strength, modality, on, off):
            code = self.stimulus_code(np.asarray(direction)) * np.asarray(strength)[:, None]
            w = window(on, off, T)[..., None] * code[:, None, :]
            mod = np.broadcast_to(np.asarray(modality, dtype=np.int64), (B,))
            for m in (1, 2):
                sel = mod == m
                x[sel, :, 1 + (m - 1) * n_code:1 + m * n_code] += w[sel]

        one = np.ones(B)
        epochs = [("fix1", 0, go)]
        if fam in ("go", "react", "delaygo"):
            on = go if fam == "react" else st["stim1_on"]
            off = st["stim1_off"] if fam == "delaygo" else end
            add_stim(p["stim1_direction"], one, p["stim1_modality"], on, off)
            response = p["stim1_direction"] + (np.pi if self.variant else 0.0)
            fix_in_off = end if fam == "react" else go
            if fam != "react":
                epochs = [("fix1", 0, on), ("stim1", on, go if fam == "go" else off)]
                if fam == "delaygo":
                    epochs.append(("delay1", off, go))
        elif fam in ("dm", "ctxdm", "delaydm", "ctxdelaydm"):
            delayed = "delay" in fam
            on1, off1 = st["stim1_on"], st["stim1_off"] if delayed else go
            on2, off2 = (st["stim2_on"], st["stim2_off"]) if delayed else (on1, off1)
            if fam in ("dm", "delaydm"):
                add_stim(p["stim1_direction"], p["stim1_strength"], self.variant, on1, off1)
                add_stim(p["stim2_direction"], p["stim2_strength"], self.variant, on2, off2)
                s1, s2 = p["stim1_strength"], p["stim2_strength"]
            else:
                for m in (1, 2):
                    add_stim(p["stim1_direction"], p[f"stim1_strength_mod{m}"], m, on1, off1)
                    add_stim(p["stim2_direction"], p[f"stim2_strength_mod{m}"], m, on2, off2)
                if self.variant == "both":
                    s1 = p["stim1_strength_mod1"] + p["stim1_strength_mod2"]
                    s2 = p["stim2_strength_mod1"] + p["stim2_strength_mod2"]
                else:
                    s1, s2 = p[f"stim1_strength_mod{self.variant}"], p[f"stim2_strength_mod{self.variant}"]
            response = np.where(s1 > s2, p["stim1_direction"], p["stim2_direction"])
            fix_in_off = go
            epochs = [("fix1", 0, on1), ("stim1", on1, off1)]
            if delayed:
                epochs += [("delay1", off1, on2), ("stim2", on2, off2), ("delay2", off2, go)]
        else:
            on1, off1 = st["stim1_on"], st["stim1_off"]
            add_stim(p["stim1_direction"], one, p["stim1_modality"], on1, off1)
            add_stim(p["stim2_direction"], one, p["stim2_modality"], go, end)
            if fam == "dms":
                match = circular_distance(p["stim1_direction"], p["stim2_direction"]) < _MATCH_TOLERANCE
            else:
                match = (np.mod(p["stim1_direction"], 2 * np.pi) < np.pi) == \
                        (np.mod(p["stim2_direction"], 2 * np.pi) < np.pi)
            respond = match == (self.variant == 0)
            response = np.where(respond, p["stim2_direction"], np.nan)
            fix_in_off = end
            epochs = [("fix1", 0, on1), ("stim1", on1, off1), ("delay1", off1, go)]
        epochs.append(("go1", go, end))
        inside = window(0, end, T)
        x[:, :, 0] = window(0, fix_in_off, T)
        if noise_rng is not None:
            x += noise_rng.normal(0.0, self.noise_std, x.shape) * inside[..., None]

        respond = ~np.isnan(response)
        y = np.full((B, T, self.n_outputs), self.baseline)
        y[:, :, 0] = np.where(window(0, np.where(respond, go, end), T), 0.8, self.baseline)
        after_go = window(go, np.where(respond, end, go), T)
        y[:, :, 1:] += after_go[..., None] * self.response_code(np.where(respond, response, 0.0))[:, None, :]
        y *= inside[..., None]

        edge = int(self._q(0.1))
        weight = np.where(window(edge, go, T), 1.0, np.where(window(go + edge, end, T), 5.0, 0.0))
        mask = np.repeat(weight[..., None], self.n_outputs, axis=2)
        mask[:, :, 0] *= 2

        meta = {"condition": np.asarray(condition, dtype=np.int64),
                "stimulus_angle": np.mod(p["stim1_direction"], 2 * np.pi),
                "response_angle": np.mod(response, 2 * np.pi), "n_steps": end}
        for key in PARAM_KEYS:
            meta[f"param.{key}"] = p[key] if key in p else np.full(B, np.nan)
        return assemble(self.name, x, y, mask, epochs, meta, self.dt, self.input_names, self.output_names)
