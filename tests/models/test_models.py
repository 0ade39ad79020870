import json

import numpy as np
import pytest
import torch

import neurokpflow
from neurokpflow import models, tasks
from neurokpflow.models import unroll

CASES = [
    ("gru", {}), ("gru", {"bias": False}), ("gru", {"initial_state": "learned", "g": 2.0}),
    ("lstm", {}), ("lstm", {"bias": False}), ("lstm", {"initial_state": "learned"}),
    ("rnn", {"alpha": 0.2, "activation": "softplus"}), ("rnn", {"form": "state", "alpha": 0.3}),
    ("rnn", {"dale": 0.8, "activation": "relu", "alpha": 0.5}),
]


@pytest.mark.parametrize("kind,options", CASES)
def test_fast_forward_equals_the_cell_loop(kind, options):
    model = models.make(kind, 4, 12, 3, dtype="float64", seed=1, **options)
    if hasattr(model, "z0"):
        with torch.no_grad():
            model.z0.normal_(generator=torch.Generator().manual_seed(0))
    x = torch.randn(5, 17, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    outputs, states = model(x)
    reference = unroll(model.cell, x, model.initial_state(5))
    torch.testing.assert_close(states, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(outputs, model.readout(reference[..., model.cell.output_slice]), rtol=1e-12, atol=1e-12)
    assert states.shape == (5, 17, model.cell.state_size)
    # gradients reach the cell's own parameters (the fused path shares them, no copies)
    outputs.square().sum().backward()
    names = {n for n, _ in model.named_parameters()}
    assert {"cell.weight_ih", "cell.weight_hh"} <= names
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_fused_gradients_equal_cell_loop_gradients(kind):
    model = models.make(kind, 3, 8, 2, dtype="float64", seed=0)
    x = torch.randn(4, 9, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fused = torch.autograd.grad(model(x)[0].sum(), list(model.parameters()))
    looped = torch.autograd.grad(model.readout(unroll(model.cell, x)[..., model.cell.output_slice]).sum(),
                                 list(model.parameters()))
    for a, b in zip(fused, looped):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lstm_hidden_only_forward_matches_full_state():
    model = models.make("lstm", 3, 6, 2, dtype="float64", seed=0)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    out_full, full = model(x)
    out_h, h = model(x, full_state=False)
    torch.testing.assert_close(h, full[..., :6])
    torch.testing.assert_close(out_h, out_full)


def test_rate_and_state_forms_coincide_for_linear_units():
    rate = models.make("rnn", 3, 10, 2, form="rate", activation="identity", alpha=0.25, dtype="float64", seed=0)
    state = models.make("rnn", 3, 10, 2, form="state", activation="identity", alpha=0.25, dtype="float64", seed=0)
    state.load_state_dict(rate.state_dict())
    x = torch.randn(3, 20, 3, dtype=torch.float64)
    torch.testing.assert_close(rate(x)[1], state(x)[1], rtol=1e-12, atol=1e-12)
    tanh_rate = models.make("rnn", 3, 10, 2, form="rate", alpha=0.25, dtype="float64", seed=0)
    tanh_state = models.make("rnn", 3, 10, 2, form="state", alpha=0.25, dtype="float64", seed=0)
    assert not torch.allclose(tanh_rate(x)[1], tanh_state(x)[1])


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_noise_only_when_requested_and_reproducible(kind):
    model = models.make(kind, 3, 8, 2, noise_std=0.1, seed=0)
    x = torch.randn(2, 10, 3)
    assert torch.equal(model(x)[1], model(x)[1])
    gen = lambda: torch.Generator().manual_seed(5)
    noisy1, noisy2 = model(x, noise=True, generator=gen())[1], model(x, noise=True, generator=gen())[1]
    assert torch.equal(noisy1, noisy2) and not torch.allclose(noisy1, model(x)[1])
    silent = models.make(kind, 3, 8, 2, noise_std=0.0, seed=0)
    assert torch.equal(silent(x, noise=True)[1], silent(x)[1])


def test_config_round_trip_and_seeded_init():
    model = models.make("rnn", 5, 16, 3, form="state", alpha=0.2, activation="softplus", g=1.5, seed=3)
    config = model.config
    json.dumps(config)  # a plain dict
    twin = models.from_config(config)
    assert twin.config == config
    for a, b in zip(model.state_dict().values(), twin.state_dict().values()):
        assert torch.equal(a, b)
    other = models.make("rnn", 5, 16, 3, form="state", alpha=0.2, activation="softplus", g=1.5, seed=4)
    assert not torch.equal(other.cell.weight_hh, model.cell.weight_hh)
    config["n_hidden"] = 99
    assert model.config["n_hidden"] == 16  # config is a copy


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="known kinds"):
        models.make("transformer", 3, 8, 2)
    with pytest.raises(TypeError, match="unknown option.*'form'"):
        models.make("gru", 3, 8, 2, form="rate")
    with pytest.raises(ValueError, match="activation"):
        models.make("rnn", 3, 8, 2, activation="sigmoidish")
    with pytest.raises(ValueError, match="n_hidden"):
        models.make("gru", 3, 0, 2)
    with pytest.raises(ValueError, match=r"\[B, T, 3\]"):
        models.make("gru", 3, 8, 2)(torch.zeros(2, 5, 4))


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_record_layout_matches_the_task_metadata(kind):
    task = tasks.mix(["memory_pro", "delay_anti"])
    batch = task.test_grid(n_angles=4)
    model = models.make(kind, task.n_inputs, 6, task.n_outputs, seed=0, noise_std=0.5)
    ds = neurokpflow.record(model, batch)
    assert ds.hidden.dims == ("trial", "time", "unit") and ds.hidden.shape == (16, batch.n_steps, 6)
    assert ds.output.dims == ("trial", "time", "output_channel")
    assert ds.time.attrs["units"] == "s"
    # one time convention: bin centres with CF bounds [t dt, (t + 1) dt]
    np.testing.assert_allclose(ds.time.values, batch.times + batch.dt / 2)
    np.testing.assert_allclose(ds.time_bnds.values[:, 0], batch.times)
    np.testing.assert_allclose(ds.time_bnds.values[:, 1], batch.times + batch.dt)
    assert ds.time.attrs["bounds"] == "time_bnds"
    for key in ("task", "condition", "stimulus_angle", "response_angle", "go1_start"):
        np.testing.assert_array_equal(ds[key].values, batch.meta[key])
    np.testing.assert_array_equal(ds.epoch.values, batch.epochs)
    assert ds.epoch.dims == ("trial", "time") and ds.attrs["model_kind"] == kind and ds.attrs["dt"] == batch.dt
    assert list(ds.output_channel.values) == list(batch.output_names)
    _, states = model(batch.inputs)
    inside = batch.epochs != "pad"
    np.testing.assert_allclose(ds.hidden.values[inside], states[..., :6].detach().numpy()[inside])
    assert np.isnan(ds.hidden.values[~inside]).all() and (~inside).any()
    assert ("state" in ds) == (kind == "lstm")
    # recording is noise-free and repeatable
    np.testing.assert_array_equal(neurokpflow.record(model, batch).hidden.values, ds.hidden.values)
