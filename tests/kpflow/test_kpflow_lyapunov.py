"""Lyapunov spectra by Benettin QR."""
import math

import numpy as np
import pytest
import torch

from neurokpflow.kpflow import kaplan_yorke_dimension, lyapunov_spectrum
from neurokpflow.models.cells import GRUCell, LeakyRNNCell, unroll

F64 = torch.float64


def _linear_rnn(eigs, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = len(eigs)
    Q = torch.linalg.qr(torch.randn(H, H, generator=g, dtype=F64)).Q
    cell = LeakyRNNCell(1, H, activation="identity", bias=False, dtype=F64)
    with torch.no_grad():
        cell.weight_hh.copy_(Q @ torch.diag(torch.tensor(eigs, dtype=F64)) @ Q.T)
    return cell


def test_linear_rnn_exponents_are_log_abs_eigenvalues():
    eigs = [3.0, 1.5, -0.8, 0.5, 0.2]
    cell = _linear_rnn(eigs)
    T = 400
    x = torch.zeros(2, T, 1, dtype=F64)
    hid = torch.zeros(2, T, 5, dtype=F64)  # J = W does not depend on the state here
    ds = lyapunov_spectrum(cell, x, hid, warmup=50)
    expected = np.sort(np.log(np.abs(eigs)))[::-1]
    np.testing.assert_allclose(ds.exponents.values, np.tile(expected, (2, 1)), atol=1e-10)
    assert ds.ftle.dims == ("trial", "time", "exponent") and ds.ftle.shape == (2, T, 5)
    assert abs(ds.ftle.values[0, -1, 0] - expected[0]) < 0.05
    assert ds.attrs["units"] == "1/step"
    per_s = lyapunov_spectrum(cell, x, hid, warmup=50, dt=0.02, n_exponents=2)
    np.testing.assert_allclose(per_s.exponents.values[0], expected[:2] / 0.02, rtol=1e-9)
    assert per_s["time"].attrs["units"] == "s" and per_s.sizes["exponent"] == 2


def test_qr_stays_finite_where_the_naive_product_overflows():
    cell = _linear_rnn([5.0, 0.5, 0.1])
    T = 600
    W = cell.weight_hh.detach()
    prod = torch.eye(3, dtype=F64)
    for _ in range(T):
        prod = W @ prod
    assert not torch.isfinite(prod).all()  # 5**600 overflows float64
    ds = lyapunov_spectrum(cell, torch.zeros(1, T, 1, dtype=F64), torch.zeros(1, T, 3, dtype=F64), warmup=20)
    assert np.isfinite(ds.exponents.values).all()
    np.testing.assert_allclose(ds.exponents.values[0], np.log([5.0, 0.5, 0.1]), atol=1e-10)


def test_gru_float32_cell_is_not_modified_and_generic_path_agrees():
    torch.manual_seed(0)
    cell = GRUCell(3, 6)
    x = torch.randn(2, 40, 3)
    hid = unroll(cell, x).detach()
    before = {k: v.clone() for k, v in cell.state_dict().items()}
    ds = lyapunov_spectrum(cell, x, hid, seed=1)
    assert all(torch.equal(before[k], v) for k, v in cell.state_dict().items())
    assert next(cell.parameters()).dtype == torch.float32
    torch_cell = torch.nn.GRUCell(3, 6)
    torch_cell.load_state_dict(cell.state_dict())
    ds_torch = lyapunov_spectrum(torch_cell, x, hid, seed=1)
    np.testing.assert_allclose(ds.exponents.values, ds_torch.exponents.values, atol=1e-6)

    class Wrapped(torch.nn.Module):  # an arbitrary cell: generic torch.func path
        def __init__(self, c):
            super().__init__()
            self.c = c

        def forward(self, x, h):
            return self.c(x, h)

    ds_gen = lyapunov_spectrum(Wrapped(cell), x, hid, seed=1)
    np.testing.assert_allclose(ds.exponents.values, ds_gen.exponents.values, atol=1e-6)


def test_kaplan_yorke():
    assert kaplan_yorke_dimension([1.0, -0.5, -2.0]) == pytest.approx(2.25)
    assert kaplan_yorke_dimension([-0.1, -1.0]) == 0.0
    assert kaplan_yorke_dimension([0.3, 0.1]) == 2.0
    assert math.isfinite(kaplan_yorke_dimension([0.0, -1.0]))


def test_bad_input():
    cell = GRUCell(3, 6)
    x = torch.randn(2, 10, 3)
    with pytest.raises(ValueError, match="warmup"):
        lyapunov_spectrum(cell, x, torch.zeros(2, 10, 6), warmup=10)
    with pytest.raises(ValueError, match="n_exponents"):
        lyapunov_spectrum(cell, x, torch.zeros(2, 10, 6), n_exponents=7)
    with pytest.raises(ValueError, match="share B and T"):
        lyapunov_spectrum(cell, x, torch.zeros(2, 9, 6))
