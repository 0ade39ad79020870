import math

import numpy as np
import pytest
import torch

from neurokpflow import tasks
from neurokpflow.tasks import Batch
from neurokpflow.tasks.driscoll import DRISCOLL_TASKS

DRISCOLL = ["memory_pro", "memory_anti", "delay_pro", "delay_anti", "react_pro", "react_anti"]


@pytest.mark.parametrize("name", tasks.known_tasks())
def test_shapes_masks_and_meta_of_every_task(name):
    task = tasks.make(name)
    for batch in (task.sample(12, seed=0), task.test_grid()):
        B, T = batch.n_trials, batch.n_steps
        assert batch.inputs.shape == (B, T, task.n_inputs) and batch.inputs.dtype == torch.float32
        assert batch.targets.shape == batch.mask.shape == (B, T, task.n_outputs)
        assert batch.mask.dtype == torch.float32
        assert batch.epochs.shape == (B, T)
        assert all(len(v) == B for v in batch.meta.values())
        assert set(batch.meta["task"]) <= set(task.task_names)
        assert batch.meta["n_steps"].max() == T
        np.testing.assert_allclose(batch.times, np.arange(T) * task.dt)
        # every labelled (non-pad) step is inside the trial, padding has zero mask
        inside = np.arange(T)[None] < batch.meta["n_steps"][:, None]
        assert np.array_equal(batch.epochs != "pad", inside)
        assert torch.all(batch.mask[torch.from_numpy(~inside)] == 0)
        # the task's own targets are scored as 100 % correct
        assert task.score(batch.targets, batch).all()


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_registered_task_keeps_its_declared_capabilities_and_round_trips(name):
    import inspect

    entry = tasks.TASKS[name]
    task = entry()
    assert ("n_angles" in inspect.signature(task.test_grid).parameters) == entry.capabilities["angles"]
    suite = entry.capabilities["suite"]
    assert suite is None or name in [t.name for t in tasks.suite(suite)]
    assert tasks.from_spec(task.spec).spec == task.spec
    a, b = task.sample(6, seed=5), task.sample(6, seed=5)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


def test_a_new_task_registers_with_its_capabilities_and_builds_by_name():
    tasks.TASKS.register("test_only.memory_pro_fast", lambda **o: tasks.DriscollTask("memory_pro", **o),
                         family="driscoll")
    try:
        assert "test_only.memory_pro_fast" in tasks.known_tasks()
        assert tasks.make("test_only.memory_pro_fast", dt=0.1).dt == 0.1
        with pytest.raises(ValueError, match="unknown capabilities"):
            tasks.TASKS.register("test_only.bad", lambda: None, colour="red")
        with pytest.raises(ValueError, match="already registered"):
            tasks.TASKS.register("memory_pro", lambda: None)
    finally:
        tasks.TASKS.unregister("test_only.memory_pro_fast")
    with pytest.raises(KeyError, match="unknown task"):
        tasks.TASKS["test_only.memory_pro_fast"]


@pytest.mark.parametrize("name", DRISCOLL)
def test_driscoll_mask_values_and_structure(name):
    task = tasks.make(name, dt=0.02, sample_timing="per_trial")
    batch = task.sample(16, seed=3)
    assert set(np.unique(batch.mask.numpy())) <= {0.0, 1.0, 2.0, 5.0, 10.0}
    edge = 5  # 100 ms at dt = 20 ms
    for b in range(16):
        go, end = batch.meta["go1_start"][b], batch.meta["n_steps"][b]
        m = batch.mask[b, :, 1].numpy()
        assert np.all(m[:edge] == 0) and np.all(m[edge:go] == 1)
        assert np.all(m[go:go + edge] == 0) and np.all(m[go + edge:end] == 5)
        np.testing.assert_array_equal(batch.mask[b, :, 0].numpy(), 2 * m)


@pytest.mark.parametrize("name", DRISCOLL)
def test_driscoll_epochs_where_documented(name):
    task = tasks.make(name, sample_timing="per_trial", input_noise=0.0)
    batch = task.sample(8, seed=1)
    x, y, meta = batch.inputs.numpy(), batch.targets.numpy(), batch.meta
    family = name.split("_")[0]
    for b in range(8):
        go, end = meta["go1_start"][b], meta["n_steps"][b]
        stim = np.abs(x[b, :, 1:]).sum(-1) > 0
        fix_on = x[b, :, 0] > 0
        if family == "react":
            assert fix_on[:end].all() and not stim[:go].any() and stim[go:end].all()
        else:
            assert fix_on[:go].all() and not fix_on[go:].any()
            on, off = meta["stim1_start"][b], meta["stim1_stop"][b]
            assert not stim[:on].any() and stim[on:off].all()
            if family == "memory":
                assert not stim[off:].any() and meta["delay1_stop"][b] == go
            else:
                assert stim[on:end].all()
        np.testing.assert_allclose(y[b, :go, 0], 0.8)
        assert np.all(y[b, go:, 0] == 0) and np.all(y[b, :go, 1:] == 0)
        angle = meta["response_angle"][b]
        np.testing.assert_allclose(y[b, go:end, 1], np.sin(angle), atol=1e-6)
        np.testing.assert_allclose(y[b, go:end, 2], np.cos(angle), atol=1e-6)
        expected = meta["stimulus_angle"][b] + (np.pi if name.endswith("anti") else 0)
        assert abs(np.mod(expected - angle + np.pi, 2 * np.pi) - np.pi) < 1e-9


def test_driscoll_stimulus_on_its_modality_and_noise_scale():
    task = tasks.make("delay_pro", modality=2, input_noise=0.0)
    batch = task.sample(10, seed=0)
    assert torch.all(batch.inputs[..., 1:3] == 0) and torch.any(batch.inputs[..., 3:5] != 0)
    s = batch.inputs[:, -1, 3:5].numpy()
    np.testing.assert_allclose(np.hypot(s[:, 0], s[:, 1]), 1.0, rtol=1e-6)
    noisy = tasks.make("delay_pro", dt=0.02, input_noise=0.1)
    assert noisy.noise_std == pytest.approx(0.1 * math.sqrt(2 / 0.2))


def test_timing_per_batch_versus_per_trial():
    per_batch = tasks.make("memory_pro").sample(32, seed=0)
    assert len(set(per_batch.meta["n_steps"])) == 1 and len(set(per_batch.meta["modality"])) == 1
    per_trial = tasks.make("memory_pro", sample_timing="per_trial").sample(32, seed=0)
    assert len(set(per_trial.meta["n_steps"])) > 1


def test_determinism_per_seed_and_no_global_state():
    task = tasks.make("memory_anti")
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    a, b, c = task.sample(16, seed=7), task.sample(16, seed=7), task.sample(16, seed=8)
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs[:, :5], c.inputs[:, :5])
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    # interleaving other tasks' draws does not change a generator's output
    tasks.make("flip_flop").sample(4, seed=7)
    assert torch.equal(task.sample(16, seed=7).inputs, a.inputs)
    # noise is drawn after the trial parameters: switching it off keeps the same conditions per seed
    other = tasks.make("memory_anti", input_noise=0.0).sample(16, seed=7)
    np.testing.assert_allclose(other.meta["stimulus_angle"], a.meta["stimulus_angle"])


def test_test_grid_is_deterministic_and_evenly_spaced():
    task = tasks.make("memory_pro")
    g1, g2 = task.test_grid(n_angles=8), task.test_grid(n_angles=8)
    assert torch.equal(g1.inputs, g2.inputs)
    np.testing.assert_allclose(g1.meta["stimulus_angle"][:8], 2 * np.pi * np.arange(8) / 8)
    np.testing.assert_array_equal(g1.meta["condition"], np.tile(np.arange(8), 2))
    np.testing.assert_array_equal(g1.meta["modality"], np.repeat([1, 2], 8))


def test_kpflow_memory_pro_layout():
    task = tasks.make("kpflow_memory_pro", noise_std=0.0)
    batch = task.test_grid(n_angles=4)
    x, y = batch.inputs.numpy(), batch.targets.numpy()
    assert batch.n_steps == 90 and task.input_names == ("fixation", "cos", "sin")
    theta = batch.meta["stimulus_angle"]
    assert np.all(x[:, :60, 0] == 1) and np.all(x[:, 60:, 0] == 0)
    np.testing.assert_allclose(x[:, :30, 1], np.cos(theta)[:, None] * np.ones(30), atol=1e-6)
    assert np.all(x[:, 30:, 1:] == 0)
    np.testing.assert_array_equal(y[:, :, 0], x[:, :, 0])
    np.testing.assert_allclose(y[:, 60:, 2], np.sin(theta)[:, None] * np.ones(30), atol=1e-6)
    assert np.all(y[:, :60, 1:] == 0) and torch.all(batch.mask == 1)
    assert list(batch.epochs[0, [0, 29, 30, 59, 60, 89]]) == ["stim1", "stim1", "delay1", "delay1", "go1", "go1"]
    anti = tasks.make("kpflow_memory_anti", noise_std=0.0).test_grid(n_angles=4)
    np.testing.assert_allclose(anti.targets[:, :, 1:], -batch.targets[:, :, 1:])
    delay = tasks.make("kpflow_delay_pro", noise_std=0.0).test_grid(n_angles=4)
    np.testing.assert_allclose(delay.inputs[:, :, 1], np.cos(theta)[:, None] * np.ones(90), atol=1e-6)


def test_kpflow_multitask_context_period():
    task = tasks.make("kpflow_multitask", noise_std=0.0)
    batch = task.sample(10, seed=0)
    assert batch.inputs.shape == (10, 120, 7)
    assert list(batch.meta["task"]) == ["kpflow_memory_pro"] * 3 + ["kpflow_memory_anti"] * 3 + \
        ["kpflow_delay_pro"] * 2 + ["kpflow_delay_anti"] * 2
    cue = batch.inputs[:, :, 3:].numpy()
    for b, name in enumerate(batch.meta["task"]):
        k = list(task.task_names).index(name)
        assert np.all(cue[b, :30, k] == 1) and np.all(np.delete(cue[b, :30], k, axis=1) == 0)
        assert np.all(cue[b, 30:] == 0)
    assert torch.all(batch.targets[:, :30, 0] == 1) and torch.all(batch.inputs[:, :30, 0] == 1)
    assert np.all(batch.epochs[:, :30] == "context") and batch.meta["go1_start"][0] == 90


def test_flip_flop_targets_hold_the_last_pulse():
    task = tasks.make("flip_flop", noise_std=0.0)
    batch = task.sample(6, seed=2)
    x, y = batch.inputs.numpy(), batch.targets.numpy()
    for b in range(6):
        for c in range(3):
            state = 0.0
            for t in range(90):
                if x[b, t, c] != 0:
                    state = x[b, t, c]
                assert y[b, t, c] == state
    assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}


def test_flip_flop_default_trials_are_pinned():
    """The default trials (no initial pulse) are those of earlier versions, bit for bit."""
    import hashlib

    task = tasks.make("flip_flop")
    for batch, digest in [(task.sample(8, seed=3), "6a0a4cfb93f4a508"), (task.test_grid(n_trials=8), "cc14bc113dec70ee")]:
        h = hashlib.sha256()
        for a in (batch.inputs, batch.targets):
            h.update(np.ascontiguousarray(a.numpy()).tobytes())
        assert h.hexdigest()[:16] == digest
    assert task.spec["options"]["initial_pulse"] is False and tasks.from_spec(task.spec) == task


def test_flip_flop_initial_pulse_defines_every_target_from_the_start():
    task = tasks.make("flip_flop", initial_pulse=True, noise_std=0.0)
    plain = tasks.make("flip_flop", noise_std=0.0)
    for batch, other in [(task.sample(64, seed=5), plain.sample(64, seed=5)),
                         (task.test_grid(n_trials=64), plain.test_grid(n_trials=64))]:
        x, y = batch.inputs.numpy(), batch.targets.numpy()
        assert np.all(np.abs(x[:, 0]) == 1)                           # every channel pulses at t = 0
        assert np.all(np.abs(y) == 1)                                 # no target is ever 0
        # both signs occur at t = 0 on every channel; the later pulse pattern is the plain task's
        assert np.all(x[:, 0].max(0) == 1) and np.all(x[:, 0].min(0) == -1)
        np.testing.assert_array_equal(x[:, 1:], other.inputs.numpy()[:, 1:])
        # targets still hold the last pulse
        last = np.where(x != 0, np.arange(x.shape[1])[None, :, None], -1)
        held = np.take_along_axis(x, np.maximum.accumulate(last, axis=1), axis=1)
        np.testing.assert_array_equal(y, held)
    assert tasks.from_spec(task.spec) == task and task != plain
    noisy = tasks.make("flip_flop", initial_pulse=True).sample(4, seed=1)
    assert np.all(np.abs(noisy.targets.numpy()) == 1) and task.score(noisy.targets, noisy).all()
    with pytest.raises(TypeError, match="initial_pulse must be True or False"):
        tasks.make("flip_flop", initial_pulse="yes")


def test_mix_rule_inputs_and_modes():
    mixed = tasks.mix(["memory_pro", "delay_anti", "react_pro"], weights=[1, 1, 0])
    batch = mixed.sample(40, seed=0)
    assert mixed.input_names[-3:] == ("rule_memory_pro", "rule_delay_anti", "rule_react_pro")
    assert set(batch.meta["task"]) == {"memory_pro", "delay_anti"}
    rules = batch.inputs[:, :, 5:].numpy()
    for b, name in enumerate(batch.meta["task"]):
        k = mixed.task_names.index(name)
        n = batch.meta["n_steps"][b]
        assert np.all(rules[b, :n, k] == 1) and np.all(np.delete(rules[b], k, axis=1) == 0)
        assert np.all(rules[b, n:] == 0)
    per_batch = tasks.mix(["memory_pro", "delay_anti"], mode="per_batch")
    assert len(set(per_batch.sample(20, seed=1).meta["task"])) == 1
    assert {per_batch.sample(4, seed=s).meta["task"][0] for s in range(20)} == {"memory_pro", "delay_anti"}
    # a mixed batch's trials equal the same trials re-scored per task
    grid = mixed.test_grid(n_angles=4)
    assert grid.meta["task"].tolist() == ["memory_pro"] * 8 + ["delay_anti"] * 8 + ["react_pro"] * 8
    assert mixed.accuracy(grid.targets, grid) == {"memory_pro": 1.0, "delay_anti": 1.0, "react_pro": 1.0}


def test_mix_refuses_inconsistent_tasks():
    with pytest.raises(ValueError, match="I/O layouts"):
        tasks.mix(["memory_pro", "flip_flop"])
    with pytest.raises(ValueError, match="inconsistent dt"):
        tasks.mix([tasks.make("memory_pro", dt=0.02), tasks.make("delay_pro", dt=0.1)])
    with pytest.raises(ValueError, match="weights"):
        tasks.mix(["memory_pro", "delay_pro"], weights=[1, -1])


def test_scoring_perfect_rotated_and_fixation_rules():
    task = tasks.make("memory_pro", input_noise=0.0)
    grid = task.test_grid(n_angles=16)
    perfect = grid.targets.clone()
    assert task.score(perfect, grid).all()

    def rotate(outputs, delta):
        out = outputs.clone()
        ang = torch.atan2(out[..., 1], out[..., 2]) + delta
        out[..., 1], out[..., 2] = torch.sin(ang), torch.cos(ang)
        return out

    tol = task.tolerance
    assert not task.score(rotate(perfect, 1.05 * tol), grid).any()
    assert task.score(rotate(perfect, 0.95 * tol), grid).all()
    loose = tasks.make("memory_pro", tolerance=0.2 * np.pi)
    assert loose.score(rotate(perfect, 0.15 * np.pi), grid).all()
    # breaking fixation early but answering right at the last step is correct
    early = perfect.clone()
    early[:, :10, 0] = 0.0
    assert task.score(early, grid).all()
    # still fixating at the last step is wrong for a response trial
    stuck = perfect.clone()
    stuck[:, -1, 0] = 0.6
    assert not task.score(stuck, grid).any()
    # a no-response trial (NaN response angle) is correct exactly when fixating
    nogo = Batch(grid.inputs, grid.targets, grid.mask, {**grid.meta, "response_angle": np.full(32, np.nan)},
                 grid.epochs, grid.dt)
    assert tasks.score_response_angle_within(stuck, nogo).all()
    assert not tasks.score_response_angle_within(perfect, nogo).any()


def test_kpflow_channel_criterion_is_per_channel_absolute():
    task = tasks.make("kpflow_memory_pro")
    grid = task.test_grid(n_angles=8)
    out = grid.targets.clone()
    out[:, -1, 0] = -5.0  # fixation is not checked
    assert task.score(out, grid).all()
    out[:, -1, 1] += 1.01 * np.pi / 10
    assert not task.score(out, grid).any()
    out[:, -1, 1] -= 0.02 * np.pi / 10
    assert task.score(out, grid).all()


def test_flip_flop_criterion():
    task = tasks.make("flip_flop")
    grid = task.test_grid(n_trials=16)
    out = grid.targets.clone() * 0.7
    assert task.score(out, grid).all()
    flipped = out.clone()
    flipped[:, -1] = -out[:, -1] + (grid.targets[:, -1] == 0) * 0.9
    assert not task.score(flipped, grid).any()


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="known tasks: .*delay_anti.*memory_pro"):
        tasks.make("memorypro")
    with pytest.raises(ValueError, match="inconsistent dt/durations"):
        tasks.make("memory_pro", dt=0.25)
    with pytest.raises(ValueError, match="unknown"):
        tasks.make("react_pro", durations={"delay": (0.1, 0.2)})
    with pytest.raises(ValueError, match="0 < low <= high"):
        tasks.make("memory_pro", durations={"delay": (0.5, 0.2)})
    with pytest.raises(ValueError, match="batch_size"):
        tasks.make("memory_pro").sample(0)
    with pytest.raises(TypeError, match="seed"):
        tasks.make("memory_pro").sample(4, seed="zero")


def test_spec_round_trip_and_immutability():
    task = tasks.make("memory_pro", dt=0.05, durations={"delay": (0.4, 0.8)}, tolerance=0.2)
    assert tasks.from_spec(task.spec) == task
    assert torch.equal(tasks.from_spec(task.spec).sample(4, seed=1).inputs, task.sample(4, seed=1).inputs)
    m = tasks.mix([task, tasks.make("memory_anti", dt=0.05)], weights=[3, 1], mode="per_batch")
    rebuilt = tasks.from_spec(m.spec)
    assert rebuilt.spec == m.spec and rebuilt.mode == "per_batch"
    np.testing.assert_allclose(rebuilt.weights, [0.75, 0.25])
    # regression: the spec kept renormalised weights, which drift in the last bit on every round trip
    six = tasks.mix([tasks.make(n) for n in DRISCOLL_TASKS])
    assert tasks.from_spec(six.spec).spec == six.spec and tasks.from_spec(six.spec) == six
    with pytest.raises(AttributeError, match="immutable"):
        task.dt = 0.1
    with pytest.raises(ValueError, match="not a task spec"):
        tasks.from_spec({"dt": 0.1})


def test_batch_concat_fills_metadata_that_other_task_kinds_lack():
    """Regression: a mix of task kinds with one I/O layout (DriscollTask has ``modality``, the suite
    tasks ``param.*``) failed in Batch.concat."""
    a = tasks.make("memory_pro").test_grid(n_angles=2)
    b = tasks.make("driscoll24.delaygo").test_grid()[:3]
    both = Batch.concat([a, b])
    assert list(both.meta["modality"]) == list(a.meta["modality"]) + [-1] * 3
    assert np.isnan(both.meta["param.stim1_on"][:4]).all()
    np.testing.assert_array_equal(both.meta["param.stim1_on"][4:], b.meta["param.stim1_on"])
    np.testing.assert_array_equal(both[4:].params["stim1_direction"], b.params["stim1_direction"])
    odd = Batch(a.inputs, a.targets, a.mask, {**a.meta, "label": np.array(["x"] * 4)}, a.epochs, a.dt)
    with pytest.raises(ValueError, match="'label' is missing"):
        Batch.concat([odd, a])


def test_batch_concat_pads_and_indexing_selects():
    a = tasks.make("delay_pro").test_grid(n_angles=2)
    b = tasks.make("memory_pro").test_grid(n_angles=2)
    both = Batch.concat([a, b])
    assert both.n_steps == max(a.n_steps, b.n_steps) and both.n_trials == 8
    assert torch.equal(both.inputs[:4, :a.n_steps], a.inputs)
    assert torch.all(both.inputs[:4, a.n_steps:] == 0) and np.all(both.epochs[:4, a.n_steps:] == "pad")
    assert np.all(both.meta["delay1_start"][:4] == -1)
    sub = both[np.array([5, 6])]
    assert torch.equal(sub.inputs, b.inputs[[1, 2]]) and list(sub.meta["condition"]) == [1, 0]
