"""The Driscoll 2024 suite: layout, registration, timing laws, encoding, scoring, mixing, specs."""
import math
import pickle

import numpy as np
import pytest

from neurokpflow import tasks
from neurokpflow.tasks.driscoll24 import DRISCOLL24_PAPER_NAMES, DRISCOLL24_TASKS

RULES = list(DRISCOLL24_TASKS)


def test_suite_layout_rule_order_and_specs():
    mix = tasks.make("driscoll24")
    assert mix.n_inputs == 20 and mix.n_outputs == 3 and len(tasks.suite("driscoll24")) == 15
    assert mix.input_names[:5] == ("fixation", "mod1_sin", "mod1_cos", "mod2_sin", "mod2_cos")
    assert mix.output_names == ("fixation", "sin", "cos")
    assert mix.input_names[5:] == tuple(f"rule_driscoll24.{r}" for r in RULES)
    assert set(RULES) == set(YANG := tasks.Yang19Task.rules) - {"dm1", "dm2", "contextdm1", "contextdm2", "multidm"}
    assert [r for r in YANG if r in RULES] == RULES  # the reference's rule order is Yang's, less the five
    batch = mix.sample(60, seed=0)
    rule = batch.inputs[:, 0, 5:].argmax(1).numpy()
    assert [RULES[i] for i in rule] == [n.split(".")[1] for n in batch.meta["task"]]
    # specs and plain pickle round-trip, for the mix and a single task
    again = tasks.from_spec(mix.spec)
    assert again.task_names == mix.task_names and again.spec == mix.spec
    single = tasks.make("driscoll24.delaygo", dt=0.05, easy=True)
    assert tasks.from_spec(single.spec) == single and pickle.loads(pickle.dumps(single)) == single
    assert pickle.loads(pickle.dumps(mix)).spec == mix.spec
    assert single.paper_name == "MemoryPro" and set(DRISCOLL24_PAPER_NAMES) == set(RULES)


def test_mixes_with_the_other_driscoll_tasks_but_not_with_yang19():
    both = tasks.mix([tasks.make("memory_pro"), tasks.make("driscoll24.delaygo")])
    b = both.sample(16, seed=1)
    assert b.inputs.shape[2] == 7 and set(b.tasks) == {"memory_pro", "driscoll24.delaygo"}
    assert both.score(b.targets, b).all()
    with pytest.raises(ValueError, match="different I/O layouts"):
        tasks.mix([tasks.make("yang19.fdgo"), tasks.make("driscoll24.fdgo")])


def test_angle_encoding_baseline_and_strength():
    task = tasks.make("driscoll24.delaydm1", dt=0.02)
    g = task.test_grid()
    x, y = g.inputs.numpy(), g.targets.numpy()
    p = g.params
    on = int(round(p["stim1_on"][0] / 0.02))
    # stimulus 1 in modality 1 only: strength·(sin, cos); modality 2 silent
    np.testing.assert_allclose(x[:, on, 1:3], p["stim1_strength"][:, None] *
                               np.stack([np.sin(p["stim1_direction"]), np.cos(p["stim1_direction"])], 1), atol=1e-6)
    assert np.all(x[:, :, 3:5] == 0)
    # targets: baseline 0, fixation 0.8 before go, unit vector (not strength-scaled) after go
    go = g.meta["go1_start"][0]
    assert np.all(y[:, :go, 1:] == 0) and np.all(y[:, :go, 0] == np.float32(0.8)) and np.all(y[:, go:, 0] == 0)
    np.testing.assert_allclose(np.linalg.norm(y[:, go:, 1:], axis=2), 1.0, atol=1e-6)
    assert g.n_trials == 160 and tasks.make("driscoll24.multidelaydm").test_grid().n_trials == 640
    assert tasks.make("driscoll24.fdgo").test_grid().n_trials == 80


@pytest.mark.parametrize("rule, epoch, low, high", [
    ("fdgo", "fix1", 0.3, 0.7), ("fdgo", "stim1", 0.2, 1.5), ("fdgo", "go1", 0.3, 0.7),
    ("reactgo", "fix1", 0.5, 2.5), ("reactgo", "go1", 0.3, 1.7),
    ("delaygo", "stim1", 0.2, 1.6), ("delaygo", "delay1", 0.2, 1.6),
    ("delaydm1", "fix1", 0.2, 0.6), ("delaydm1", "stim2", 0.2, 1.6), ("delaydm1", "delay2", 0.1, 0.3),
    ("dmsgo", "delay1", 0.2, 1.6), ("dmcnogo", "go1", 0.3, 0.7)])
def test_sampled_durations_follow_the_reference_uniforms(rule, epoch, low, high):
    """Per-trial timing: every duration is a truncated draw of U(low, high) and spreads over the range."""
    dt = 0.02
    b = tasks.make(f"driscoll24.{rule}", dt=dt, sample_timing="per_trial", input_noise=0.0).sample(400, seed=2)
    steps = b.meta[f"{epoch}_stop"] - b.meta[f"{epoch}_start"]
    assert steps.min() >= math.floor(low / dt + 1e-9) and steps.max() <= math.floor(high / dt)
    assert np.ptp(steps) * dt > 0.8 * (high - low)
    # the original draws one timing per batch
    shared = tasks.make(f"driscoll24.{rule}", dt=dt).sample(50, seed=2)
    assert len(set(shared.meta[f"{epoch}_stop"] - shared.meta[f"{epoch}_start"])) == 1


def test_dm_strengths_and_continuous_categories():
    p = tasks.make("driscoll24.delaydm1").sample(2000, seed=0).params
    coh = np.abs(p["stim1_strength"] - p["stim2_strength"]) / 2
    mean = (p["stim1_strength"] + p["stim2_strength"]) / 2
    assert 0.005 <= coh.min() < 0.02 and 0.78 < coh.max() <= 0.8 and 0.8 <= mean.min() and mean.max() <= 1.2
    d = tasks.make("driscoll24.dmcgo").sample(200, seed=0).params["stim1_direction"]
    assert len(np.unique(d)) == 200 and d.min() >= 0 and d.max() < 2 * np.pi
    multi = tasks.make("driscoll24.multidelaydm").sample(2000, seed=0).params
    s1 = multi["stim1_strength_mod1"] + multi["stim1_strength_mod2"]
    split = np.abs(multi["stim1_strength_mod1"] - multi["stim1_strength_mod2"]) / (s1 / 2)
    assert split.min() < 0.02 and 0.78 < split.max() <= 0.8


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown driscoll24 task"):
        tasks.Driscoll24Task("dm1")
    with pytest.raises(ValueError, match="unknown task 'driscoll24.dm1'"):
        tasks.make("driscoll24.dm1")
    with pytest.raises(ValueError, match="dt must be"):
        tasks.make("driscoll24.fdgo", dt=0.2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        tasks.make("driscoll24.fdgo", n_ring=8)
