"""The Yang 2019 suite: layout, population vector, parameter errors (golden parity, sampling, scoring: test_tasks_rules.py)."""
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
