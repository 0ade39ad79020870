"""Both rule-cued suites (yang19, driscoll24): golden parity with the reference generators, explicit
parameters that rebuild sampled batches, seeding, and the matching tasks' response rule."""
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
