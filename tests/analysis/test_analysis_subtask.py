"""subtask_alignment() / interference_decomposition(): sums, symmetry, dense oracle, checkpoints, bad input."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr

import neurokpflow.analysis.subtask as subtask_mod
from neurokpflow import models, tasks
from neurokpflow.analysis import interference_decomposition, subtask_alignment
from neurokpflow import open_result as read_netcdf
from neurokpflow.kpflow import operators_from_model
from neurokpflow.training import masked_mse

LR = 0.05
MIX = tasks.make("kpflow_multitask", T_context=1, T_stim=1, T_memory=1, T_response=1)


def _model(seed=0, kind="gru", hidden=3):
    return models.make(kind, MIX.n_inputs, hidden, MIX.n_outputs, seed=seed, dtype="float64")


def _batches(n_angles=2):
    grid = MIX.test_grid(n_angles=n_angles, noise=True, seed=3)
    return {name: grid[np.flatnonzero(grid.meta["task"] == name)].to("cpu") for name in MIX.task_names}


def _joined(batches):
    inputs = torch.cat([b.inputs for b in batches.values()]).double()
    targets = torch.cat([b.targets for b in batches.values()]).double()
    mask = torch.cat([b.mask for b in batches.values()]).double()
    labels = np.concatenate([[n] * b.n_trials for n, b in batches.items()])
    return inputs, targets, mask, labels


def _dense_reference(model, batches):
    """δz_{i←j} = −η P_i K_ij P_j* Err_j from dense matrices sliced by task."""
    inputs, targets, mask, labels = _joined(batches)
    ops = operators_from_model(model, inputs, dtype=torch.float64)
    out_slice = ops.cell.output_slice

    def loss(z):
        y = z[..., out_slice] @ model.readout.weight.T + model.readout.bias
        return masked_mse(y, targets, mask)

    err = ops.error(loss)
    K, P = ops.K.to_dense().numpy(), ops.P.to_dense().numpy()
    shape = ops.states.shape
    trial_of_entry = np.repeat(np.arange(shape[0]), shape[1] * shape[2])
    names = list(batches)
    idx = {n: np.flatnonzero(labels[trial_of_entry] == n) for n in names}
    e = err.reshape(-1).numpy()
    dz = {(i, j): -LR * P[np.ix_(idx[i], idx[i])] @ K[np.ix_(idx[i], idx[j])] @ P[np.ix_(idx[j], idx[j])].T @ e[idx[j]]
          for i in names for j in names}
    return dz, e, idx, names, ops


def test_decomposition_sums_to_the_first_order_update():
    model, batches = _model(), _batches()
    ds = interference_decomposition(model, batches, lr=LR)
    np.testing.assert_allclose(ds.delta_z.sum("task_j"), ds.delta_z_total, rtol=1e-12, atol=1e-16)
    inputs, targets, mask, labels = _joined(batches)
    ops = operators_from_model(model, inputs, dtype=torch.float64)
    np.testing.assert_allclose(ds.error, ops.error(lambda z: masked_mse(model.readout(z), targets, mask)),
                               rtol=1e-12)
    np.testing.assert_allclose(ds.delta_z_total, ops.first_order_update(torch.from_numpy(ds.error.values), LR),
                               rtol=1e-10, atol=1e-16)
    assert list(ds.task.values) == list(labels)


def test_matches_dense_computation_and_symmetry():
    model, batches = _model(), _batches()
    dz, e, idx, names, ops = _dense_reference(model, batches)
    dec = interference_decomposition(model, batches, lr=LR)
    ds = subtask_alignment(model, batches, lr=LR)
    assert ds.alignment.dims == ("task_i", "task_j") and list(ds.task_i.values) == names
    flat = dec.delta_z.values.reshape(len(names), -1)
    cos = lambda a, b: a @ b / np.sqrt((a @ a) * (b @ b))  # noqa: E731
    for a, i in enumerate(names):
        total = sum(dz[i, j] for j in names)
        for b, j in enumerate(names):
            np.testing.assert_allclose(flat[b, idx[i]], dz[i, j], rtol=1e-9, atol=1e-15)
            r = ds.sel(task_i=i, task_j=j)
            np.testing.assert_allclose(r.alignment, cos(dz[i, j], dz[i, i]), rtol=1e-9)
            np.testing.assert_allclose(r.alignment_to_total, cos(dz[i, j], total), rtol=1e-9)
            np.testing.assert_allclose(r.relative_magnitude, np.linalg.norm(dz[i, j]) / np.linalg.norm(dz[i, i]),
                                       rtol=1e-9)
            np.testing.assert_allclose(r.loss_change, e[idx[i]] @ dz[i, j], rtol=1e-9)
    # symmetric where K's self-adjointness says so; the δz cosines are not symmetric in general
    np.testing.assert_allclose(ds.loss_change, ds.loss_change.T, rtol=1e-10)
    np.testing.assert_allclose(ds.gradient_alignment, ds.gradient_alignment.T, rtol=1e-10)
    np.testing.assert_allclose(np.diag(ds.alignment), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.diag(ds.gradient_alignment), 1.0, rtol=1e-12)


def test_gradient_alignment_equals_autograd_task_gradients():
    model, batches = _model(seed=1), _batches()
    ds = subtask_alignment(model, batches, lr=LR)
    inputs, targets, mask, labels = _joined(batches)
    grads = []
    for name in ds.task_i.values:
        keep = torch.from_numpy(labels == name).double()[:, None, None]
        outputs, _ = model(inputs)
        g = torch.autograd.grad(masked_mse(outputs, targets, mask * keep), list(model.cell.parameters()))
        grads.append(torch.cat([x.reshape(-1) for x in g]))
    G = torch.stack(grads)
    G = G / G.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(ds.gradient_alignment, (G @ G.T).numpy(), rtol=1e-9)


def test_hidden_alignment_is_cosine_of_task_means():
    model, batches = _model(), _batches()
    ds = subtask_alignment(model, batches)
    means = {}
    for name, b in batches.items():
        with torch.no_grad():
            _, states = model(b.inputs.double())
        means[name] = states.mean(0).reshape(-1).numpy()
    for i in ds.task_i.values:
        for j in ds.task_j.values:
            a, b = means[i], means[j]
            np.testing.assert_allclose(ds.hidden_alignment.sel(task_i=i, task_j=j),
                                       a @ b / np.linalg.norm(a) / np.linalg.norm(b), rtol=1e-12)


def test_single_labelled_batch_equals_mapping_and_task_selection():
    model, batches = _model(), _batches()
    grid = MIX.test_grid(n_angles=2, noise=True, seed=3)
    xr.testing.assert_allclose(subtask_alignment(model, grid), subtask_alignment(model, batches))
    pick = ["kpflow_delay_anti", "kpflow_memory_pro"]
    sub = subtask_alignment(model, grid, tasks=pick)
    assert list(sub.task_i.values) == pick


def test_over_checkpoints_cumulative_and_resume(tmp_path, monkeypatch):
    batches = _batches()
    pairs = [(0, _model(0)), (100, _model(1)), (300, _model(2))]
    out = tmp_path / "align.nc"
    ds = subtask_alignment(pairs, batches, out=out, progress=False)
    assert ds.alignment.dims == ("step", "task_i", "task_j")
    np.testing.assert_allclose(ds.cumulative_alignment, ds.alignment.cumsum("step"), rtol=1e-12)
    assert "inferred" in ds.cumulative_alignment.attrs["provenance"]
    xr.testing.assert_identical(read_netcdf(out), ds)
    for k, (_, m) in enumerate(pairs):
        xr.testing.assert_allclose(ds.alignment.isel(step=k, drop=True), subtask_alignment(m, batches).alignment)
    by_steps = subtask_alignment(pairs, batches, normalisation="total", cumulate_over="steps", progress=False)
    a = by_steps.alignment_to_total.values
    expected = np.stack([np.zeros_like(a[0]), 50 * (a[0] + a[1]), 50 * (a[0] + a[1]) + 100 * (a[1] + a[2])])
    np.testing.assert_allclose(by_steps.cumulative_alignment, expected, rtol=1e-12)
    calls = []
    original = subtask_mod._decompose
    monkeypatch.setattr(subtask_mod, "_decompose", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = subtask_alignment(pairs + [(400, _model(3))], batches, out=out, progress=False)
    assert len(calls) == 1 and list(again.step.values) == [0, 100, 300, 400]
    xr.testing.assert_identical(again.isel(step=slice(0, 3)).drop_vars("cumulative_alignment"),
                                ds.drop_vars("cumulative_alignment"))


def test_bad_input_errors():
    model, batches = _model(), _batches()
    with pytest.raises(ValueError, match=r"\['react_pro'\] are absent from batches_by_task"):
        subtask_alignment(model, batches, tasks=["kpflow_memory_pro", "react_pro"])
    with pytest.raises(ValueError, match="at least two tasks"):
        subtask_alignment(model, batches, tasks=["kpflow_memory_pro"])
    short = dict(batches)
    b = short["kpflow_memory_pro"]
    short["kpflow_memory_pro"] = SimpleNamespace(inputs=b.inputs[:, :-1], targets=b.targets[:, :-1], mask=b.mask[:, :-1])
    with pytest.raises(ValueError, match="different numbers of time steps"):
        subtask_alignment(model, short)
    on_meta = dict(batches)
    on_meta["kpflow_delay_pro"] = SimpleNamespace(inputs=b.inputs.to("meta"), targets=b.targets.to("meta"),
                                                  mask=b.mask.to("meta"))
    with pytest.raises(ValueError, match=r"batches_by_task\['kpflow_delay_pro'\].inputs is on device meta"):
        subtask_alignment(model, on_meta)
    with pytest.raises(ValueError, match="mixes architectures"):
        subtask_alignment([(0, model), (1, _model(hidden=4))], batches, progress=False)
    with pytest.raises(ValueError, match="normalisation"):
        subtask_alignment(model, batches, normalisation="mean")
    with pytest.raises(ValueError, match="without per-trial task labels"):
        subtask_alignment(model, SimpleNamespace(inputs=b.inputs, targets=b.targets, meta={}))
