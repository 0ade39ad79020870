"""similarity_flow(): agreement with a real step, order-η error, exact splits, autograd oracles, Adam, bad input."""
import numpy as np
import pytest
import torch
import xarray as xr

from neurokpflow import compare, models, tasks, training
from neurokpflow.analysis import FlowError, FlowOptions, cumulative_flow, similarity_flow
from neurokpflow.compare.differentiable import debiased_cka, linear_cka, procrustes_angle
from neurokpflow.training import masked_mse
from neurokpflow.viz import plot_similarity_flow

DT = 0.1
_MEMORY = {"fixation": (0.2, 0.2), "stimulus": (0.2, 0.2), "delay": (0.2, 0.2), "response": (0.2, 0.2)}
_DELAY = {"fixation": (0.2, 0.2), "stimulus": (0.4, 0.4), "response": (0.2, 0.2)}
MIX = tasks.mix([tasks.make(n, dt=DT, durations=_MEMORY if n.startswith("memory") else _DELAY)
                 for n in ("memory_pro", "memory_anti", "delay_pro", "delay_anti")])
GRID = MIX.test_grid(n_angles=4, modalities=(1,))
T = GRID.inputs.shape[1]


def _recording(seed=0, n_units=5, trials_per_condition=3):
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(4), trials_per_condition)
    return xr.DataArray(rng.normal(size=(len(labels), T, n_units)), dims=("trial", "time", "unit"),
                        coords={"time": (np.arange(T) + 0.5) * DT, "condition": ("trial", labels)})


RECORDING = _recording()


def _checkpoints(kind, steps=(0, 4, 8), lr=0.05, hidden=6):
    """(step, model) pairs of a short full-batch SGD run on the mix's test grid, in float64."""
    model = models.make(kind, MIX.n_inputs, hidden, MIX.n_outputs, seed=1, dtype="float64")
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    batch = GRID.to("cpu")
    out, step = [], 0
    while True:
        if step in steps:
            out.append((step, _copy(model)))
        if step == max(steps):
            return out
        outputs, _ = model(batch.inputs.double(), noise=False, full_state=False)
        opt.zero_grad()
        masked_mse(outputs, batch.targets.double(), batch.mask.double()).backward()
        opt.step()
        step += 1


def _copy(model):
    clone = models.from_config(model.config)
    clone.load_state_dict(model.state_dict())
    return clone


# ----------------------------------------------------------------------- differentiable measures
def test_differentiable_measures_equal_compare_values_and_have_true_gradients():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(12, 4)), rng.normal(size=(12, 6)) + rng.normal(size=(12, 1))
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    assert float(linear_cka(Xt, Yt)) == pytest.approx(float(compare.cka(X, Y)), rel=1e-12)
    assert float(debiased_cka(Xt, Yt)) == pytest.approx(float(compare.cka(X, Y, debiased=True)), rel=1e-12)
    assert float(procrustes_angle(Xt, Yt)) == pytest.approx(float(compare.procrustes(X, Y)), rel=1e-10)
    for fn in (linear_cka, debiased_cka, procrustes_angle):
        assert torch.autograd.gradcheck(lambda x: fn(x, Yt), (Xt.clone().requires_grad_(True),))


# ------------------------------------------------------------------------- agreement with a real step
@pytest.fixture(scope="module", params=["rnn", "gru"])
def run(request):
    return request.param, _checkpoints(request.param)


@pytest.mark.parametrize("measure", ["cka", "procrustes"])
def test_prediction_matches_a_real_sgd_step_and_error_is_order_lr(run, measure):
    kind, checkpoints = run
    lr = 1e-4
    big = similarity_flow(checkpoints, GRID, RECORDING, measure=measure, lr=lr, check=True)
    small = similarity_flow(checkpoints, GRID, RECORDING, measure=measure, lr=lr / 10, check=True)
    assert list(big["step"].values) == [0, 4, 8]
    assert (big["relative_error"] <= 0.02).all(), big["relative_error"].values
    assert (np.abs(big["measured"]) > 0).all()
    ratio = big["relative_error"] / small["relative_error"]
    assert ((ratio > 7) & (ratio < 13)).all(), ratio.values          # error ∝ η
    # the first-order prediction itself is linear in η
    np.testing.assert_allclose(big["predicted_total"], 10 * small["predicted_total"], rtol=1e-12)


def _forced_unroll(model, q):
    """States z(t) = f(z(t-1), x(t)) + q(t) of the model's cell (q = 0: the trajectory)."""
    inputs = GRID.inputs.double()
    z = model.initial_state(inputs.shape[0]).double()
    states = []
    for t in range(inputs.shape[1]):
        z = model.cell(inputs[:, t], z) + q[:, t]
        states.append(z)
    return torch.stack(states, 1)


def _oracle(model, measure_fn, lr):
    """Per-task realised and direct totals from autograd alone (no KPFlow operators):
    realised δS_j = −η ⟨∇_θ S, ∇_θ L_j⟩, direct δS_j = −η ⟨dS/dq, dL_j/dq⟩ (q: additive forcing)."""
    labels = np.asarray(GRID.meta["task"])
    cond = torch.as_tensor(GRID.meta["condition"])
    Y = torch.stack([torch.as_tensor(RECORDING.values)[torch.as_tensor(RECORDING["condition"].values == c)].mean(0)
                     for c in range(4)]).reshape(-1, RECORDING.sizes["unit"])
    params = list(model.cell.parameters())
    q = torch.zeros(GRID.inputs.shape[0], T, model.cell.hidden_size, dtype=torch.float64, requires_grad=True)

    def S():
        z = _forced_unroll(model, q)
        X = torch.stack([z[cond == c].mean(0) for c in range(4)]).reshape(-1, z.shape[-1])
        return measure_fn(X, Y)

    gS = torch.autograd.grad(S(), params + [q])
    realised, direct = [], []
    for name in MIX.task_names:
        on = torch.as_tensor(labels == name, dtype=torch.float64)[:, None, None]
        z = _forced_unroll(model, q)
        L = masked_mse(model.readout(z), GRID.targets.double(), GRID.mask.double() * on)
        gL = torch.autograd.grad(L, params + [q])
        realised.append(-lr * sum(float((a * b).sum()) for a, b in zip(gS[:-1], gL[:-1])))
        direct.append(-lr * float((gS[-1] * gL[-1]).sum()))
    return np.array(realised), np.array(direct)


def test_subtask_parts_and_splits_sum_to_autograd_totals(run):
    kind, checkpoints = run
    lr = 1e-3
    ds = similarity_flow(checkpoints, GRID, RECORDING, measure="cka", lr=lr)
    assert ds["change"].dims == ("step", "task", "condition", "time")
    assert list(ds["task"].values) == list(MIX.task_names)
    assert list(ds["condition"].values) == [0, 1, 2, 3]
    np.testing.assert_allclose(ds["time"], (np.arange(T) + 0.5) * DT)
    for step, model in checkpoints:
        realised, direct = _oracle(model, linear_cka, lr)
        r = ds.sel(step=step)
        scale = np.abs(realised).max()
        # each sub-task's part, and hence their sum, equals the parameter-space oracle
        np.testing.assert_allclose(r["predicted"], realised, rtol=0, atol=1e-10 * scale)
        assert abs(float(r["predicted_total"]) - realised.sum()) <= 1e-10 * scale
        # the condition and the time splits each sum to the total
        total = float(r["predicted_total"])
        assert abs(float(r["change"].sum("condition").sum()) - total) <= 1e-12 * scale
        np.testing.assert_allclose(r["change"].sum(("task", "time")).sum(), total, rtol=1e-12)
        # direct = the K = I case (functional GD), and it differs from the realised step
        np.testing.assert_allclose(r["predicted_direct"], direct, rtol=0, atol=1e-10 * np.abs(direct).max())
        assert not np.allclose(r["predicted_direct"], r["predicted"], rtol=0.1)
        assert np.all(np.abs(r["cosine"]) <= 1) and np.all(np.abs(r["cosine_direct"]) <= 1)


def test_a_shorter_recording_window_and_relabelled_conditions_are_matched_by_value():
    """The recording keeps the last half of the trial (time='intersect'); its labels may differ from the
    model's condition values (condition_labels)."""
    ckpt = _checkpoints("rnn", steps=(3,))
    late = RECORDING.isel(time=slice(T // 2, None))
    ds = similarity_flow(ckpt, GRID, late, measure="cka", lr=1e-4, time="intersect", check=True)
    with pytest.raises(compare.AlignmentError, match="time="):
        similarity_flow(ckpt, GRID, late)
    np.testing.assert_allclose(ds["time"], late["time"])
    assert (ds["relative_error"] <= 0.02).all()
    # a recording whose conditions carry other labels is matched through condition_labels
    relabelled = RECORDING.assign_coords(condition=("trial", np.array(list("abcd"))[RECORDING["condition"].values]))
    other = similarity_flow(ckpt, GRID, relabelled, measure="cka", lr=1e-3, condition_labels=tuple("abcd"))
    full = similarity_flow(ckpt, GRID, RECORDING, measure="cka", lr=1e-3)
    np.testing.assert_allclose(other["change"].values, full["change"].values, rtol=1e-12)
    assert list(other["condition"].values) == list("abcd")


def test_representation_tasks_restrict_the_model_trials():
    ckpt = _checkpoints("gru", steps=(2,))
    ds = similarity_flow(ckpt, GRID, RECORDING, measure="cka_debiased", lr=1e-4,
                         representation_tasks=("memory_pro",), check=True)
    assert (ds["relative_error"] <= 0.02).all()
    assert "memory_pro" in ds.attrs["pairing"]
    # trials interact only through K: the direct step (P P*) of another task's error leaves the representation alone
    others = [t for t in MIX.task_names if t != "memory_pro"]
    assert (ds["predicted_direct"].sel(task=others) == 0).all() and (ds["cosine_direct"].sel(task=others) == 0).all()
    assert (ds["predicted"].sel(task=others) != 0).all()


# ------------------------------------------------------------------------------------------- Adam
@pytest.fixture(scope="module")
def adam_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("adam")
    task = tasks.make("memory_pro", dt=DT, durations=_MEMORY)
    model = models.make("rnn", task.n_inputs, 6, task.n_outputs, seed=0)
    training.train(model, task, 6, out, lr=1e-2, batch_size=8, checkpoint_every=3, progress=False,
                   eval_grid={"n_angles": 4, "modalities": (1,)})
    return out, task


def test_adam_preconditioned_prediction_equals_its_autograd_oracle(adam_run):
    out, task = adam_run
    grid = task.test_grid(n_angles=4, modalities=(1,))
    rec = RECORDING.isel(time=slice(0, grid.inputs.shape[1]))
    lr = 1e-4
    ds = similarity_flow(out, grid, rec, measure="procrustes", lr=lr, preconditioner="adam", check=True)
    assert list(ds["step"].values) == [3, 6] and "change_adam" in ds and "adam_approximation" in ds.attrs
    # Adam's next step (gradient parts with the updated v, plus the momentum drift) matches a real Adam step
    assert (ds["relative_error"] <= 0.02).all(), ds["relative_error"].values
    total = ds["predicted_adam_step"].sum("task") + ds["predicted_adam_momentum"]
    np.testing.assert_allclose(ds["predicted_adam_step_total"], total, rtol=1e-12)
    np.testing.assert_allclose(ds["change_adam_momentum"].sum(("condition", "time")), ds["predicted_adam_momentum"])
    for path in training.list_checkpoints(out):
        model, info = training.load_checkpoint(path)
        model = model.double()
        state = training.read_checkpoint(path)["optimizer_state"]
        beta2, eps = state["param_groups"][0]["betas"][1], state["param_groups"][0]["eps"]
        names = [n for n, _ in model.named_parameters()]
        cond = torch.as_tensor(grid.meta["condition"])
        Y = torch.stack([torch.as_tensor(rec.values)[torch.as_tensor(rec["condition"].values == c)].mean(0)
                         for c in range(4)]).reshape(-1, rec.sizes["unit"])
        _, z = model(grid.inputs.double(), noise=False)
        X = torch.stack([z[cond == c].mean(0) for c in range(4)]).reshape(-1, z.shape[-1])
        cell = [(k, p) for k, (n, p) in enumerate(model.named_parameters()) if n.startswith("cell.")]
        gS = torch.autograd.grad(-procrustes_angle(X, Y), [p for _, p in cell])
        outputs, _ = model(grid.inputs.double(), noise=False, full_state=False)
        gL = torch.autograd.grad(masked_mse(outputs, grid.targets.double(), grid.mask.double()), [p for _, p in cell])
        expected = 0.0
        for (k, _), a, b in zip(cell, gS, gL):
            s = state["state"][state["param_groups"][0]["params"][k]]
            D = 1 / ((s["exp_avg_sq"].double() / (1 - beta2 ** float(s["step"]))).sqrt() + eps)
            expected -= lr * float((a * D * b).sum())
        got = float(ds["predicted_adam"].sel(step=info["step"]).sum())
        assert got == pytest.approx(expected, rel=1e-9), names


def test_adam_needs_checkpoint_files_of_an_adam_run(tmp_path):
    ckpt = _checkpoints("rnn", steps=(0,))
    with pytest.raises(FlowError, match="checkpoint files"):
        similarity_flow(ckpt, GRID, RECORDING, preconditioner="adam")
    task = tasks.make("memory_pro", dt=DT, durations=_MEMORY)
    model = models.make("rnn", task.n_inputs, 4, task.n_outputs, seed=0)
    training.train(model, task, 2, tmp_path, optimizer="sgd", batch_size=4, checkpoint_every=2, progress=False,
                   eval_grid={"n_angles": 4, "modalities": (1,)})
    grid = task.test_grid(n_angles=4, modalities=(1,))
    with pytest.raises(FlowError, match="optimizer='sgd'"):
        similarity_flow(tmp_path, grid, RECORDING.isel(time=slice(0, grid.inputs.shape[1])), preconditioner="adam")


# -------------------------------------------------------------------------------------- bad input
def test_bad_options_and_mismatched_recordings_raise_typed_errors():
    ckpt = _checkpoints("rnn", steps=(0,))
    model = ckpt[0][1]
    with pytest.raises(FlowError, match="measure='rsa'"):
        similarity_flow(model, GRID, RECORDING, measure="rsa")
    with pytest.raises(ValueError, match="lr must be"):
        similarity_flow(model, GRID, RECORDING, FlowOptions(lr=-1.0))
    with pytest.raises(FlowError, match="representation_tasks"):
        similarity_flow(model, GRID, RECORDING, representation_tasks=("react_pro",))
    with pytest.raises(compare.AlignmentError, match="condition values differ"):
        similarity_flow(model, GRID, RECORDING.isel(trial=RECORDING["condition"].values < 3))
    with pytest.raises(compare.AlignmentError, match="time"):
        similarity_flow(model, GRID, RECORDING.assign_coords(time=RECORDING["time"] + 0.03))
    # a single model is reported as step 0, and the inputs are not mutated
    before = RECORDING.copy(deep=True)
    ds = similarity_flow(model, MIX, RECORDING, grid={"n_angles": 4, "modalities": (1,)})
    assert list(ds["step"].values) == [0]
    xr.testing.assert_identical(RECORDING, before)


# ------------------------------------------------------------------------------ over training, plot
def test_cumulative_prediction_follows_a_plain_gd_run_and_is_plotted():
    lr = 2e-3
    checkpoints = _checkpoints("gru", steps=tuple(range(6)), lr=lr)
    ds = similarity_flow(checkpoints, GRID, RECORDING, measure="procrustes", lr=lr)
    cum = cumulative_flow(ds)
    assert float(cum["predicted_total"].isel(step=0)) == 0.0
    measured = cum["measured"].isel(step=-1)
    assert abs(float(cum["predicted_total"].isel(step=-1)) - float(measured)) <= 0.02 * abs(float(measured))
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.subplots()
    assert plot_similarity_flow(ds, ax=ax) is fig
    assert len(ax.lines) == len(MIX.task_names) + 3        # per task, all tasks, measured, zero line
    with pytest.raises(FlowError, match="two checkpoints"):
        cumulative_flow(ds.isel(step=[0]))
