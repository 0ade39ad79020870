"""Partial trace vs block average on dense operators (kpflow-math check 11)."""
import pytest
import torch

from neurokpflow.kpflow import DenseOperator, block_average, partial_trace

F64 = torch.float64
SHAPE = (3, 4, 5)


@pytest.fixture(scope="module")
def dense():
    g = torch.Generator().manual_seed(0)
    M = torch.randn(60, 60, generator=g, dtype=F64)
    return M, DenseOperator(M, SHAPE, SHAPE)


def test_partial_trace_equals_einsum(dense):
    M, A = dense
    T = M.reshape(*SHAPE, *SHAPE)
    cases = {"time": ("ajbckd", "ajbcjd->abcd", (15, 15)), "unit": (None, "abjcdj->abcd", (12, 12)),
             ("trial", "unit"): (None, "ajbakb->jk", (4, 4)), 0: (None, "jabjcd->abcd", (20, 20))}
    for axes, (_, eq, shp) in cases.items():
        got = partial_trace(A, axes).to_dense()
        assert torch.allclose(got, torch.einsum(eq, T).reshape(shp), atol=1e-12)


def test_block_average_equals_block_mean(dense):
    M, A = dense
    T = M.reshape(*SHAPE, *SHAPE)
    got = block_average(A, "unit").to_dense()
    assert torch.allclose(got, T.sum(dim=(2, 5)).reshape(12, 12) / 5, atol=1e-12)
    got = block_average(A, ("trial", "time")).to_dense()
    assert torch.allclose(got, T.sum(dim=(0, 1, 3, 4)) / 12, atol=1e-12)


def test_projector_distinguishes_the_two_reductions():
    g = torch.Generator().manual_seed(1)
    m, n = 3, 4
    X, Y = torch.randn(m, n, generator=g, dtype=F64), torch.randn(m, n, generator=g, dtype=F64)
    A = DenseOperator(torch.outer(Y.reshape(-1), X.reshape(-1)), (m, n), (m, n))  # q -> <q, X> Y
    assert torch.allclose(partial_trace(A, 1).to_dense(), Y @ X.T, atol=1e-12)
    ones = torch.ones(n, dtype=F64)
    assert torch.allclose(n * block_average(A, 1).to_dense(), torch.outer(Y @ ones, X @ ones), atol=1e-12)


def test_adjoints_names_and_kron_agreement(dense):
    M, A = dense
    for red in (partial_trace(A, "time"), block_average(A, "time")):
        assert torch.allclose(red.T.to_dense(), red.to_dense().T, atol=1e-12)
        assert red.dims == ("trial", "unit") and red.shape_in == (3, 5)
    C = torch.randn(12, 12, dtype=F64)
    K = DenseOperator(torch.kron(C, torch.eye(5, dtype=F64)), SHAPE, SHAPE)
    assert torch.allclose(partial_trace(K, "unit").to_dense(), 5 * C, atol=1e-12)
    assert torch.allclose(block_average(K, "unit").to_dense(), C, atol=1e-12)
    # reduce again by name on the reduced operator
    twice = partial_trace(partial_trace(A, "time"), "unit").to_dense()
    assert torch.allclose(twice, partial_trace(A, ("time", "unit")).to_dense(), atol=1e-12)


def test_randomized_partial_trace_is_unbiased(dense):
    M, A = dense
    exact = partial_trace(A, "unit").to_dense()
    mean = sum(partial_trace(A, "unit", budget=2, seed=s).to_dense() for s in range(400)) / 400
    assert (mean - exact).abs().max() < 0.15 * exact.abs().max()


def test_bad_axes(dense):
    _, A = dense
    with pytest.raises(ValueError, match="no axis 'neuron'.*'trial', 'time', 'unit'"):
        partial_trace(A, "neuron")
    with pytest.raises(ValueError, match="axis 3 does not exist"):
        block_average(A, 3)
    with pytest.raises(ValueError, match="every axis.*trace"):
        partial_trace(A, (0, 1, 2))
    with pytest.raises(ValueError, match="named twice"):
        partial_trace(A, ("time", 1))
    with pytest.raises(ValueError, match="square operator"):
        partial_trace(DenseOperator(torch.randn(60, 12, dtype=F64), (3, 4), SHAPE), 0)
