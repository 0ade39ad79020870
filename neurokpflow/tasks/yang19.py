"""The 20 tasks of Yang et al. 2019 (*Nat. Neurosci.* 22:297) with the original ring encoding.

Inputs (65 per task): ``fixation``, then a ring of ``n_ring`` (32) units for modality 1 and one
for modality 2 (unit ``k`` prefers direction ``2πk/n_ring``).  A stimulus at direction θ with
strength s drives ring unit ``k`` with ``0.8·s·exp(-d²/2)``, ``d = |θ - 2πk/n|_circ / (π/8)``;
stimuli that overlap in one ring add up.  :func:`neurokpflow.tasks.mix` appends one rule unit per
task; the suite mix (``tasks.make("yang19")``) appends them in the original order, which gives the
original 85-unit layout ``[fixation, ring 1, ring 2, 20 rules]``.

Outputs (33): ``fixation`` and a ring of ``n_ring`` units.  Every target starts at a baseline of
0.05; the fixation target is 0.8 until the go time (the whole trial when no response is due); from
the go time the ring target is ``0.05 + 0.8·exp(-d²/2)`` around the response direction.

Cost mask (Yang's ``lsq`` mask): 0 for the first 100 ms, 1 from 100 ms to the go time, 0 for
100 ms after it, 5 afterwards; ×2 on the fixation channel (values {0, 1, 2, 5, 10}).  Durations
are converted to steps by truncation (``floor(seconds/dt)``), each duration separately, as the
original does.

Trial parameters (``task.param_names``; times in seconds from trial start, directions in radians):

==================  ==============================================================================
family              parameters
==================  ==============================================================================
go (fdgo, fdanti)   stim1_direction, stim1_modality, stim1_on, go, end — the stimulus stays on
react               stim1_direction, stim1_modality, go (= stimulus onset), end — fixation stays on
delay go            stim1_direction, stim1_modality, stim1_on, stim1_off, go, end
dm1, dm2            stim1_direction, stim2_direction, stim1_strength, stim2_strength, stim1_on, go,
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
modalities; ties go to stimulus 2 as in the original), or, for the matching tasks, the test
direction when a response is due: dmsgo responds on a match (circular distance < π/36), dmsnogo on
a non-match, dmcgo when both directions lie in the same category (``θ < π``), dmcnogo otherwise.

``sample`` follows the original ``mode="random"`` distributions (epoch timings and, for the go and
matching families, modalities drawn once per batch; ``sample_timing="per_trial"`` draws them per
trial), ``test_grid`` the original ``mode="test"`` grids.  Input noise (SD
``input_noise·sqrt(2τ/dt)``, σ_x = 0.01) is added inside the trial to the 65 task inputs (the
original also adds it to the rule units).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import Task, as_rng, assemble, check_batch_size, window
from .batch import Batch
from .scoring import circular_distance, final_step

__all__ = ["Yang19Task", "YANG19_TASKS", "PARAM_KEYS", "popvec", "score_ring_response_within"]

#: the 20 tasks in the original's rule order -> (family, variant)
YANG19_TASKS = {
    "fdgo": ("go", False), "reactgo": ("react", False), "delaygo": ("delaygo", False),
    "fdanti": ("go", True), "reactanti": ("react", True), "delayanti": ("delaygo", True),
    "dm1": ("dm", 1), "dm2": ("dm", 2), "contextdm1": ("ctxdm", 1), "contextdm2": ("ctxdm", 2),
    "multidm": ("ctxdm", "both"), "delaydm1": ("delaydm", 1), "delaydm2": ("delaydm", 2),
    "contextdelaydm1": ("ctxdelaydm", 1), "contextdelaydm2": ("ctxdelaydm", 2),
    "multidelaydm": ("ctxdelaydm", "both"), "dmsgo": ("dms", 0), "dmsnogo": ("dms", 1),
    "dmcgo": ("dmc", 0), "dmcnogo": ("dmc", 1),
}

_STRENGTHS4 = ("stim1_strength_mod1", "stim1_strength_mod2", "stim2_strength_mod1", "stim2_strength_mod2")
_DIRS = ("stim1_direction", "stim2_direction")
#: parameters per family (see the module docstring)
_PARAMS = {
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
_PARAMS["dmc"] = _PARAMS["dms"]
#: every parameter name of the suite; ``batch.params`` holds those of the trial's task, NaN elsewhere
PARAM_KEYS = tuple(dict.fromkeys(k for keys in _PARAMS.values() for k in keys))
_TIME_KEYS = ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go", "end")
_EPOCHS = ("fix1", "stim1", "delay1", "stim2", "delay2", "go1")
_MATCH_TOLERANCE = math.pi / 36
_DMC_LOCATIONS = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]) * np.pi


def popvec(ring) -> np.ndarray:
    """Population-vector direction in ``[0, 2π)`` of ring activity ``[..., n]`` (unit k prefers 2πk/n),
    ``atan2(Σ y sin / Σ y, Σ y cos / Σ y)`` as in Yang 2019 (a negative sum flips the direction)."""
    ring = np.asarray(ring, dtype=np.float64)
    pref = 2 * np.pi * np.arange(ring.shape[-1]) / ring.shape[-1]
    total = ring.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.arctan2((ring * np.sin(pref)).sum(-1) / total, (ring * np.cos(pref)).sum(-1) / total)
    return np.mod(angle, 2 * np.pi)


def score_ring_response_within(outputs, batch: Batch, tolerance: float = 0.2 * math.pi,
                               fixation_threshold: float = 0.5) -> np.ndarray:
    """Yang 2019's ``get_perf`` on outputs ``[fixation, ring...]``, read at each trial's final step.

    The network fixates when ``output[fixation] > fixation_threshold``.  A trial without a response
    (``meta["response_angle"]`` NaN) is correct when it fixates; a response trial when it does not
    fixate and the population-vector direction of the ring lies strictly within ``tolerance``
    (0.2π = 36° in the original) of the response direction.
    """
    y = final_step(outputs, batch)
    fixating = y[:, 0] > fixation_threshold
    target = np.asarray(batch.meta["response_angle"], dtype=np.float64)
    respond = ~np.isnan(target)
    error = circular_distance(popvec(y[:, 1:]), np.where(respond, target, 0.0))
    return np.where(respond, ~fixating & (error < tolerance), fixating)


class Yang19Task(Task):
    """One of the 20 Yang 2019 tasks (``YANG19_TASKS``), named ``"yang19.<rule>"``.

    Parameters
    ----------
    name : str
        ``"dm1"`` or ``"yang19.dm1"``.
    dt : float, default 0.02
        Time step (s); the original uses 20 ms.
    sample_timing : {"per_batch", "per_trial"}, default "per_batch"
        Draw epoch timings and the go/matching-family modalities once per batch (original) or per trial.
    input_noise : float, default 0.01
        σ_x; the noise SD is ``σ_x·sqrt(2τ/dt)``.  0 disables noise.
    tau : float, default 0.1
        Time constant (s) used only to scale the input noise.
    easy : bool, default False
        The original ``easy_task`` coherences (×10 for dm / context dm, ×2 for the delayed ones).
    n_ring : int, default 32
    tolerance : float, default 0.2π
        Angular tolerance of :func:`score_ring_response_within`.
    fixation_threshold : float, default 0.5
    """

    output_names = ()

    def __init__(self, name, *, dt=0.02, sample_timing="per_batch", input_noise=0.01, tau=0.1, easy=False,
                 n_ring=32, tolerance=0.2 * math.pi, fixation_threshold=0.5):
        rule = name[len("yang19."):] if isinstance(name, str) and name.startswith("yang19.") else name
        if rule not in YANG19_TASKS:
            raise ValueError(f"unknown yang19 task {name!r}; known: {list(YANG19_TASKS)}")
        super().__init__(dt=dt, sample_timing=sample_timing, input_noise=input_noise, tau=tau, easy=easy,
                         n_ring=n_ring, tolerance=tolerance, fixation_threshold=fixation_threshold)
        if not (isinstance(dt, (int, float)) and 0 < dt <= 0.1):
            raise ValueError(f"dt must be a number of seconds in (0, 0.1] (100 ms mask edges), got {dt!r}")
        if sample_timing not in ("per_batch", "per_trial"):
            raise ValueError(f"sample_timing must be 'per_batch' or 'per_trial', got {sample_timing!r}")
        if input_noise < 0 or tau <= 0:
            raise ValueError(f"input_noise must be >= 0 and tau > 0, got {input_noise}, {tau}")
        if not isinstance(n_ring, (int, np.integer)) or n_ring < 2:
            raise ValueError(f"n_ring must be an int >= 2, got {n_ring!r}")
        self.name, self.rule = f"yang19.{rule}", rule
        self.family, self.variant = YANG19_TASKS[rule]
        self.dt, self.sample_timing, self.easy, self.n_ring = float(dt), sample_timing, bool(easy), int(n_ring)
        self.input_noise, self.tau = float(input_noise), float(tau)
        self.tolerance, self.fixation_threshold = float(tolerance), float(fixation_threshold)
        ring = [f"{k:02d}" for k in range(self.n_ring)]
        self.input_names = ("fixation",) + tuple(f"mod1_{k}" for k in ring) + tuple(f"mod2_{k}" for k in ring)
        self.output_names = ("fixation",) + tuple(f"ring_{k}" for k in ring)
        self.param_names = _PARAMS[self.family]
        self.epoch_names = {"go": ("fix1", "stim1", "go1"), "react": ("fix1", "go1"),
                            "dm": ("fix1", "stim1", "go1"), "ctxdm": ("fix1", "stim1", "go1")}.get(
            self.family, ("fix1", "stim1", "delay1", "stim2", "delay2", "go1")
            if "delaydm" in self.family else ("fix1", "stim1", "delay1", "go1"))
        self._freeze()

    @property
    def noise_std(self) -> float:
        """SD of the input noise actually added: ``input_noise·sqrt(2τ/dt)``."""
        return self.input_noise * math.sqrt(2 * self.tau / self.dt)

    # ------------------------------------------------------------------ sampling (mode="random")
    def _q(self, seconds):
        """Seconds -> whole steps by truncation, as ``int(ms/dt)`` in the original."""
        return np.floor(np.asarray(seconds, dtype=np.float64) / self.dt + 1e-9).astype(np.int64)

    def sample(self, batch_size: int, seed=None) -> Batch:
        """Random trials from the original ``mode="random"`` distributions; ``meta["condition"]`` is -1."""
        B = check_batch_size(batch_size)
        rng = as_rng(seed)
        n = 1 if self.sample_timing == "per_batch" else B
        per = lambda draws: np.broadcast_to(np.asarray(draws), (B,))
        choice = lambda values: per(rng.choice(np.asarray(values, dtype=np.float64), n))
        steps = lambda values: per(self._q(rng.choice(np.asarray(values, dtype=np.float64), n)))
        ustep = lambda lo, hi: per(self._q(rng.uniform(lo, hi, n)))
        half = self._q(0.5)
        fam, p = self.family, {}
        if fam in ("go", "react", "delaygo"):
            p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
            p["stim1_modality"] = choice([1, 2])
            if fam == "go":
                on = ustep(0.3, 0.7)
                go = on + ustep(0.5, 1.5)
                p.update(stim1_on=on)
            elif fam == "react":
                go = ustep(0.5, 2.5)
            else:
                on = steps([0.3, 0.5, 0.7])
                off = on + steps([0.2, 0.4, 0.6])
                go = off + steps([0.2, 0.4, 0.8, 1.6])
                p.update(stim1_on=on, stim1_off=off)
            p.update(go=go, end=go + half)
        elif fam in ("dm", "ctxdm", "delaydm", "ctxdelaydm"):
            dist = rng.uniform(0.5 * np.pi, 1.5 * np.pi, B) * rng.choice([-1.0, 1.0], B)
            p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
            p["stim2_direction"] = np.mod(p["stim1_direction"] + dist, 2 * np.pi)
            delayed = fam in ("delaydm", "ctxdelaydm")
            coh = np.array([0.08, 0.16, 0.32]) * (2 if self.easy else 1) if delayed else \
                np.array([0.01, 0.02, 0.04, 0.08]) * (10 if self.easy else 1)

            def pair():
                mean = rng.uniform(0.8, 1.2, B)
                c = rng.choice(coh, B) * rng.choice([1.0, -1.0], B)
                return mean + c, mean - c

            if fam in ("dm", "delaydm"):
                p["stim1_strength"], p["stim2_strength"] = pair()
            elif self.variant in (1, 2):
                (s11, s21), (s12, s22) = pair(), pair()
                p.update(zip(_STRENGTHS4, (s11, s12, s21, s22)))
            else:  # multisensory: split each stimulus' strength across the modalities
                s1, s2 = pair()
                d1 = s1 * rng.uniform(0.2, 0.8, B) * rng.choice([1.0, -1.0], B)
                d2 = s2 * rng.uniform(0.2, 0.8, B) * rng.choice([1.0, -1.0], B)
                p.update(zip(_STRENGTHS4, (s1 + d1 / 2, s1 - d1 / 2, s2 + d2 / 2, s2 - d2 / 2)))
            if delayed:
                on1 = steps([0.2, 0.4, 0.6])
                off1 = on1 + steps([0.2, 0.4, 0.6])
                on2 = off1 + steps([0.2, 0.4, 0.8, 1.6])
                off2 = on2 + steps([0.2, 0.4, 0.6])
                go = off2 + ustep(0.1, 0.3)
                p.update(stim1_on=on1, stim1_off=off1, stim2_on=on2, stim2_off=off2)
            else:
                on1 = ustep(0.1, 0.4)
                go = on1 + steps([0.4, 0.8, 1.6])
                p.update(stim1_on=on1)
            p.update(go=go, end=go + half)
        else:  # dms / dmc
            p["stim1_modality"], p["stim2_modality"] = choice([1, 2]), choice([1, 2])
            if fam == "dms":
                match = rng.choice([0.0, 1.0], B)
                dist = rng.uniform(np.pi / 9, np.pi * 17 / 9, B) * rng.choice([-1.0, 1.0], B)
                p["stim1_direction"] = rng.uniform(0, 2 * np.pi, B)
                p["stim2_direction"] = np.mod(p["stim1_direction"] + dist * (1 - match), 2 * np.pi)
            else:
                p["stim1_direction"] = rng.choice(_DMC_LOCATIONS, B)
                p["stim2_direction"] = rng.choice(_DMC_LOCATIONS, B)
            on1 = steps([0.2, 0.4, 0.6])
            off1 = on1 + steps([0.2, 0.4, 0.6])
            on2 = off1 + steps([0.2, 0.4, 0.8, 1.6])
            end = on2 + (half if fam == "dms" else steps([0.2, 0.4, 0.6]))
            p.update(stim1_on=on1, stim1_off=off1, stim2_on=on2, end=end)
        for key in _TIME_KEYS:
            if key in p:
                p[key] = p[key] * self.dt
        noise = rng if self.input_noise > 0 else None
        return self._build(p, np.full(B, -1), noise)

    # ------------------------------------------------------------------ deterministic grids (mode="test")
    def test_grid(self, noise: bool = False, seed=0) -> Batch:
        """The original ``mode="test"`` grid: 20 directions × 2 modalities (go family, 40 trials),
        × 5 strengths (dm, delay dm: 100), × 5 × 5 strengths (context / multi dm: 500), × 2 × 2
        modalities (matching tasks, all responding: 80).  ``meta["condition"]`` is the grid index
        (direction index slowest).  Input noise only if ``noise``."""
        fam, p = self.family, {}
        if fam in ("go", "react", "delaygo"):
            k, mod = np.unravel_index(np.arange(40), (20, 2))
            B = 40
            p = {"stim1_direction": 2 * np.pi * k / 20, "stim1_modality": mod + 1.0}
            times = {"go": dict(stim1_on=0.5, go=1.5, end=2.0), "react": dict(go=2.0, end=2.5),
                     "delaygo": dict(stim1_on=0.5, stim1_off=1.0, go=2.0, end=2.5)}[fam]
        elif fam in ("dm", "delaydm"):
            k, i = np.unravel_index(np.arange(100), (20, 5))
            B = 100
            p = {"stim1_direction": 2 * np.pi * k / 20, "stim2_direction": np.mod(2 * np.pi * k / 20 + np.pi, 2 * np.pi)}
            if fam == "dm":
                p["stim1_strength"] = 0.4 * i / 5 + 0.8
                times = dict(stim1_on=0.5, go=2.0, end=2.5)
            else:
                p["stim1_strength"] = 1.0 * i / 5 + 0.5
                times = dict(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=2.7, end=3.0)
            p["stim2_strength"] = 2 - p["stim1_strength"]
        elif fam in ("ctxdm", "ctxdelaydm"):
            k, i, j = np.unravel_index(np.arange(500), (20, 5, 5))
            B = 500
            p = {"stim1_direction": 2 * np.pi * k / 20, "stim2_direction": np.mod(2 * np.pi * k / 20 + np.pi, 2 * np.pi),
                 "stim1_strength_mod1": 0.4 * i / 5 + 0.8, "stim1_strength_mod2": 0.4 * j / 5 + 0.8}
            p["stim2_strength_mod1"] = 2 - p["stim1_strength_mod1"]
            p["stim2_strength_mod2"] = 2 - p["stim1_strength_mod2"]
            times = dict(stim1_on=0.5, go=1.5, end=2.0) if fam == "ctxdm" else \
                dict(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=3.0, end=3.5)
        else:
            k, m1, m2 = np.unravel_index(np.arange(80), (20, 2, 2))
            B = 80
            if fam == "dms":
                d1 = 2 * np.pi * k / 20
            else:
                half = np.arange(10) / 10
                d1 = np.concatenate([0.1 + 0.8 * half, 1.1 + 0.8 * half])[k] * np.pi
            respond_on_match = self.variant == 0
            p = {"stim1_direction": d1,
                 "stim2_direction": np.mod(d1 + (0.0 if respond_on_match else np.pi), 2 * np.pi),
                 "stim1_modality": m1 + 1.0, "stim2_modality": m2 + 1.0}
            times = dict(stim1_on=0.5, stim1_off=1.0, stim2_on=2.2, end=2.7)
        for key, sec in times.items():
            p[key] = self._q(sec) * self.dt * np.ones(B)
        rng = as_rng(seed) if noise and self.input_noise > 0 else None
        return self._build(p, np.arange(B), rng)

    # ------------------------------------------------------------------ explicit trials
    def trials(self, params) -> Batch:
        """Noise-free trials from explicit per-trial parameters (``task.param_names``; see the module
        docstring): a dict of equal-length arrays, times in seconds (rounded to whole steps).
        ``task.trials(batch.params)`` rebuilds a sampled batch without its noise."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of per-trial arrays with keys {list(self.param_names)}")
        missing = [k for k in self.param_names if k not in params]
        if missing:
            raise KeyError(f"params for {self.name!r} lack {missing}; required: {list(self.param_names)}")
        extra = [k for k in params if k not in self.param_names
                 and not (k in PARAM_KEYS and np.all(np.isnan(np.asarray(params[k], dtype=float))))]
        if extra:
            raise ValueError(f"params for {self.name!r} hold keys it does not use: {extra}; "
                             f"required: {list(self.param_names)}")
        p = {k: np.atleast_1d(np.asarray(params[k], dtype=np.float64)) for k in self.param_names}
        sizes = {len(v) for v in p.values()}
        if len(sizes) != 1:
            raise ValueError(f"params must all have one length (one entry per trial), got lengths {sorted(sizes)}")
        return self._build(p, np.arange(sizes.pop()), None)

    def _build(self, p, condition, noise_rng) -> Batch:
        fam, B = self.family, len(condition)
        p = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (B,)).copy() for k, v in p.items()}
        for key, value in p.items():
            if not np.all(np.isfinite(value)):
                raise ValueError(f"params[{key!r}] holds non-finite values")
        for key in ("stim1_modality", "stim2_modality"):
            if key in p and not np.all(np.isin(p[key], (1, 2))):
                raise ValueError(f"params[{key!r}] must be 1 or 2")
        st = {k: np.rint(p[k] / self.dt).astype(np.int64) for k in _TIME_KEYS if k in p}
        end = st["end"]
        go = st["go"] if "go" in st else st["stim2_on"]
        order = [k for k in ("stim1_on", "stim1_off", "stim2_on", "stim2_off", "go") if k in st] + ["end"]
        for a, b in zip(order[:-1], order[1:]):
            if np.any(st[a] > st[b]) or (b == "end" and np.any(st[a] >= st[b])):
                raise ValueError(f"params must satisfy 0 <= {' <= '.join(order)} (go < end) in whole steps of "
                                 f"dt = {self.dt} s; fix {a!r} / {b!r}")
        if np.any(st[order[0]] < 0):
            raise ValueError(f"params[{order[0]!r}] must be >= 0")
        T = int(end.max())
        n_in, n_ring = self.n_inputs, self.n_ring
        x = np.zeros((B, T, n_in))
        rows = np.arange(B)
        pref = 2 * np.pi * np.arange(n_ring) / n_ring

        def bump(direction):
            d = circular_distance(np.asarray(direction)[:, None], pref[None, :]) / (np.pi / 8)
            return 0.8 * np.exp(-d ** 2 / 2)

        def add_stim(direction, strength, modality, on, off):
            w = window(on, off, T)[..., None] * (bump(direction) * np.asarray(strength)[:, None])[:, None, :]
            mod = np.broadcast_to(np.asarray(modality, dtype=np.int64), (B,))
            for m in (1, 2):
                sel = mod == m
                x[sel, :, 1 + (m - 1) * n_ring:1 + m * n_ring] += w[sel]

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
        y = np.full((B, T, self.n_outputs), 0.05)
        y[:, :, 0] = np.where(window(0, np.where(respond, go, end), T), 0.8, 0.05)
        after_go = window(go, np.where(respond, end, go), T)
        y[:, :, 1:] += after_go[..., None] * bump(np.where(respond, response, 0.0))[:, None, :]
        y *= inside[..., None]

        edge = int(self._q(0.1))
        m = np.where(window(edge, go, T), 1.0, np.where(window(go + edge, end, T), 5.0, 0.0))
        mask = np.repeat(m[..., None], self.n_outputs, axis=2)
        mask[:, :, 0] *= 2

        meta = {"condition": np.asarray(condition, dtype=np.int64),
                "stimulus_angle": np.mod(p["stim1_direction"], 2 * np.pi),
                "response_angle": np.mod(response, 2 * np.pi), "n_steps": end}
        for key in PARAM_KEYS:
            meta[f"param.{key}"] = p[key] if key in p else np.full(B, np.nan)
        return assemble(self.name, x, y, mask, epochs, meta, self.dt, self.input_names, self.output_names)

    def score(self, outputs, batch):
        """:func:`score_ring_response_within` with this task's tolerance and fixation threshold."""
        return score_ring_response_within(outputs, batch, tolerance=self.tolerance,
                                          fixation_threshold=self.fixation_threshold)


def suite_tasks(**options):
    """The 20 tasks in the original rule order, all built with ``options``."""
    return [Yang19Task(name, **options) for name in YANG19_TASKS]
