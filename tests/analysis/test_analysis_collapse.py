"""collapse(): closed forms on the scalar-gain linear RNN, netCDF round trip, resume, bad input."""
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

import neurokpflow.analysis.dynamic_collapse as collapse_mod
from neurokpflow import models, tasks, training
from neurokpflow.analysis import collapse
from neurokpflow import open_result as read_netcdf
from neurokpflow.kpflow.ranks import threshold_rank
from neurokpflow.models import LeakyRNNCell

B, T, N = 2, 5, 3
DT = torch.float64


class ScalarGainRNN(nn.Module):
    """z(t) = W z(t-1) with W = g I_n, no input drive, nonzero h0 (kpflow-math §3.6)."""

    def __init__(self, g, h0, n=N):
        super().__init__()
        self.cell = LeakyRNNCell(1, n, alpha=1.0, activation="identity", form="state", bias=False).to(DT)
        with torch.no_grad():
            self.cell.weight_hh.copy_(g * torch.eye(n, dtype=DT))
        self.readout = nn.Linear(n, 2).to(DT)
        self.h0 = h0

    def initial_state(self, batch_size):
        return self.h0


def _h0(n=N):
    return torch.tensor([[1.0, 0.5, -0.3], [0.2, -1.0, 0.4]], dtype=DT)[:, :n]


def _batch(seed=0, n_out=2):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(inputs=torch.zeros(B, T, 1, dtype=DT), targets=torch.randn(B, T, n_out, generator=g,
                                                                                        dtype=DT),
                           mask=(torch.rand(B, T, n_out, generator=g) > 0.3).to(DT), dt=0.1)


def _pr(x):
    x = np.asarray(x, dtype=float)
    return x.sum() ** 2 / (x ** 2).sum()


def _checkpoints(gains=(0.9, 0.6)):
    torch.manual_seed(0)
    return [(10 * k, ScalarGainRNN(g, _h0())) for k, g in enumerate(gains)]


def test_linear_rnn_matches_closed_forms():
    gains = (0.9, 0.6)
    pairs = _checkpoints(gains)
    batch = _batch()
    ds = collapse(pairs, batch, n_modes=2, budget=B * T * N, progress=False)
    assert list(ds.step.values) == [0, 10]
    H0 = _h0().numpy()
    t = np.arange(1, T + 1)
    for s, (g, (_, model)) in enumerate(zip(gains, pairs)):
        r = ds.isel(step=s)
        Tg = np.tril(g ** (t[:, None] - t[None, :]).clip(0)) * (t[:, None] >= t[None, :])
        v = g ** (t - 1.0)
        w = Tg @ v
        # K and P K P* reduced onto time are rank one; P P* reduced onto time is T_g T_gᵀ
        for op in ("K", "PKP*"):
            er = r.effective_rank.sel(operator=op)
            np.testing.assert_allclose(er.sel(definition=["ER2", "ER3"]), 1.0, rtol=1e-9)
            np.testing.assert_allclose(er.sel(definition="ER1"), 0.95, rtol=1e-9)
        lam_P = np.linalg.eigvalsh(Tg @ Tg.T)
        er_P = r.effective_rank.sel(operator="P")
        np.testing.assert_allclose(er_P.sel(definition="ER3"), _pr(lam_P), rtol=1e-9)
        np.testing.assert_allclose(er_P.sel(definition="ER2"), _pr(lam_P ** 2), rtol=1e-9)
        np.testing.assert_allclose(er_P.sel(definition="ER1"), threshold_rank(lam_P), rtol=1e-9)
        assert float(r.effective_rank_stderr.max()) == 0.0  # dense reduced operators: exact
        # misdirection KA(P K P*, P P*) with NTK = (H0H0ᵀ ⊗ wwᵀ) ⊗ I_n, P P* = (I_B ⊗ T_g T_gᵀ) ⊗ I_n
        M1 = np.kron(H0 @ H0.T, np.outer(w, w))
        M2 = np.kron(np.eye(B), Tg @ Tg.T)
        ka = np.sum(M1 * M2) / (np.linalg.norm(M1) * np.linalg.norm(M2))
        np.testing.assert_allclose(r.misdirection, ka, rtol=1e-9)
        # eigenpairs of K and P K P* reduced over units: (H0H0ᵀ) ⊗ vvᵀ and (H0H0ᵀ) ⊗ wwᵀ
        mu, U = np.linalg.eigh(H0 @ H0.T)
        for op, f in (("K", v), ("PKP*", w)):
            np.testing.assert_allclose(r.eigenvalue.sel(eig_operator=op), mu[::-1] * (f @ f), rtol=1e-9)
            phi = r.eigenfunction.sel(eig_operator=op, mode=0).values
            expected = np.outer(U[:, -1], f / np.linalg.norm(f))
            np.testing.assert_allclose(abs(np.sum(phi * expected)), 1.0, rtol=1e-9)
        # activity: z_b(t) = g^t h0_b
        X = (g ** t[None, :, None] * H0[:, None, :]).reshape(-1, N)
        Xc = X - X.mean(0)
        np.testing.assert_allclose(r.activity_effective_rank.sel(centering="uncentred"),
                                   _pr(np.linalg.eigvalsh(X.T @ X)), rtol=1e-9)
        np.testing.assert_allclose(r.activity_effective_rank.sel(centering="centred"),
                                   _pr(np.linalg.eigvalsh(Xc.T @ Xc)), rtol=1e-9)
        # loss: pre-square masked MSE of the readout
        with torch.no_grad():
            y = model.readout(torch.from_numpy(X.reshape(B, T, N)))
        expected_loss = float((((y - batch.targets) * batch.mask) ** 2).mean())
        np.testing.assert_allclose(r.loss, expected_loss, rtol=1e-12)
    assert "accuracy" not in ds  # no task known for in-memory models


def test_netcdf_reopens_identically(tmp_path):
    out = tmp_path / "collapse.nc"
    ds = collapse(_checkpoints(), _batch(), n_modes=2, out=out, progress=False)
    xr.testing.assert_identical(read_netcdf(out), ds)
    assert [p.name for p in tmp_path.iterdir()] == ["collapse.nc"]


def _counting(monkeypatch, fail_at=None):
    calls = []
    original = collapse_mod._collapse_one

    def wrapped(checkpoint, *args, **kwargs):
        calls.append(checkpoint.step)
        if fail_at is not None and len(calls) == fail_at:
            raise KeyboardInterrupt("simulated interruption")
        return original(checkpoint, *args, **kwargs)

    monkeypatch.setattr(collapse_mod, "_collapse_one", wrapped)
    return calls


def test_interrupted_analysis_resumes_without_recomputation(tmp_path, monkeypatch):
    pairs = _checkpoints((0.9, 0.8, 0.7, 0.6))
    full = collapse(pairs, _batch(), n_modes=2, progress=False)
    out = tmp_path / "run.nc"
    with monkeypatch.context() as m:
        _counting(m, fail_at=3)
        with pytest.raises(KeyboardInterrupt):
            collapse(pairs, _batch(), n_modes=2, out=out, progress=False)
    assert list(read_netcdf(out).step.values) == [0, 10]  # the two finished checkpoints, readable
    calls = _counting(monkeypatch)
    resumed = collapse(pairs, _batch(), n_modes=2, out=out, progress=False)
    assert calls == [20, 30]
    xr.testing.assert_identical(resumed, full)
    xr.testing.assert_identical(read_netcdf(out), full)
    calls.clear()
    collapse(pairs, _batch(), n_modes=2, out=out, progress=False)
    assert calls == []


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    out = tmp_path / "run.nc"
    pairs = _checkpoints((0.9, 0.8))
    collapse(pairs[:1], _batch(), n_modes=2, out=out, progress=False)
    before = read_netcdf(out)

    def broken(self, path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        collapse(pairs, _batch(), n_modes=2, out=out, progress=False)
    monkeypatch.undo()
    xr.testing.assert_identical(read_netcdf(out), before)
    assert sorted(os.listdir(tmp_path)) == ["run.nc"]


def test_resume_refuses_a_different_analysis(tmp_path):
    out = tmp_path / "run.nc"
    collapse(_checkpoints(), _batch(), n_modes=2, out=out, progress=False)
    with pytest.raises(ValueError, match="different analysis.*options"):
        collapse(_checkpoints(), _batch(), n_modes=1, out=out, progress=False)
    with pytest.raises(ValueError, match="different analysis.*evaluation_data"):
        collapse(_checkpoints(), _batch(seed=1), n_modes=2, out=out, progress=False)


def test_bad_input_errors():
    batch = _batch()
    mixed = [(0, ScalarGainRNN(0.9, _h0())), (1, ScalarGainRNN(0.9, _h0(2), n=2))]
    with pytest.raises(ValueError, match="mixes architectures"):
        collapse(mixed, batch, progress=False)
    with pytest.raises(ValueError, match="step.*0.*once"):
        collapse([(0, ScalarGainRNN(0.9, _h0())), (0, ScalarGainRNN(0.8, _h0()))], batch, progress=False)
    on_meta = SimpleNamespace(inputs=batch.inputs.to("meta"), targets=batch.targets.to("meta"),
                              mask=batch.mask.to("meta"))
    with pytest.raises(ValueError, match=r"batch.inputs is on device meta.*batch.to\('cpu'\)"):
        collapse(_checkpoints(), on_meta, progress=False)
    with pytest.raises(TypeError, match="targets"):
        collapse(_checkpoints(), SimpleNamespace(inputs=batch.inputs), progress=False)
    with pytest.raises(ValueError, match="definitions.*ER4"):
        collapse(_checkpoints(), batch, definitions=("ER4",), progress=False)
    with pytest.raises(ValueError, match="keep.*'neuron'"):
        collapse(_checkpoints(), batch, keep=("neuron",), progress=False)
    with pytest.raises(TypeError, match="single model"):
        collapse(ScalarGainRNN(0.9, _h0()), batch, progress=False)


def _train(out_dir, hidden, steps=2):
    task = tasks.make("kpflow_memory_pro", T_stim=2, T_memory=2, T_response=2)
    model = models.make("gru", task.n_inputs, hidden, task.n_outputs, seed=0)
    training.train(model, task, steps=steps, out_dir=out_dir, checkpoint_every=1, batch_size=4, progress=False,
                   device="cpu")
    return task


def test_trainer_checkpoints_and_mixed_runs(tmp_path):
    task = _train(tmp_path / "a", 4)
    grid = task.test_grid(n_angles=3)
    ds = collapse(tmp_path / "a", grid, n_modes=2, progress=False)
    assert list(ds.step.values) == [1, 2]
    assert ds.accuracy.dims == ("step", "scored_task") and list(ds.scored_task.values) == ["kpflow_memory_pro"]
    assert ds.time.attrs["units"] == "s" and list(ds.condition.values) == [0, 1, 2]
    _train(tmp_path / "b", 5, steps=1)
    paths = training.list_checkpoints(tmp_path / "a") + training.list_checkpoints(tmp_path / "b")
    with pytest.raises(ValueError, match="mixes architectures"):
        collapse(paths, grid, progress=False)
