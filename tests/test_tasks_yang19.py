"""The Yang 2019 suite: golden parity with the reference generator, parameters, scoring, registration."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neurokpflow import tasks
from neurokpflow.tasks.yang19 import YANG19_TASKS, popvec

GOLDEN = Path(__file__).parent / "data" / "yang19"
RULES = list(YANG19_TASKS)


def _cases(rule):
    data = np.load(GOLDEN / f"{rule}.npz")
    names = sorted({k.split(".")[0] for k in data.files})
    for case in names:
        get = lambda k: data[f"{case}.{k}"]
        params = dict(zip(data[f"{case}.param_names"].tolist(), data[f"{case}.params"].T))
        yield case, float(get("dt")), get, params


@pytest.mark.parametrize("rule", RULES)
def test_golden_parity_with_reference(rule):
    """Inputs (with the suite's rule units), targets, cost mask and response location equal the
    reference generator's to 1e-6 on every stored parameter set (≥ 8 per task)."""
    n_sets = 0
    for case, dt, get, params in _cases(rule):
        task = tasks.make(f"yang19.{rule}", dt=dt)
        suite = tasks.mix(tasks.suite("yang19", dt=dt))
        batch = task.trials(params)
        full = suite._with_rule(RULES.index(rule), batch)
        x, y, m, yloc = get("x"), get("y"), get("c_mask"), get("y_loc")
        assert full.inputs.shape == x.shape, case
        np.testing.assert_allclose(full.inputs.numpy(), x, atol=1e-6, err_msg=f"{rule} {case} inputs")
        np.testing.assert_allclose(batch.targets.numpy(), y, atol=1e-6, err_msg=f"{rule} {case} targets")
        np.testing.assert_allclose(batch.mask.numpy(), m, atol=1e-6, err_msg=f"{rule} {case} mask")
        last = yloc[:, -1]
        expected = np.where(last < 0, np.nan, last)
        np.testing.assert_allclose(batch.meta["response_angle"], expected, atol=1e-6)
        after = batch.epochs == "go1"
        assert np.array_equal(after & (yloc >= 0), yloc >= 0), "the response is due from the go epoch on"
        if case == "test":  # our deterministic grid holds the same trials at the same indices
            grid = task.test_grid()[get("index")]
            np.testing.assert_allclose(grid.inputs.numpy(), x[:, :, :65], atol=1e-6)
            np.testing.assert_allclose(grid.targets.numpy(), y, atol=1e-6)
            np.testing.assert_allclose(grid.mask.numpy(), m, atol=1e-6)
        n_sets += len(x)
    assert n_sets >= 8


@pytest.mark.parametrize("rule", RULES)
def test_sampled_params_rebuild_the_batch(rule):
    task = tasks.make(f"yang19.{rule}", dt=0.05)
    noisy = task.sample(12, seed=3)
    clean = tasks.make(f"yang19.{rule}", dt=0.05, input_noise=0.0).sample(12, seed=3)
    again = task.trials(noisy.params)
    assert set(noisy.params) == set(task.param_names)
    for a, b in ((again, clean),):
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets) and torch.equal(a.mask, b.mask)
        assert np.array_equal(a.epochs, b.epochs)
    assert not torch.equal(noisy.inputs, clean.inputs)
    assert set(np.unique(noisy.mask.numpy())) <= {0.0, 1.0, 2.0, 5.0, 10.0}
    # seeded: same seed, same batch; another seed, another batch
    assert torch.equal(task.sample(12, seed=3).inputs, noisy.inputs)
    assert not torch.equal(task.sample(12, seed=4).inputs, noisy.inputs)


def test_matching_tasks_respond_on_half_the_trials_and_complement():
    go, nogo = tasks.make("yang19.dmsgo"), tasks.make("yang19.dmsnogo")
    p = go.sample(400, seed=0).params
    r_go = ~np.isnan(go.trials(p).meta["response_angle"])
    r_nogo = ~np.isnan(nogo.trials(p).meta["response_angle"])
    assert np.array_equal(r_go, ~r_nogo)
    assert 0.4 < r_go.mean() < 0.6


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
