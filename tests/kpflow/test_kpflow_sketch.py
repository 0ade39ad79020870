"""The shared sketch: one batch of applications gives trace, Frobenius norm, ER3 and alignment."""
import pytest
import torch

from neurokpflow.kpflow import (DenseOperator, FunctionOperator, alignment, effective_rank, frobenius_norm,
                                operators, sketch, trace)
from neurokpflow.models.cells import GRUCell, unroll

F64 = torch.float64


@pytest.fixture(scope="module")
def gru_ops():
    torch.manual_seed(0)
    cell = GRUCell(2, 5, dtype=F64)
    x = torch.randn(3, 6, 2, dtype=F64)
    return operators(cell, x, unroll(cell, x).detach())


@pytest.mark.parametrize("chunk", [4, 16])
def test_shared_sketch_equals_separate_calls_with_the_same_probes(gru_ops, chunk):
    A, B = gru_ops.NTK, gru_ops.P @ gru_ops.P.T
    m, seed = 11, 3
    sk = sketch(A, m, B=B, seed=seed, chunk_size=chunk)
    pairs = [(sk.trace(), trace(A, m, "hutchinson", seed=seed, chunk_size=chunk)),
             (sk.frobenius_norm(), frobenius_norm(A, m, "hutchinson", seed=seed, chunk_size=chunk)),
             (sk.effective_rank(), effective_rank(A, definition="ER3", budget=m, seed=seed, chunk_size=chunk)),
             (sk.alignment(), alignment(A, B, m, "hutchinson", seed=seed, chunk_size=chunk)),
             (sk.swap().frobenius_norm(), frobenius_norm(B, m, "hutchinson", seed=seed, chunk_size=chunk)),
             (sk.swap().trace(), trace(B, m, "hutchinson", seed=seed, chunk_size=chunk))]
    for shared, separate in pairs:
        assert shared.value == pytest.approx(separate.value, rel=1e-13, abs=0)
        assert shared.stderr == pytest.approx(separate.stderr, rel=1e-9, abs=0)
        assert shared.meta["shared_sketch"]
    # the alignment is the cosine of the two operators; the sketch's is consistent with it
    dA, dB = A.to_dense(), B.to_dense()
    truth = float((dA * dB).sum() / (dA.norm() * dB.norm()))
    big = sketch(A, 400, B=B, seed=0).alignment()
    assert abs(big.value - truth) < 4 * big.stderr + 1e-3


def _counting(M, shape, counter, key):
    def mm(V):
        counter[key] += V.shape[0]
        return (V.reshape(V.shape[0], -1) @ M.T).reshape(V.shape)
    return FunctionOperator(mm, mm, shape, shape, F64, "cpu")


def test_shared_sketch_applies_each_factor_once_per_probe():
    g = torch.Generator().manual_seed(1)
    n, shape = 24, (2, 3, 4)
    X = torch.randn(n, n, generator=g, dtype=F64)
    Y = torch.randn(n, n, generator=g, dtype=F64)
    counter = {"X": 0, "Xt": 0, "Y": 0}
    Xop = _counting(X, shape, counter, "X")
    XopT = _counting(X.T.contiguous(), shape, counter, "Xt")
    Yop = _counting(Y @ Y.T, shape, counter, "Y")
    A = Xop @ Yop @ XopT            # shares X* (applied first) and X (last) with X X*
    B = Xop @ XopT
    sk = sketch(A, 10, B=B, seed=0, chunk_size=4)
    # X* once per probe (shared), Y once, X once per probe for each operator (stacked)
    assert counter == {"X": 20, "Xt": 10, "Y": 10}
    dA, dB = (X @ Y @ Y.T @ X.T), X @ X.T
    for est, truth in ((sk.trace(), torch.trace(dA)), (sk.swap().trace(), torch.trace(dB))):
        assert abs(est.value - float(truth)) < 5 * est.stderr
    # separate estimators would have applied A three times and B twice over the same probes
    assert sk.budget == 10 and sk.meta["chunk_size"] == 4


def test_sketch_rejects_what_it_cannot_do(gru_ops):
    A = gru_ops.NTK
    with pytest.raises(ValueError, match="without B"):
        sketch(A, 4, seed=0).alignment()
    with pytest.raises(ValueError, match="budget=1 is too small"):
        sketch(A, 1, seed=0)
    with pytest.raises(ValueError, match="not square"):
        sketch(gru_ops.J_theta, 4, seed=0).trace()
    with pytest.raises(ValueError, match="rademacher"):
        sketch(A, 4, distribution="uniform")
    J = DenseOperator(torch.randn(7, 5, dtype=F64))
    # a rectangular operator still has a Frobenius norm from the same sketch
    est = sketch(J, 4, seed=0).frobenius_norm()
    assert est.value == pytest.approx(float(frobenius_norm(J, 4, "hutchinson", seed=0)), rel=1e-14)
