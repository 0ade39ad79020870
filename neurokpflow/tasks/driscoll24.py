"""The 15 tasks of Driscoll, Shenoy & Sussillo 2024 (*Nat. Neurosci.* 27:1349) with the original angle encoding.

The 15 tasks are the ``"all"`` rule set of the reference generator (``stepnet/task.py`` of
lauradriscoll/flexible_multitask): Yang 2019's 20 tasks without the five non-delayed decision tasks
(dm1, dm2, contextdm1, contextdm2, multidm), in that rule order.  Names are the reference's rule
ids; the paper's names (the reference's ``rule_set_names`` in ``stepnet/tools_lnd.py``, in the same
order) are in ``DRISCOLL24_PAPER_NAMES`` (``task.paper_name``):

=================  ======================  =================  ======================
rule               paper                   rule               paper
=================  ======================  =================  ======================
fdgo               DelayPro                fdanti             DelayAnti
reactgo            ReactPro                reactanti          ReactAnti
delaygo            MemoryPro               delayanti          MemoryAnti
delaydm1 / 2       IntegrationModality1/2  contextdelaydm1/2  CtxtIntModality1/2
multidelaydm       IntegrationMultimodal   dmsgo / dmsnogo    ReactMatch2Sample / ReactNonMatch2Sample
dmcgo / dmcnogo    ReactCategoryPro / Anti
=================  ======================  =================  ======================

Inputs (5 per task): ``fixation``, then ``(sin θ, cos θ)·strength`` of modality 1 and of modality 2
(stimuli in one modality add up); :func:`neurokpflow.tasks.mix` appends one rule unit per task, and
the suite mix (``tasks.make("driscoll24")``) appends them in the original order, which gives the
original 20-unit layout ``[fixation, mod1 sin/cos, mod2 sin/cos, 15 rules]``.  This layout is the
one of :class:`~neurokpflow.tasks.DriscollTask`, so the two can share a mix.

Outputs (3): ``fixation``, ``sin``, ``cos`` (linear readout).  Targets have a baseline of 0: the
fixation target is 0.8 until the go time (whole trial when no response is due) and 0 after it; from
the go time the response target is ``(sin, cos)`` of the response direction (not scaled by
strength).  Trial parameters, responses and the cost mask are those of
:mod:`neurokpflow.tasks.rules`.

``sample`` follows the reference's ``mode="random"`` distributions (continuous uniform durations
in ms truncated to steps; epoch timings and the go/matching modalities once per batch unless
``sample_timing="per_trial"``; dmc directions uniform on the circle).  The reference draws
coherences as one of 100 values of U(0.005, 0.8) fixed per batch from numpy's unseeded global
generator; here every trial draws its coherence from U(0.005, 0.8) (the same marginal law, seeded).
``test_grid`` follows ``mode="test"`` (40 directions).  The performance measure is the reference's
``get_perf``: at the final step, fixation output > 0.5 on no-response trials; otherwise no fixation
and ``atan2(sin, cos)`` strictly within 0.1π of the response direction.  Input noise: SD
``input_noise·sqrt(2τ/dt)`` on the 5 task inputs (the reference also adds it to the rule units).
"""
from __future__ import annotations

import math

import numpy as np

from .rules import RuleTask, at, fixed, uniform
from .scoring import score_response_angle_within

__all__ = ["Driscoll24Task", "DRISCOLL24_TASKS", "DRISCOLL24_PAPER_NAMES"]

#: the 15 tasks in the reference's rule order (ruleset "all") -> (family, variant)
DRISCOLL24_TASKS = {
    "fdgo": ("go", False), "reactgo": ("react", False), "delaygo": ("delaygo", False),
    "fdanti": ("go", True), "reactanti": ("react", True), "delayanti": ("delaygo", True),
    "delaydm1": ("delaydm", 1), "delaydm2": ("delaydm", 2),
    "contextdelaydm1": ("ctxdelaydm", 1), "contextdelaydm2": ("ctxdelaydm", 2),
    "multidelaydm": ("ctxdelaydm", "both"), "dmsgo": ("dms", 0), "dmsnogo": ("dms", 1),
    "dmcgo": ("dmc", 0), "dmcnogo": ("dmc", 1),
}

#: rule id -> the paper's task name
DRISCOLL24_PAPER_NAMES = {
    "fdgo": "DelayPro", "reactgo": "ReactPro", "delaygo": "MemoryPro", "fdanti": "DelayAnti",
    "reactanti": "ReactAnti", "delayanti": "MemoryAnti", "delaydm1": "IntegrationModality1",
    "delaydm2": "IntegrationModality2", "contextdelaydm1": "CtxtIntModality1",
    "contextdelaydm2": "CtxtIntModality2", "multidelaydm": "IntegrationMultimodal",
    "dmsgo": "ReactMatch2Sample", "dmsnogo": "ReactNonMatch2Sample", "dmcgo": "ReactCategoryPro",
    "dmcnogo": "ReactCategoryAnti",
}

_DELAYED = (("stim1_on", None, uniform(0.2, 0.6)), ("stim1_off", "stim1_on", uniform(0.2, 1.6)),
            ("stim2_on", "stim1_off", uniform(0.2, 1.6)))
_DM = _DELAYED + (("stim2_off", "stim2_on", uniform(0.2, 1.6)), ("go", "stim2_off", uniform(0.1, 0.3)),
                  ("end", "go", uniform(0.3, 0.7)))
_MATCH = _DELAYED + (("end", "stim2_on", uniform(0.3, 0.7)),)
#: the reference's ``mode="random"`` epoch timings (seconds, truncated to steps duration by duration)
RANDOM_TIMING = {
    "go": (("stim1_on", None, uniform(0.3, 0.7)), ("go", "stim1_on", uniform(0.2, 1.5)),
           ("end", "go", uniform(0.3, 0.7))),
    "react": (("go", None, uniform(0.5, 2.5)), ("end", "go", uniform(0.3, 1.7))),
    "delaygo": (("stim1_on", None, uniform(0.3, 0.7)), ("stim1_off", "stim1_on", uniform(0.2, 1.6)),
                ("go", "stim1_off", uniform(0.2, 1.6)), ("end", "go", uniform(0.3, 0.7))),
    "delaydm": _DM, "ctxdelaydm": _DM, "dms": _MATCH, "dmc": _MATCH,
}
_MATCH_GRID = (("stim1_on", None, fixed(0.5)), ("stim1_off", "stim1_on", fixed(0.5)),
               ("stim2_on", "stim1_off", fixed(1.2)), ("end", "stim2_on", fixed(0.5)))
#: the reference's ``mode="test"`` epoch times
GRID_TIMING = {
    "go": at(stim1_on=0.5, go=1.5, end=2.0), "react": at(go=2.0, end=2.5),
    "delaygo": at(stim1_on=0.5, stim1_off=1.0, go=2.0, end=2.5),
    "delaydm": at(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=2.7, end=3.0),
    "ctxdelaydm": at(stim1_on=0.5, stim1_off=1.0, stim2_on=2.0, stim2_off=2.5, go=3.0, end=3.5),
    "dms": _MATCH_GRID, "dmc": _MATCH_GRID,
}


class Driscoll24Task(RuleTask):
    """One of the 15 Driscoll 2024 tasks (``DRISCOLL24_TASKS``), named ``"driscoll24.<rule>"``.

    Parameters
    ----------
    name : str
        ``"delaygo"`` or ``"driscoll24.delaygo"`` (MemoryPro; see ``DRISCOLL24_PAPER_NAMES``).
    dt : float, default 0.02
        Time step (s); the original uses 20 ms.
    sample_timing : {"per_batch", "per_trial"}, default "per_batch"
        Draw epoch timings and the go/matching-family modalities once per batch (original) or per trial.
    input_noise : float, default 0.1
        σ_x (the training scripts' value); the noise SD is ``σ_x·sqrt(2τ/dt)``.  0 disables noise.
    tau : float, default 0.1
        Time constant (s) used only to scale the input noise.
    easy : bool, default False
        The original ``easy_task`` option (coherences ×2).
    tolerance : float, default 0.1π
        Angular tolerance of :func:`~neurokpflow.tasks.score_response_angle_within`.
    fixation_threshold : float, default 0.5
    """

    suite, rules, baseline = "driscoll24", DRISCOLL24_TASKS, 0.0
    code_names, response_names = ("sin", "cos"), ("sin", "cos")
    random_timing, grid_timing, grid_directions = RANDOM_TIMING, GRID_TIMING, 40
    grid_strengths = {"delaydm": (4, 1.0, 0.5), "ctxdelaydm": (4, 0.4, 0.8)}
    multi_split = (0.005, 0.8)

    def __init__(self, name, *, dt=0.02, sample_timing="per_batch", input_noise=0.1, tau=0.1, easy=False,
                 tolerance=0.1 * math.pi, fixation_threshold=0.5):
        super().__init__(name, dt=dt, sample_timing=sample_timing, input_noise=input_noise, tau=tau, easy=easy,
                         tolerance=tolerance, fixation_threshold=fixation_threshold)

    @property
    def paper_name(self) -> str:
        """The task's name in the paper (e.g. ``"MemoryPro"`` for ``delaygo``)."""
        return DRISCOLL24_PAPER_NAMES[self.rule]

    def stimulus_code(self, direction):
        """``(sin θ, cos θ)``, for stimuli and responses alike."""
        return np.stack([np.sin(direction), np.cos(direction)], axis=-1)

    response_code = stimulus_code

    def coherence(self, rng, n, delayed):
        """U(0.005, 0.8) (×2 when ``easy``)."""
        return rng.uniform(0.005, 0.8, n) * (2 if self.easy else 1)

    def category_directions(self, rng, n):
        """Uniform on ``[0, 2π)``."""
        return rng.uniform(0, 2 * np.pi, n)

    def score(self, outputs, batch):
        """The reference's ``get_perf`` (:func:`~neurokpflow.tasks.score_response_angle_within`) with
        this task's tolerance and fixation threshold."""
        return score_response_angle_within(outputs, batch, tolerance=self.tolerance,
                                           fixation_threshold=self.fixation_threshold)
