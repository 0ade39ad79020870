"""The spectral toolkit on a CUDA device agrees with dense CPU computation.

Every estimator and solver draws its probes and keeps its bases on the operator's device; these
tests build the KPFlow operators of one small GRU on the GPU, in float32 and float64, and check
the results against dense matrices formed on the CPU.  Skipped cleanly without CUDA.
"""
import math

import pytest
import torch

from neurokpflow.kpflow import (
    alignment,
    effective_rank,
    eigsh,
    frobenius_norm,
    lyapunov_spectrum,
    operators,
    partial_trace,
    block_average,
    sketch,
    smallest_singular_value,
    svds,
    trace,
    unit_separable_K,
)
from neurokpflow.models.cells import GRUCell, unroll

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

B, T, I, H = 3, 6, 2, 5
DTYPES = [torch.float32, torch.float64]


def _tol(dtype):
    return 2e-4 if dtype == torch.float32 else 1e-9


def _case(dtype):
    torch.manual_seed(0)
    cell = GRUCell(I, H, dtype=dtype)
    x = torch.randn(B, T, I, dtype=dtype)
    with torch.no_grad():
        hid = unroll(cell, x)
    dev = torch.device("cuda")
    cpu = operators(cell, x, hid)
    gpu = operators(cell.to(dev), x.to(dev), hid.to(dev))
    return cell, x.to(dev), hid.to(dev), cpu, gpu


@pytest.mark.parametrize("dtype", DTYPES)
def test_eigsh_and_svds_on_cuda_match_dense(dtype):
    _, _, _, cpu, gpu = _case(dtype)
    A = gpu.P @ gpu.K @ gpu.P.T
    dense = (cpu.P @ cpu.K @ cpu.P.T).to_dense().double()
    r = eigsh(A, 4, seed=0)
    assert r.vectors.device.type == "cuda" and r.vectors.shape == (4, B, T, H)
    want = torch.linalg.eigvalsh(dense).flip(0)[:4]
    torch.testing.assert_close(r.values.double().cpu(), want, rtol=_tol(dtype), atol=_tol(dtype) * float(want[0]))
    assert float(r.residuals.max()) <= 10 * max(r.tol, 1e-12) * float(want[0])

    s = svds(gpu.P, 3, seed=0)
    want_s = torch.linalg.svdvals(cpu.P.to_dense().double())[:3]
    torch.testing.assert_close(s.values.double().cpu(), want_s, rtol=_tol(dtype), atol=0.0)
    sigma_min = smallest_singular_value(gpu.P_inv, A=gpu.P, seed=0)
    want_min = float(torch.linalg.svdvals(cpu.P.to_dense().double())[-1])
    assert sigma_min == pytest.approx(want_min, rel=10 * _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_trace_estimators_on_cuda(dtype):
    _, _, _, cpu, gpu = _case(dtype)
    n = B * T * H
    A = gpu.P @ gpu.K @ gpu.P.T
    truth = float(torch.trace((cpu.P @ cpu.K @ cpu.P.T).to_dense().double()))
    exact = trace(A, budget=n, method="hutch++")
    assert exact.method == "exact" and float(exact) == pytest.approx(truth, rel=10 * _tol(dtype))
    factor = gpu.P @ gpu.J_theta
    assert trace(factor, budget=4, method="vjp", seed=0).meta["blocks"] == "trial"
    for method, est in [("hutch++", trace(A, budget=30, method="hutch++", seed=0)),
                        ("hutchinson", trace(A, budget=30, method="hutchinson", seed=0)),
                        ("vjp", trace(factor, budget=30, method="vjp", seed=0))]:
        assert est.stderr > 0 and math.isfinite(est.value), method
        assert abs(est.value - truth) < 5 * est.stderr, (method, est.value, truth, est.stderr)
    fro = frobenius_norm(A, budget=n, method="hutchinson")
    dense = (cpu.P @ cpu.K @ cpu.P.T).to_dense().double()
    fro_truth = float(torch.linalg.matrix_norm(dense))
    assert float(fro) == pytest.approx(fro_truth, rel=10 * _tol(dtype))
    pairs = frobenius_norm(A, budget=12, method="trial_pairs", seed=0)
    assert pairs.meta["n_blocks"] == B and abs(pairs.value - fro_truth) < 5 * pairs.stderr
    # per-trial adjoint images on the GPU equal the CPU ones
    E = torch.randn(2, *cpu.shape, dtype=dtype)
    torch.testing.assert_close(factor._rmatmat_block_vectors(E.cuda(), 0).cpu(),
                               (cpu.P @ cpu.J_theta)._rmatmat_block_vectors(E, 0), rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_alignment_and_effective_rank_on_cuda(dtype):
    _, _, _, cpu, gpu = _case(dtype)
    n = B * T * H
    A, Bop = gpu.P @ gpu.K @ gpu.P.T, gpu.P @ gpu.P.T
    Ad, Bd = ((cpu.P @ cpu.K @ cpu.P.T).to_dense().double(), (cpu.P @ cpu.P.T).to_dense().double())
    truth = float((Ad * Bd).sum() / (Ad.norm() * Bd.norm()))
    assert float(alignment(A, Bop, budget=n)) == pytest.approx(truth, rel=10 * _tol(dtype))
    est = alignment(A, Bop, budget=20, seed=0)
    assert abs(est.value - truth) < 5 * est.stderr + 1e-3
    ev = torch.linalg.eigvalsh(Ad)
    pr = float(ev.sum() ** 2 / (ev ** 2).sum())
    er3 = effective_rank(A, definition="ER3", method="exact")
    assert float(er3) == pytest.approx(pr, rel=10 * _tol(dtype))
    er3_est = effective_rank(A, definition="ER3", budget=40, seed=0)
    assert abs(er3_est.value - pr) < 5 * er3_est.stderr


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_and_exact_K_on_cuda(dtype):
    cell, x, hid, cpu, gpu = _case(dtype)
    tol = dict(rtol=_tol(dtype), atol=_tol(dtype))
    for axes in ("unit", ("trial", "time")):
        got = partial_trace(gpu.K, axes).to_dense()
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), partial_trace(cpu.K, axes).to_dense(), **tol)
    torch.testing.assert_close(block_average(gpu.K, "time").to_dense().cpu(),
                               block_average(cpu.K, "time").to_dense(), **tol)
    K = unit_separable_K(cell, x, hid)
    assert K.diagonal().device.type == "cuda"
    Kd = cpu.K.to_dense()
    torch.testing.assert_close(K.diagonal().reshape(-1).cpu(), Kd.diagonal(), **tol)
    assert float(K.trace()) == pytest.approx(float(torch.trace(Kd)), rel=10 * _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lyapunov_spectrum_on_cuda_matches_cpu(dtype):
    cell, x, hid, _, _ = _case(dtype)
    gpu = lyapunov_spectrum(cell, x, hid, seed=1)
    cpu = lyapunov_spectrum(cell.cpu(), x.cpu(), hid.cpu(), seed=1)
    for name in gpu.data_vars:
        torch.testing.assert_close(torch.as_tensor(gpu[name].values), torch.as_tensor(cpu[name].values),
                                   rtol=10 * _tol(dtype), atol=10 * _tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("block_size", [4, 8])
def test_block_eigsh_on_cuda_matches_dense(dtype, block_size):
    _, _, _, cpu, gpu = _case(dtype)
    dense = cpu.NTK.to_dense().double()
    r = eigsh(gpu.NTK, 5, seed=0, block_size=block_size)
    assert r.converged and r.vectors.device.type == "cuda" and r.meta["block_size"] == block_size
    want = torch.linalg.eigvalsh(dense).flip(0)[:5]
    rtol = 1e-10 if dtype == torch.float64 else 1e-4
    assert torch.allclose(r.values.cpu(), want, rtol=rtol, atol=0)
    V = r.vectors.reshape(5, -1).double().cpu()
    explicit = (V @ dense - r.values.cpu()[:, None] * V).norm(dim=1)
    assert (explicit <= 10 * r.tol * float(want[0]) + (1e-5 * float(want[0]) if dtype == torch.float32 else 0)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_sketch_on_cuda_equals_separate_calls(dtype):
    _, _, _, _, gpu = _case(dtype)
    A, Bop = gpu.NTK, gpu.P @ gpu.P.T
    sk = sketch(A, 9, B=Bop, seed=2, chunk_size=4)
    assert sk.norm2_A.device.type == "cuda"
    for shared, separate in ((sk.alignment(), alignment(A, Bop, 9, "hutchinson", seed=2, chunk_size=4)),
                             (sk.trace(), trace(A, 9, "hutchinson", seed=2, chunk_size=4)),
                             (sk.effective_rank(), effective_rank(A, definition="ER3", budget=9, seed=2,
                                                                  chunk_size=4))):
        assert shared.value == pytest.approx(separate.value, rel=1e-12)
