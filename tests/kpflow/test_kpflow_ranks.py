"""Effective-rank definitions on known spectra and Kronecker operators (kpflow-math check 12)."""
import numpy as np
import pytest
import torch
import xarray as xr

from neurokpflow.kpflow import DenseOperator, effective_rank

F64 = torch.float64
B, T, H = 2, 5, 4


def _pr(m):
    return float(m.sum() ** 2 / (m ** 2).sum())


@pytest.fixture(scope="module")
def kron():
    g = torch.Generator().manual_seed(0)
    V = torch.randn(B * T, 3, generator=g, dtype=F64)
    C = V @ V.T
    return C, DenseOperator(torch.kron(C, torch.eye(H, dtype=F64)), (B, T, H), (B, T, H))


@pytest.mark.parametrize("n", [1, 7])
def test_known_spectra(n):
    I = DenseOperator(torch.eye(8, dtype=F64))
    assert float(effective_rank(I, definition="ER3", method="exact")) == pytest.approx(8)
    assert float(effective_rank(I, definition="ER2", method="exact")) == pytest.approx(8)
    u = torch.randn(8, 1, dtype=F64)
    one = DenseOperator(u @ u.T)
    for d in ("ER2", "ER3", "participation_ratio"):
        assert float(effective_rank(one, definition=d, method="exact")) == pytest.approx(1)
    D = DenseOperator(torch.diag(torch.tensor([1.0, 1.0] + [0.0] * n, dtype=F64)))
    assert float(effective_rank(D, definition="ER3", method="exact")) == pytest.approx(2)
    assert float(effective_rank(D, definition="ER2", method="exact")) == pytest.approx(2)


def test_threshold_rank_hand_values():
    assert float(effective_rank(torch.tensor([0.9, 0.08, 0.02]), definition="ER1")) == pytest.approx(1.625)
    assert float(effective_rank(torch.ones(20), definition="ER1")) == pytest.approx(19)
    assert float(effective_rank(np.ones(2), definition="variance_threshold")) == pytest.approx(1.9)
    op = DenseOperator(torch.diag(torch.tensor([0.9, 0.08, 0.02, 0, 0, 0, 0, 0], dtype=F64)))
    est = effective_rank(op, definition="ER1", k=4, seed=0)
    assert float(est) == pytest.approx(1.625, rel=1e-8) and est.meta["k"] == 4


def test_kronecker_K_effective_ranks(kron):
    C, K = kron
    lam = torch.linalg.eigvalsh(C).clamp_min(0)
    for red in ("partial_trace", "block_average"):
        over_units = effective_rank(K, definition="ER3", keep="unit", reduction=red, method="exact")
        assert float(over_units) == pytest.approx(H, rel=1e-10)
        over_bt = effective_rank(K, definition="ER3", keep=("trial", "time"), reduction=red, method="exact")
        assert float(over_bt) == pytest.approx(_pr(lam), rel=1e-10)
        gram = effective_rank(K, definition="ER2", keep=("trial", "time"), reduction=red, method="exact")
        assert float(gram) == pytest.approx(_pr(lam ** 2), rel=1e-10)
        assert gram.meta["reduction"] == red and gram.meta["keep"] == ("trial", "time")
    # ER2 with as many probes as the kept dimension is exact; fewer give an error bar
    assert float(effective_rank(K, definition="ER2", keep=("trial", "time"), reduction="block_average",
                                budget=B * T, seed=0)) == pytest.approx(_pr(lam ** 2), rel=1e-10)
    ests = [effective_rank(K, definition="ER3", budget=30, seed=s) for s in range(40)]
    vals = torch.tensor([e.value for e in ests])
    assert abs(float(vals.mean()) - H * _pr(lam)) < 0.1 * H * _pr(lam)
    assert all(e.stderr > 0 for e in ests)
    assert float(effective_rank(K, definition="ER5", keep=("trial", "time"))) == pytest.approx(1, rel=1e-10)


def test_activity_participation_ratio():
    g = torch.Generator().manual_seed(1)
    Z = torch.randn(4000, 3, generator=g, dtype=F64) * torch.tensor([1.0, 1.0, 1.0], dtype=F64)
    X = torch.cat([Z, torch.zeros(4000, 2, dtype=F64)], 1) + 5.0  # 3 active units, constant offset
    da = xr.DataArray(X.numpy().reshape(40, 100, 5), dims=("trial", "time", "unit"))
    centred = effective_rank(da, definition="ER4", centered=True)
    assert float(centred) == pytest.approx(3, rel=0.05) and centred.meta["centered"]
    assert float(effective_rank(da, definition="ER4", centered=False)) == pytest.approx(
        _pr(torch.linalg.eigvalsh(X.T @ X)), rel=1e-8)


def test_explicit_arguments_are_required(kron):
    _, K = kron
    with pytest.raises(TypeError, match="definition"):
        effective_rank(K)
    with pytest.raises(ValueError, match="definition must be one of"):
        effective_rank(K, definition="effdim")
    with pytest.raises(TypeError, match="reduction='partial_trace' or reduction='block_average'"):
        effective_rank(K, definition="ER3", keep="unit", method="exact")
    with pytest.raises(ValueError, match="keep: .*no axis 'neuron'"):
        effective_rank(K, definition="ER3", keep="neuron", reduction="partial_trace", method="exact")
    with pytest.raises(TypeError, match="ER1 needs k="):
        effective_rank(K, definition="ER1")
    with pytest.raises(TypeError, match="ER3 needs budget="):
        effective_rank(K, definition="ER3")
    with pytest.raises(TypeError, match="activity"):
        effective_rank(K, definition="ER4")
