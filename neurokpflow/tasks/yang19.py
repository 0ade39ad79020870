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

Trial parameters (``task.param_names``), responses and the cost mask are those of
:mod:`neurokpflow.tasks.rules`, which this suite shares with ``driscoll24``.

``sample`` follows the original ``mode="random"`` distributions (epoch timings and, for the go and
matching families, modalities drawn once per batch; ``sample_timing="per_trial"`` draws them per
trial), ``test_grid`` the original ``mode="test"`` grids.  Input noise (SD
``input_noise·sqrt(2τ/dt)``, σ_x = 0.01) is added inside the trial to the 65 task inputs (the
original also adds it to the rule units).
"""
from __future__ import annotations

import math

import numpy as np

from .batch import Batch
from .rules import PARAM_KEYS, RuleTask, at, fixed, one_of, uniform
from .scoring import ResponseCriterion, circular_distance, final_step
from ..errors import InputError

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

_DMC_LOCATIONS = np.array([0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9]) * np.pi
_DELAYED_DM = (("stim1_on", None, one_of(0.2, 0.4, 0.6)), ("stim1_off", "stim1_on", one_of(0.2, 0.4, 0.6)),
               ("stim2_on", "stim1_off", one_of(0.2, 0.4, 0.8, 1.6)),
               ("stim2_off", "stim2_on", one_of(0.2, 0.4, 0.6)), ("go", "stim2_off", uniform(0.1, 0.3)),
               ("end", "go", fixed(0.5)))
_DM = (("stim1_on", None, uniform(0.1, 0.4)), ("go", "stim1_on", one_of(0.4, 0.8, 1.6)), ("end", "go", fixed(0.5)))
_MATCH = (("stim1_on", None, one_of(0.2, 0.4, 0.6)), ("stim1_off", "stim1_on", one_of(0.2, 0.4, 0.6)),
          ("stim2_on", "stim1_off", one_of(0.2, 0.4, 0.8, 1.6)))
#: the original ``mode="random"`` epoch timings (seconds, truncated to steps duration by duration)
RANDOM_TIMING = {
    "go": (("stim1_on", None, uniform(0.3, 0.7)), ("go", "stim1_on", uniform(0.5, 1.5)), ("end", "go", fixed(0.5))),
    "react": (("go", None, uniform(0.5, 2.5)), ("end", "go", fixed(0.5))),
    "delaygo": (("stim1_on", None, one_of(0.3, 0.5, 0.7)), ("stim1_off", "stim1_on", one_of(0.2, 0.4, 0.6)),
                ("go", "stim1_off", one_of(0.2, 0.4, 0.8, 1.6)), ("end", "go", fixed(0.5))),
    "dm": _DM, "ctxdm": _DM, "delaydm": _DELAYED_DM, "ctxdelaydm": _DELAYED_DM,
    "dms": _MATCH + (("end", "stim2_on", fixed(0.5)),),
    "dmc": _MATCH + (("end", "stim2_on", one_of(0.2, 0.4, 0.6)),),
}


#: the original ``mode="test"`` epoch times
GRID_TIMING = {
    "go": at(stim1_on=0.5, go=1.5, end=2.0), "react": at(go=2.0, end=2.5),
    "delaygo": at(stim1_on=0.5, stim1_off=1.0, go=2.0, end=2.5), "dm": at(stim1_on=0.5, go=2.0, end=2.5),
    "delaydm": at(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=2.7, end=3.0),
    "ctxdm": at(stim1_on=0.5, go=1.5, end=2.0),
    "ctxdelaydm": at(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=3.0, end=3.5),
    "dms": at(stim1_on=0.5, stim1_off=1.0, stim2_on=2.2, end=2.7),
}
GRID_TIMING["dmc"] = GRID_TIMING["dms"]


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


class Yang19Task(RuleTask):
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

    suite, rules, baseline = "yang19", YANG19_TASKS, 0.05
    random_timing, grid_timing, grid_directions = RANDOM_TIMING, GRID_TIMING, 20
    grid_strengths = {"dm": (5, 0.4, 0.8), "delaydm": (5, 1.0, 0.5), "ctxdm": (5, 0.4, 0.8),
                      "ctxdelaydm": (5, 0.4, 0.8)}
    multi_split = (0.2, 0.8)

    def __init__(self, name, *, dt=0.02, sample_timing="per_batch", input_noise=0.01, tau=0.1, easy=False,
                 n_ring=32, **criterion):
        c = ResponseCriterion.resolve(ResponseCriterion(tolerance=0.2 * math.pi), criterion, "Yang19Task")
        tolerance, fixation_threshold = c.tolerance, c.fixation_threshold
        if not isinstance(n_ring, (int, np.integer)) or n_ring < 2:
            raise InputError(f"n_ring must be an int >= 2, got {n_ring!r}")
        self.n_ring = int(n_ring)
        self.code_names = tuple(f"{k:02d}" for k in range(self.n_ring))
        self.response_names = tuple(f"ring_{k:02d}" for k in range(self.n_ring))
        super().__init__(name, dt=dt, sample_timing=sample_timing, input_noise=input_noise, tau=tau, easy=easy,
                         n_ring=n_ring, tolerance=tolerance, fixation_threshold=fixation_threshold)

    def _bump(self, direction):
        pref = 2 * np.pi * np.arange(self.n_ring) / self.n_ring
        d = circular_distance(np.asarray(direction)[:, None], pref[None, :]) / (np.pi / 8)
        return 0.8 * np.exp(-d ** 2 / 2)

    def stimulus_code(self, direction):
        """Ring units ``0.8·exp(-d²/2)``, ``d`` the circular distance to ``2πk/n_ring`` over π/8."""
        return self._bump(direction)

    def response_code(self, direction):
        """The same bump on the output ring."""
        return self._bump(direction)

    def coherence(self, rng, n, delayed):
        coh = np.array([0.08, 0.16, 0.32]) * (2 if self.easy else 1) if delayed else \
            np.array([0.01, 0.02, 0.04, 0.08]) * (10 if self.easy else 1)
        return rng.choice(coh, n)

    def category_directions(self, rng, n):
        """One of the 10 directions ``(0.1 + 0.2k)π``."""
        return rng.choice(_DMC_LOCATIONS, n)

    def score(self, outputs, batch):
        """:func:`score_ring_response_within` with this task's tolerance and fixation threshold."""
        return score_ring_response_within(outputs, batch, tolerance=self.tolerance,
                                          fixation_threshold=self.fixation_threshold)


def suite_tasks(**options):
    """The 20 tasks in the original rule order, all built with ``options``."""
    return [Yang19Task(name, **options) for name in YANG19_TASKS]
