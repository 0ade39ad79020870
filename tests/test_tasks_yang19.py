"""The Yang 2019 suite: scoring, registration, parameter errors (golden parity and sampling: test_tasks_rules.py)."""
import math

import numpy as np
import pytest
import torch

from neurokpflow import tasks
from neurokpflow.tasks.yang19 import YANG19_TASKS, popvec

RULES = list(YANG19_TASKS)


def test_rule_order_and_layout_of_the_suite():
    mix = tasks.make("yang19")
    assert mix.n_inputs == 85 and mix.n_outputs == 33
    assert mix.input_names[65:] == tuple(f"rule_yang19.{r}" for r in RULES)
    assert tasks.from_spec(mix.spec).task_names == mix.task_names
    assert tasks.from_spec(mix.spec["mix"][6]) == mix.tasks[6]
    batch = mix.sample(40, seed=0)
    rule = batch.inputs[:, 0, 65:].argmax(1).numpy()
    assert [RULES[i] for i in rule] == [n.split(".")[1] for n in batch.meta["task"]]
    assert len(tasks.suite("yang19")) == 20


def test_scoring_follows_get_perf():
    task = tasks.make("yang19.fdgo", dt=0.1)
    batch = task.test_grid()
    perfect = batch.targets.clone()
    assert task.score(perfect, batch).all()
    # a ring bump rotated by 30° is still correct (< 36°), by 40° it is not
    for shift, ok in ((30, True), (40, False)):
        p = dict(batch.params)
        p["stim1_direction"] = p["stim1_direction"] + math.radians(shift)
        assert task.score(task.trials(p).targets, batch).all() == ok
    # breaking fixation early does not matter, fixating at the end does
    early = perfect.clone()
    early[:, 0, 0] = 0.0
    assert task.score(early, batch).all()
    late = perfect.clone()
    late[:, -1, 0] = 0.9
    assert not task.score(late, batch).any()
    # a no-go trial is correct when it keeps fixating
    nogo = tasks.make("yang19.dmsnogo", dt=0.1)
    b = nogo.test_grid()
    p = dict(b.params)
    p["stim2_direction"] = p["stim1_direction"]
    b2 = nogo.trials(p)
    assert np.isnan(b2.meta["response_angle"]).all() and nogo.score(b2.targets, b2).all()
    # ...and wrong when it responds (the targets of the responding grid, same timing)
    assert not nogo.score(b.targets, b2).any()


def test_popvec_recovers_the_bump_direction():
    task = tasks.make("yang19.fdgo")
    g = task.test_grid()
    direction = popvec(g.targets[:, -1, 1:].numpy())
    err = np.abs(np.angle(np.exp(1j * (direction - g.meta["response_angle"]))))
    assert err.max() < 1e-6


def test_bad_params_raise_one_clear_error():
    task = tasks.make("yang19.delaydm1", dt=0.1)
    p = task.test_grid().params
    with pytest.raises(KeyError, match="lack"):
        task.trials({k: v for k, v in p.items() if k != "go"})
    with pytest.raises(ValueError, match="does not use"):
        task.trials({**p, "stim1_modality": np.ones(len(p["go"]))})
    with pytest.raises(ValueError, match="stim2_on"):
        task.trials({**p, "stim2_on": p["stim1_on"] - 0.1})
    with pytest.raises(ValueError, match="unknown task .yang19.nope"):
        tasks.make("yang19.nope")
    with pytest.raises(ValueError, match="unknown suite"):
        tasks.suite("nope")
