"""tasks.from_gym: real neurogym environments as tasks (needs the ``neurogym`` extra)."""
import copy
import pickle
import sys
import warnings

import numpy as np
import pytest
import torch

from neurokpflow import tasks

ngym = pytest.importorskip("neurogym", reason="install neurokpflow[neurogym] to test tasks.from_gym")
gym = pytest.importorskip("gymnasium")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # gymnasium's registry notes on neurogym metadata


def _reference(env, n, seed):
    """The environment's own trials, drawn as documented for ``sample(n, seed)``."""
    env = copy.deepcopy(env.unwrapped)
    env.seed(int(np.random.SeedSequence(seed).generate_state(1)[0]))
    out = []
    for _ in range(n):
        env.new_trial()
        out.append((env.ob.copy(), env.gt.copy(), dict(env.start_ind), dict(env.end_ind), dict(env.trial)))
    return out


def test_perceptual_decision_making_equals_the_environment():
    task = tasks.from_gym("PerceptualDecisionMaking-v0", dt=0.02)
    assert task.dt == pytest.approx(0.02) and task.env.dt == pytest.approx(20.0)  # seconds here, ms there
    assert task.input_names == ("fixation", "stimulus_0", "stimulus_1")
    assert task.output_names == ("fixation", "choice_0", "choice_1")
    batch = task.sample(6, seed=4)
    ref = _reference(ngym.make("PerceptualDecisionMaking-v0", dt=20), 6, 4)
    T = (100 + 2000 + 0 + 100) // 20  # the environment's default timing (ms) / dt
    assert batch.inputs.shape == (6, T, 3) and batch.targets.shape == (6, T, 3)
    for b, (ob, gt, start, stop, trial) in enumerate(ref):
        np.testing.assert_allclose(batch.inputs[b].numpy(), ob, atol=1e-6)
        assert np.array_equal(batch.targets[b].numpy(), np.eye(3)[gt])
        assert batch.meta["trial.ground_truth"][b] == trial["ground_truth"]
        assert batch.meta["trial.coh"][b] == trial["coh"]
        for period in start:
            assert (batch.meta[f"{period}_start"][b], batch.meta[f"{period}_stop"][b]) == (start[period], stop[period])
            assert np.all(batch.epochs[b, start[period]:stop[period]] == period)
    assert np.all(batch.mask.numpy() == 1.0)
    assert task.score(batch.targets, batch).all()
    wrong = batch.targets.clone()[:, :, [0, 2, 1]]  # the other choice
    assert not task.score(wrong, batch).any()


def test_go_nogo_with_padding_an_env_object_and_dt():
    env = ngym.make("GoNogo-v0", dt=50, timing={"delay": ("choice", [100, 300, 500])})
    task = tasks.from_gym(env)
    assert task.dt == pytest.approx(0.05) and task.output_names == ("fixation", "go")
    batch = task.sample(40, seed=1)
    ref = _reference(env, 40, 1)
    lengths = np.array([len(ob) for ob, *_ in ref])
    assert len(set(lengths)) > 1 and batch.n_steps == lengths.max()
    assert np.array_equal(batch.meta["n_steps"], lengths)
    for b, (ob, gt, *_rest) in enumerate(ref):
        n = len(ob)
        np.testing.assert_allclose(batch.inputs[b, :n].numpy(), ob, atol=1e-6)
        assert np.array_equal(batch.targets[b, :n].numpy(), np.eye(2)[gt])
        assert np.all(batch.mask[b, :n].numpy() == 1) and np.all(batch.mask[b, n:].numpy() == 0)
        assert np.all(batch.epochs[b, n:] == "pad") and np.all(batch.inputs[b, n:].numpy() == 0)
    # go trials end with the go action, no-go trials with fixation
    assert np.array_equal(batch.meta["ground_truth_final"], batch.meta["trial.ground_truth"].astype(int))
    assert task.score(batch.targets, batch).all()


def test_seeding_is_reproducible_and_leaves_the_environment_alone():
    env = ngym.make("DelayMatchSample-v0", dt=20)
    state = env.unwrapped.rng.get_state()[1].copy()
    task = tasks.from_gym(env)
    a, b, c = task.sample(8, seed=3), task.sample(8, seed=3), task.sample(8, seed=5)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, c.inputs)
    assert np.array_equal(env.unwrapped.rng.get_state()[1], state)


def test_box_action_space_targets_are_the_ground_truth():
    task = tasks.from_gym("ReachingDelayResponse-v0")
    batch = task.sample(5, seed=0)
    for b, (ob, gt, *_rest) in enumerate(_reference(ngym.make("ReachingDelayResponse-v0"), 5, 0)):
        np.testing.assert_allclose(batch.targets[b, :len(gt)].numpy(), gt, atol=1e-6)
    assert task.score(batch.targets, batch).all() and not task.score(batch.targets + 0.5, batch).any()


def test_specs_pickle_mix_and_make():
    task = tasks.make("gym.PerceptualDecisionMaking-v0", dt=0.05)
    assert task.spec == {"name": "gym.PerceptualDecisionMaking-v0", "options": {"env_kwargs": {"dt": 50.0}}}
    again = tasks.from_spec(task.spec)
    assert again == task and torch.equal(again.sample(4, seed=2).inputs, task.sample(4, seed=2).inputs)
    assert pickle.loads(pickle.dumps(task)) == task
    # an unregistered environment has no portable spec but still pickles
    from neurogym.envs.gonogo import GoNogo
    bare = tasks.from_gym(GoNogo(dt=20))
    with pytest.raises(tasks.UnsupportedEnvError, match="registered id"):
        bare.spec
    assert torch.equal(pickle.loads(pickle.dumps(bare)).sample(3, seed=0).inputs, bare.sample(3, seed=0).inputs)
    # ...and so does one made with options that are not plain data (a timing distribution object)
    from neurogym.utils.ngym_random import TruncExp
    odd = tasks.from_gym(ngym.make("GoNogo-v0", timing={"delay": TruncExp(600, 300, 1500)}))
    with pytest.raises(tasks.UnsupportedEnvError, match="not plain data"):
        odd.spec
    assert odd == odd and odd != bare
    assert torch.equal(pickle.loads(pickle.dumps(odd)).sample(3, seed=0).inputs, odd.sample(3, seed=0).inputs)
    # two environments with one layout mix like any tasks
    pulse = tasks.from_gym("PulseDecisionMaking-v0", dt=0.05)
    m = tasks.mix([task, pulse])
    batch = m.sample(10, seed=0)
    assert batch.inputs.shape[2] == 5 and set(batch.tasks) == {task.name, pulse.name}
    assert m.score(batch.targets, batch).all()
    assert tasks.from_spec(m.spec).spec == m.spec


def test_unsupported_environments_raise_typed_errors(monkeypatch):
    with pytest.raises(tasks.UnsupportedEnvError, match="no supervised trials"):
        tasks.from_gym(gym.make("CartPole-v1"))
    with pytest.raises(TypeError, match="wrapper Noise"):
        tasks.from_gym(ngym.wrappers.Noise(ngym.make("PerceptualDecisionMaking-v0")))
    with pytest.raises(ValueError, match="cannot make environment"):
        tasks.from_gym("NoSuchTask-v0")
    with pytest.raises(TypeError, match="registered ids only"):
        tasks.from_gym(ngym.make("GoNogo-v0"), dt=0.02)
    with pytest.raises(ValueError, match="dt must be"):
        tasks.from_gym("GoNogo-v0", dt=-1)
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"install neurokpflow\[neurogym\]"):
        tasks.from_gym("GoNogo-v0")
