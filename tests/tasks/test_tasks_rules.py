"""Both rule-cued suites (yang19, driscoll24): golden parity with the reference generators, explicit
parameters that rebuild sampled batches, seeding, the matching tasks' response rule and the
originals' performance measures."""
import math

import numpy as np
import pytest
import torch

from neurokpflow import tasks
from neurokpflow.tasks.driscoll24 import DRISCOLL24_TASKS
from neurokpflow.tasks.yang19 import YANG19_TASKS

from golden import assert_matches_reference, golden_cases

TASKS = [("yang19", r) for r in YANG19_TASKS] + [("driscoll24", r) for r in DRISCOLL24_TASKS]


@pytest.mark.parametrize("suite, rule", TASKS)
def test_golden_parity_with_reference(suite, rule):
    """Inputs (with the suite's rule units), targets, cost mask and response direction equal the
    reference generator's to 1e-6 on every stored parameter set (≥ 8 per task)."""
    assert assert_matches_reference(suite, rule) >= 8


@pytest.mark.parametrize("suite", ["yang19", "driscoll24"])
def test_goldens_tell_the_tasks_apart(suite):
    """The parity check can fail: a task's goldens built by its anti / no-go sibling differ."""
    pairs = {"yang19": ("fdgo", "fdanti"), "driscoll24": ("dmsgo", "dmsnogo")}[suite]
    case, dt, get, params = next(iter(golden_cases(suite, pairs[0])))
    other = tasks.make(f"{suite}.{pairs[1]}", dt=dt).trials(params)
    assert not np.allclose(other.targets.numpy(), get("y"), atol=1e-6)


@pytest.mark.parametrize("suite, rule", TASKS)
def test_sampled_params_rebuild_the_batch(suite, rule):
    task = tasks.make(f"{suite}.{rule}", dt=0.05)
    noisy = task.sample(12, seed=3)
    clean = tasks.make(f"{suite}.{rule}", dt=0.05, input_noise=0.0).sample(12, seed=3)
    again = task.trials(noisy.params)
    assert set(noisy.params) == set(task.param_names)
    assert torch.equal(again.inputs, clean.inputs) and torch.equal(again.targets, clean.targets)
    assert torch.equal(again.mask, clean.mask) and np.array_equal(again.epochs, clean.epochs)
    assert not torch.equal(noisy.inputs, clean.inputs)
    assert set(np.unique(noisy.mask.numpy())) <= {0.0, 1.0, 2.0, 5.0, 10.0}
    # seeded: same seed, same batch; another seed, another batch
    assert torch.equal(task.sample(12, seed=3).inputs, noisy.inputs)
    assert not torch.equal(task.sample(12, seed=4).inputs, noisy.inputs)


@pytest.mark.parametrize("suite", ["yang19", "driscoll24"])
@pytest.mark.parametrize("family", ["dms", "dmc"])
def test_matching_tasks_respond_on_about_half_the_trials_and_complement(suite, family):
    go, nogo = tasks.make(f"{suite}.{family}go"), tasks.make(f"{suite}.{family}nogo")
    p = go.sample(400, seed=0).params
    r_go = ~np.isnan(go.trials(p).meta["response_angle"])
    r_nogo = ~np.isnan(nogo.trials(p).meta["response_angle"])
    assert np.array_equal(r_go, ~r_nogo)
    assert 0.4 < r_go.mean() < 0.6


@pytest.mark.parametrize("suite, inside, outside", [("yang19", 30, 40), ("driscoll24", 15, 20)])
def test_scoring_follows_get_perf(suite, inside, outside):
    """The originals' get_perf at the final step: tolerance 0.2π = 36° (Yang, ring population vector)
    or 0.1π = 18° (Driscoll, atan2 of the sin/cos outputs); fixation > 0.5 means no response."""
    task = tasks.make(f"{suite}.fdgo", dt=0.1)
    batch = task.test_grid()
    perfect = batch.targets.clone()
    assert task.score(perfect, batch).all()
    for shift, ok in ((inside, True), (outside, False)):
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
    nogo = tasks.make(f"{suite}.dmsnogo", dt=0.1)
    b = nogo.test_grid()
    p = dict(b.params)
    p["stim2_direction"] = p["stim1_direction"]
    b2 = nogo.trials(p)
    assert np.isnan(b2.meta["response_angle"]).all() and nogo.score(b2.targets, b2).all()
    # ...and wrong when it responds (the targets of the responding grid, same timing)
    assert not nogo.score(b.targets, b2).any()
