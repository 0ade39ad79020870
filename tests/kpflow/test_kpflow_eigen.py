"""eigsh / svds / norms against torch.linalg on dense operators."""
import pytest
import torch

from neurokpflow.kpflow import (ConvergenceError, DenseOperator, eigsh, operator_norm, operators,
                                smallest_singular_value, svds)
from neurokpflow.models.cells import GRUCell, unroll

F64 = torch.float64
SHAPE = (3, 8, 5)


@pytest.fixture(scope="module")
def psd():
    g = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(120, 120, generator=g, dtype=F64)).Q
    lam = torch.logspace(0, -4, 120, dtype=F64)
    M = (Q * lam) @ Q.T
    return M, DenseOperator((M + M.T) / 2, SHAPE, SHAPE)


def test_eigsh_matches_eigh(psd):
    M, A = psd
    r = eigsh(A, 6, seed=0)
    ref_vals, ref_vecs = torch.linalg.eigh(M)
    assert torch.allclose(r.values, ref_vals.flip(0)[:6], rtol=1e-9, atol=0)
    assert r.converged and r.vectors.shape == (6, *SHAPE)
    V = r.vectors.reshape(6, -1)
    assert torch.allclose(V @ V.T, torch.eye(6, dtype=F64), atol=1e-10)
    overlaps = (V @ ref_vecs.flip(1)[:, :6]).diagonal().abs()
    assert torch.allclose(overlaps, torch.ones(6, dtype=F64), atol=1e-8)
    true_res = (V @ M - r.values[:, None] * V).norm(dim=1)
    assert torch.allclose(r.residuals, true_res, atol=1e-12) and (true_res < 1e-8).all()
    assert (V.gather(1, V.abs().argmax(1, keepdim=True)) > 0).all()
    ds = r.to_xarray()
    assert ds.eigenfunction.dims == ("mode", "trial", "time", "unit") and ds.sizes["mode"] == 6


def test_eigsh_which_and_float32(psd):
    M, _ = psd
    g = torch.Generator().manual_seed(2)
    S = torch.randn(50, 50, generator=g, dtype=F64)
    S = S + S.T
    ev = torch.linalg.eigvalsh(S)
    A = DenseOperator(S)
    assert torch.allclose(eigsh(A, 3, which="SA", seed=1).values, ev[:3], rtol=1e-8)
    lm = eigsh(A, 3, which="LM", seed=1).values
    assert torch.allclose(lm.abs(), ev.abs().sort(descending=True).values[:3], rtol=1e-8)
    r32 = eigsh(DenseOperator(M.float(), SHAPE, SHAPE), 4, seed=0)
    assert r32.vectors.dtype == torch.float32 and r32.values.dtype == F64
    assert torch.allclose(r32.values, torch.linalg.eigvalsh(M).flip(0)[:4], rtol=1e-6)


def test_svds_and_norms():
    g = torch.Generator().manual_seed(3)
    M = torch.randn(40, 24, generator=g, dtype=F64)
    s = torch.linalg.svdvals(M)
    for A in (DenseOperator(M), DenseOperator(M.T.contiguous())):
        r = svds(A, 5, seed=0)
        assert torch.allclose(r.values, s[:5], rtol=1e-9)
        assert (r.residuals < 1e-7 * s[0]).all()
        Av = A.matvec(r.right)
        assert torch.allclose(Av, r.values[:, None] * r.left, atol=1e-8)
    assert operator_norm(DenseOperator(M), seed=0) == pytest.approx(float(s[0]), rel=1e-10)
    S = M.T @ M
    assert operator_norm(DenseOperator(S), self_adjoint=True, seed=0) == pytest.approx(float(s[0] ** 2), rel=1e-10)


def test_sigma_min_of_P_from_P_inv():
    torch.manual_seed(0)
    cell = GRUCell(2, 4, dtype=F64)
    x = torch.randn(2, 6, 2, dtype=F64)
    ops = operators(cell, x, unroll(cell, x).detach())
    dense = torch.linalg.svdvals(ops.P.to_dense())
    smin = smallest_singular_value(ops.P_inv, A=ops.P, seed=0)
    assert smin == pytest.approx(float(dense[-1]), rel=1e-8)
    assert operator_norm(ops.P, seed=0) == pytest.approx(float(dense[0]), rel=1e-8)
    ntk = eigsh(ops.NTK, 3, seed=0)
    assert torch.allclose(ntk.values, torch.linalg.eigvalsh(ops.NTK.to_dense()).flip(0)[:3], rtol=1e-8)
    with pytest.raises(ValueError, match="not the inverse"):
        smallest_singular_value(ops.P, A=ops.P)


def test_bad_input_and_non_convergence(psd):
    M, A = psd
    with pytest.raises(ValueError, match="k=120 must be smaller than the dimension 120"):
        eigsh(A, 120)
    with pytest.raises(ValueError, match="not self-adjoint.*svds"):
        eigsh(DenseOperator(torch.randn(30, 30, dtype=F64)), 2, seed=0)
    with pytest.raises(ValueError, match="square self-adjoint"):
        eigsh(DenseOperator(torch.randn(30, 20, dtype=F64)), 2)
    with pytest.raises(ValueError, match="k=24 must be smaller"):
        svds(DenseOperator(torch.randn(30, 24, dtype=F64)), 24)
    with pytest.raises(ConvergenceError, match="did not converge.*residual") as info:
        eigsh(A, 6, max_restarts=0, max_basis=12, block_size=3, seed=0)
    assert info.value.result.residuals.shape == (6,) and not info.value.result.converged
    with pytest.warns(RuntimeWarning, match="did not converge"):
        r = eigsh(A, 6, max_restarts=0, max_basis=12, block_size=3, seed=0, on_failure="warn")
    assert not r.converged


@pytest.mark.parametrize("block_size,max_basis", [(1, 12), (2, 12), (2, 23), (3, 23)])
def test_eigsh_restarts_converge_for_any_block_size(block_size, max_basis):
    # a dense random spectrum with blocks smaller than k and bases that are not a multiple of the block
    g = torch.Generator().manual_seed(2)
    S = torch.randn(50, 50, generator=g, dtype=F64)
    S = S + S.T
    r = eigsh(DenseOperator(S), 3, seed=1, block_size=block_size, max_basis=max_basis, max_restarts=100)
    assert torch.allclose(r.values, torch.linalg.eigvalsh(S).flip(0)[:3], rtol=1e-8)


def test_eigsh_low_rank_operator_finds_the_invariant_subspace():
    # rank 4 < k + basis: the Krylov space becomes invariant after one block and the search must
    # continue with fresh random directions (zero eigenvalues) instead of dividing by ~0
    g = torch.Generator().manual_seed(4)
    U = torch.linalg.qr(torch.randn(300, 4, generator=g, dtype=F64)).Q
    S = (U * torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=F64)) @ U.T
    r = eigsh(DenseOperator(S), 6, seed=0, block_size=3)
    assert torch.allclose(r.values[:4], torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=F64), rtol=1e-10)
    assert r.values[4:].abs().max() < 1e-9 and r.converged
    V = r.vectors.reshape(6, -1)
    assert torch.allclose(V @ V.T, torch.eye(6, dtype=F64), atol=1e-9)


def test_eigsh_float32_basis_on_a_large_operator():
    # float32 storage of the basis: eigenvalues still to ~1e-6 relative, explicit residuals reported
    g = torch.Generator().manual_seed(5)
    n = 4000
    Q = torch.linalg.qr(torch.randn(n, 40, generator=g, dtype=F64)).Q
    lam = 0.7 ** torch.arange(40, dtype=F64)
    M = ((Q * lam) @ Q.T).float()
    r = eigsh(DenseOperator(M), 10, seed=0)
    assert r.converged and r.vectors.dtype == torch.float32
    assert torch.allclose(r.values, lam[:10], rtol=2e-6)
    V = r.vectors.reshape(10, -1).double()
    explicit = (V @ M.double() - r.values[:, None] * V).norm(dim=1)
    assert torch.allclose(r.residuals, explicit, rtol=1e-3, atol=1e-7)
    assert (r.residuals <= 1e-5 * 10).all()


def test_eigsh_small_operator_is_solved_densely():
    g = torch.Generator().manual_seed(6)
    S = torch.randn(20, 20, generator=g, dtype=F64)
    S = S @ S.T
    r = eigsh(DenseOperator(S), 3, seed=0)          # n = 20 <= max_basis + block_size = 18 + 2 is dense
    assert r.n_matvecs == 20 and r.n_restarts == 0
    assert torch.allclose(r.values, torch.linalg.eigvalsh(S).flip(0)[:3], rtol=1e-12)
    with pytest.raises(ValueError, match="max_basis=5 must be at least k \\+ 2 \\* block_size = 7"):
        eigsh(DenseOperator(S), 3, max_basis=5, block_size=2)


def test_eigsh_block_size_resolves_exact_multiplicity():
    # eigenvalue 3 occurs three times: a Krylov block of 3 holds every copy from the start
    g = torch.Generator().manual_seed(7)
    U = torch.linalg.qr(torch.randn(200, 200, generator=g, dtype=F64)).Q
    lam = torch.cat([torch.tensor([3.0, 3.0, 3.0, 2.0], dtype=F64), torch.linspace(1.0, 0.0, 196, dtype=F64)])
    S = (U * lam) @ U.T
    r = eigsh(DenseOperator(S), 4, seed=0, block_size=3)
    assert torch.allclose(r.values, lam[:4], rtol=1e-10)


def _sym_with_spectrum(lam, seed):
    g = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn(lam.numel(), lam.numel(), generator=g, dtype=F64)).Q
    return (Q * lam) @ Q.T, Q


@pytest.mark.parametrize("block_size", [1, 3, 4, 8])
def test_block_eigsh_clustered_spectrum_matches_eigh(block_size):
    # a tight cluster at the top (relative gaps 1e-6) over a slowly decaying tail
    n = 400
    lam = torch.linspace(1.0, 0.05, n, dtype=F64)
    lam[:6] = 2.0 + 1e-6 * torch.arange(6, dtype=F64)
    M, _ = _sym_with_spectrum(lam, 7)
    r = eigsh(DenseOperator(M, (4, 10, 10), (4, 10, 10)), 8, seed=0, block_size=block_size, tol=1e-12)
    truth = torch.linalg.eigvalsh(M).flip(0)[:8]
    assert r.converged and r.meta["block_size"] == block_size
    assert torch.allclose(r.values, truth, rtol=1e-10, atol=0)
    V = r.vectors.reshape(8, -1)
    explicit = (V @ M - r.values[:, None] * V).norm(dim=1)
    assert torch.allclose(r.residuals, explicit, rtol=1e-6, atol=1e-15)
    assert (explicit <= 10 * 1e-12 * r.values.abs().max()).all()
    # the six clustered vectors span the cluster's eigenspace
    U = torch.linalg.eigh(M).eigenvectors.flip(1)[:, :6]
    assert torch.allclose(V[:6].T @ V[:6], U @ U.T, atol=1e-8)


@pytest.mark.parametrize("block_size", [3, 5])
def test_block_eigsh_repeated_eigenvalues_with_blocks_at_least_the_multiplicity(block_size):
    # exact multiplicity 3 at the top and 2 below: a block of >= 3 reaches every copy
    lam = torch.cat([torch.full((3,), 4.0, dtype=F64), torch.full((2,), 3.0, dtype=F64),
                     torch.logspace(0, -3, 295, dtype=F64)])
    M, Q = _sym_with_spectrum(lam, 8)
    r = eigsh(DenseOperator(M), 6, seed=1, block_size=block_size)
    assert r.converged
    assert torch.allclose(r.values, torch.tensor([4.0, 4, 4, 3, 3, 1], dtype=F64), rtol=1e-10, atol=0)
    V = r.vectors
    assert torch.allclose(V[:3].T @ V[:3], Q[:, :3] @ Q[:, :3].T, atol=1e-8)
    assert torch.allclose(V[3:5].T @ V[3:5], Q[:, 3:5] @ Q[:, 3:5].T, atol=1e-8)
    assert torch.allclose(V @ V.T, torch.eye(6, dtype=F64), atol=1e-10)
    assert (r.residuals <= 1e-9 * 4).all()


def test_eigsh_reports_its_split_and_caps_the_default_basis(monkeypatch):
    import neurokpflow.kpflow.eigen as eigen
    lam = 0.9 ** torch.arange(300, dtype=F64)
    M, _ = _sym_with_spectrum(lam, 9)
    A = DenseOperator(M).with_chunk_size(4)
    r = eigsh(A, 4, seed=0, block_size=2)
    assert r.meta["chunk_size"] == 4 and r.meta["max_basis"] == 4 + 30 and not r.meta["basis_limited_by_memory"]
    assert r.meta["basis_bytes"] == 34 * 300 * 8
    monkeypatch.setattr(eigen, "BASIS_MEMORY", 12 * 300 * 8)      # room for 12 vectors
    capped = eigsh(A, 4, seed=0, block_size=2)
    assert capped.meta["max_basis"] == 12 and capped.meta["basis_limited_by_memory"]
    assert capped.n_restarts > r.n_restarts
    assert torch.allclose(capped.values, lam[:4], rtol=1e-9)
    assert capped.to_xarray().attrs["meta_max_basis"] == 12


def _gram(n_out, n_in, seed, rank=None):
    """A = L L* with L: R^n_in -> R^n_out ([n_out, n_in] dense, rank ``rank``) as a composition."""
    g = torch.Generator().manual_seed(seed)
    Lm = torch.randn(n_out, n_in, generator=g, dtype=F64) / n_in ** 0.5
    if rank is not None:
        Lm = Lm @ torch.linalg.qr(torch.randn(n_in, rank, generator=g, dtype=F64)).Q @ \
            torch.linalg.qr(torch.randn(n_in, rank, generator=g, dtype=F64)).Q.T
    L = DenseOperator(Lm, (n_in,), (4, 10, 10)) if n_out == 400 else DenseOperator(Lm, (n_in,), (n_out,))
    return Lm, L, L @ L.T


def test_eigsh_of_a_gram_operator_iterates_on_the_factors_smaller_side():
    Lm, L, A = _gram(400, 90, 11)
    M = Lm @ Lm.T
    r = eigsh(A, 8, seed=0, tol=1e-12)
    assert "on L* L" in r.meta["solver"] and r.meta["space_size"] == 90
    assert r.meta["basis_bytes"] == r.meta["max_basis"] * 90 * 8 and r.meta["factor_applications"] == 8
    evals, evecs = torch.linalg.eigh(M)
    assert torch.allclose(r.values, evals.flip(0)[:8], rtol=1e-10, atol=0)
    V = r.vectors.reshape(8, -1)
    assert r.vectors.shape == (8, 4, 10, 10) and r.dims == ("trial", "time", "unit")
    assert torch.allclose(V @ V.T, torch.eye(8, dtype=F64), atol=1e-10)
    explicit = (V @ M - r.values[:, None] * V).norm(dim=1)      # residuals are A's own, in A's space
    assert torch.allclose(r.residuals, explicit, atol=1e-13) and (explicit <= 10 * 1e-12 * r.values[0]).all()
    U = evecs.flip(1)[:, :8]
    assert torch.allclose(V.T @ V, U @ U.T, atol=1e-8)
    assert (V.gather(1, V.abs().argmax(1, keepdim=True)) > 0).all()
    # the operator's own space gives the same pairs
    own = eigsh(A, 8, seed=0, tol=1e-12, use_gram_factor=False)
    assert "L* L" not in own.meta["solver"] and own.meta["basis_bytes"] == own.meta["max_basis"] * 400 * 8
    assert torch.allclose(own.values, r.values, rtol=1e-10, atol=0)
    assert torch.allclose(own.vectors.reshape(8, -1).T @ own.vectors.reshape(8, -1), V.T @ V, atol=1e-8)


def test_eigsh_gram_factor_path_falls_back_for_zero_and_smallest_eigenvalues():
    # rank 5 < k = 7: the wanted pairs include eigenvalue 0, whose eigenvectors lie outside L's range
    Lm, L, A = _gram(150, 60, 12, rank=5)
    M = Lm @ Lm.T
    r = eigsh(A, 7, seed=0)
    assert "L* L" not in r.meta["solver"] and r.converged
    assert torch.allclose(r.values[:5], torch.linalg.eigvalsh(M).flip(0)[:5], rtol=1e-9, atol=0)
    assert (r.values[5:].abs() <= 1e-9 * r.values[0]).all()
    # smallest algebraic: 0 (the null space of L*, only in A's own space), then the smallest σ²
    Lm, L, A = _gram(61, 60, 13)
    low = eigsh(A, 3, which="SA", seed=0)
    assert "L* L" not in low.meta["solver"] and low.converged
    truth = torch.linalg.eigvalsh(Lm @ Lm.T)[:3]
    assert truth[1] > 1e-4 and torch.allclose(low.values, truth, rtol=0, atol=1e-14)


def test_eigsh_smallest_eigenvalues_converge_relative_to_the_wanted_ones():
    # wanted eigenvalues ~1e-2 under a largest of ~4: the target is tol · max|wanted λ| (it once was
    # tol · max|Ritz value| inside the iteration, and then the explicit check failed by ~300x)
    g = torch.Generator().manual_seed(13)
    Lm = torch.randn(61, 60, generator=g, dtype=F64) / 60 ** 0.5
    M = Lm @ Lm.T + 0.01 * torch.eye(61, dtype=F64)
    r = eigsh(DenseOperator(M), 3, which="SA", seed=0, max_basis=40)
    assert r.converged and r.meta["solver"] == "thick-restart block Lanczos"
    truth = torch.linalg.eigvalsh(M)[:3]
    assert torch.allclose(r.values, truth, rtol=1e-12, atol=0)
    V = r.vectors.reshape(3, -1)
    explicit = (V @ M - r.values[:, None] * V).norm(dim=1)
    assert (explicit <= 10 * 1e-9 * truth.abs().max()).all() and torch.linalg.eigvalsh(M)[-1] > 3


def test_eigsh_of_the_ntk_is_the_same_on_either_side():
    torch.manual_seed(0)
    cell = GRUCell(2, 6).double()
    x = torch.randn(5, 12, 2, dtype=F64)
    ops = operators(cell, x, unroll(cell, x))
    r = eigsh(ops.NTK, 6, seed=0, tol=1e-12)
    assert "on L* L" in r.meta["solver"] and r.meta["space_size"] == ops.J_theta.size_in < ops.NTK.size_in
    dense = ops.NTK.to_dense()
    evals = torch.linalg.eigvalsh((dense + dense.T) / 2).flip(0)[:6]
    assert torch.allclose(r.values, evals, rtol=1e-10, atol=0)
    own = eigsh(ops.NTK, 6, seed=0, tol=1e-12, use_gram_factor=False)
    assert torch.allclose(own.values, r.values, rtol=1e-10, atol=0)
    V, W = r.vectors.reshape(6, -1), own.vectors.reshape(6, -1)
    assert torch.allclose(V.T @ V, W.T @ W, atol=1e-7)
