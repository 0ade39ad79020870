"""Trace, Frobenius-norm and alignment estimators against dense computation."""
import math

import pytest
import torch

from neurokpflow.kpflow import DenseOperator, Estimate, alignment, frobenius_norm, trace

F64 = torch.float64


def _psd(n, rank=None, seed=0, decay=3.0):
    g = torch.Generator().manual_seed(seed)
    r = n if rank is None else rank
    U = torch.randn(n, r, generator=g, dtype=F64)
    w = torch.rand(r, generator=g, dtype=F64) ** decay
    return (U * w) @ U.T


@pytest.fixture(scope="module")
def op():
    M = _psd(60)
    return M, DenseOperator(M, (3, 4, 5), (3, 4, 5))


@pytest.mark.parametrize("method", ["hutch++", "hutchinson", "jvp", "vjp"])
def test_exact_once_budget_reaches_dimension(op, method):
    M, A = op
    truth = float((M * M).sum()) if method in ("jvp", "vjp") else float(torch.trace(M))
    est = trace(A, budget=60, method=method, seed=0)
    assert est.stderr == 0 and est.method == "exact" and est.n_matvecs == 60
    assert float(est) == pytest.approx(truth, rel=1e-12)
    assert est.interval == (est.value, est.value)


def test_one_sided_estimators_use_the_factor_and_its_weights():
    g = torch.Generator().manual_seed(1)
    Jm = torch.randn(12, 5, generator=g, dtype=F64)
    from neurokpflow.kpflow import FunctionOperator
    w = 1 / 6  # "mean" convention on the output space: J* = Jᵀ w_out / w_in
    J = FunctionOperator(lambda V: V @ Jm.T, lambda E: w * E @ Jm, (5,), (12,), F64, "cpu", weight_out=w)
    truth = float(torch.trace((J @ J.T).to_dense()))
    assert truth == pytest.approx(w * float((Jm ** 2).sum()))
    for method in ("jvp", "vjp"):
        assert float(trace(J, budget=100, method=method)) == pytest.approx(truth, rel=1e-12)
    means = [sum(float(trace(J, budget=4, method=m, seed=s)) for s in range(300)) / 300 for m in ("jvp", "vjp")]
    assert means == pytest.approx([truth, truth], rel=0.08)


@pytest.mark.parametrize("method,budget", [("hutchinson", 20), ("hutch++", 20), ("hutch++", 7), ("jvp", 20)])
def test_centred_and_intervals_cover_at_nominal_rate(op, method, budget):
    M, A = op
    truth = float((M * M).sum()) if method == "jvp" else float(torch.trace(M))
    ests = [trace(A, budget=budget, method=method, seed=s) for s in range(200)]
    vals = torch.tensor([e.value for e in ests])
    assert abs(float(vals.mean()) - truth) < 4 * float(vals.std()) / math.sqrt(200)
    coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in ests) / 200
    assert 0.87 <= coverage <= 0.99
    # the reported standard error matches the spread over seeds
    mean_se = sum(e.stderr for e in ests) / 200
    assert 0.7 < mean_se / float(vals.std()) < 1.3


def test_hutchpp_error_decays_faster_than_hutchinson_on_low_rank_psd():
    M = _psd(300, rank=40, decay=4.0, seed=3)
    A = DenseOperator(M)
    truth = float(torch.trace(M))

    def rms(method, m):
        return math.sqrt(sum((float(trace(A, m, method, seed=s)) - truth) ** 2 for s in range(30)) / 30)

    h_small, h_big = rms("hutchinson", 12), rms("hutchinson", 96)
    p_small, p_big = rms("hutch++", 12), rms("hutch++", 96)
    assert p_big < h_big / 5
    assert p_small / p_big > 1.5 * (h_small / h_big)


def test_frobenius_norm(op):
    M, A = op
    truth = float(M.norm())
    assert float(frobenius_norm(A, method="exact")) == pytest.approx(truth, rel=1e-12)
    assert float(frobenius_norm(A, 60)) == pytest.approx(truth, rel=1e-12)
    ests = [frobenius_norm(A, 20, seed=s) for s in range(150)]
    coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in ests) / 150
    assert 0.85 <= coverage <= 1.0
    pp = frobenius_norm(A, 30, method="hutch++", seed=0)
    assert pp.n_matvecs == 60 and abs(pp.value - truth) < 5 * pp.stderr + 1e-9


def test_alignment_identities_and_dense_value(op):
    M, A = op
    Bm = M + 0.3 * _psd(60, seed=5)
    B = DenseOperator(Bm, (3, 4, 5), (3, 4, 5))
    truth = float((M * Bm).sum() / (M.norm() * Bm.norm()))
    assert float(alignment(A, A, 10, seed=0)) == pytest.approx(1.0, abs=1e-12)
    assert float(alignment(A, -1 * A, 10, seed=0)) == pytest.approx(-1.0, abs=1e-12)
    assert float(alignment(A, B, method="exact")) == pytest.approx(truth, rel=1e-12)
    exact = alignment(A, B, 60, seed=0)
    assert exact.stderr == 0 and float(exact) == pytest.approx(truth, rel=1e-12)
    sk = [alignment(A, B, 12, seed=s) for s in range(150)]
    vals = torch.tensor([e.value for e in sk])
    assert abs(float(vals.mean()) - truth) < 0.1 * (1 - truth) + 4 * float(vals.std()) / math.sqrt(150)
    coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in sk) / 150
    assert coverage >= 0.8
    tr3 = alignment(A, B, 30, method="traces", seed=1)
    assert abs(tr3.value - truth) < 5 * tr3.stderr
    # variance falls with the sketch size
    spread = [torch.tensor([float(alignment(A, B, m, seed=s)) for s in range(60)]).std() for m in (6, 30)]
    assert spread[1] < spread[0] / 1.5


def test_estimate_type_and_seeding(op):
    _, A = op
    a, b = trace(A, 10, seed=7), trace(A, 10, seed=7)
    assert isinstance(a, Estimate) and float(a) == float(b) and a.stderr > 0
    assert a.interval[0] < a.value < a.interval[1]
    assert trace(A, 10, seed=8).value != a.value
    assert "±" in repr(a)
    f32 = DenseOperator(op[0].float(), (3, 4, 5), (3, 4, 5))
    assert trace(f32, 60).value == pytest.approx(float(torch.trace(op[0])), rel=1e-5)


def test_bad_input(op):
    _, A = op
    with pytest.raises(ValueError, match="budget=3 is too small for method='hutch\\+\\+'"):
        trace(A, 3, "hutch++")
    with pytest.raises(ValueError, match="budget=1"):
        trace(A, 1, "hutchinson")
    with pytest.raises(TypeError, match="needs budget="):
        trace(A, method="hutchinson")
    with pytest.raises(ValueError, match="method must be one of"):
        trace(A, 10, "girard")
    rect = DenseOperator(torch.randn(4, 6, dtype=F64))
    with pytest.raises(ValueError, match="square operator.*method='jvp'"):
        trace(rect, 5)
    with pytest.raises(TypeError, match="LinearOperator"):
        trace(torch.eye(3), 5)
    with pytest.raises(ValueError, match="alignment needs equal shapes"):
        alignment(A, DenseOperator(torch.eye(60, dtype=F64)), 5)


def test_shared_factors_are_applied_once_and_give_the_same_products():
    from neurokpflow.kpflow.linop import FunctionOperator, apply_pair, chain_factors
    g = torch.Generator().manual_seed(11)
    Pm, Km = torch.randn(12, 12, generator=g, dtype=torch.float64), torch.randn(12, 12, generator=g, dtype=torch.float64)
    Km = Km @ Km.T
    calls = {"P": 0, "P*": 0}

    def counted(M, name):
        def f(V):
            calls[name] += V.shape[0]
            return V @ M.T
        return f

    P = FunctionOperator(counted(Pm, "P"), counted(Pm.T, "P*"), (12,), (12,), torch.float64, "cpu", name="P")
    K = DenseOperator(Km)
    A, B = P @ K @ P.T, P @ P.T
    assert len(chain_factors(A)) == 3 and len(chain_factors(B)) == 2
    X = torch.randn(5, 12, generator=g, dtype=torch.float64)
    AX, BX = apply_pair(A, B, X)
    assert calls == {"P": 10, "P*": 5}          # P* once for both; P once on the stacked pair
    assert torch.allclose(AX, X @ (Pm @ Km @ Pm.T).T) and torch.allclose(BX, X @ (Pm @ Pm.T).T)
    dense = alignment(A, B, method="exact")
    assert alignment(A, B, 12, seed=0).value == pytest.approx(dense.value, rel=1e-10)


def test_compositions_reuse_fresh_intermediates_but_never_touch_the_input():
    # P K P* and K P hand their intermediates to P's in-place recurrence; the caller's probes stay intact
    from neurokpflow.kpflow import operators
    from neurokpflow.models.cells import GRUCell, unroll
    torch.manual_seed(0)
    cell = GRUCell(2, 5, dtype=torch.float64)
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    ops = operators(cell, x, unroll(cell, x).detach())
    V = torch.randn(4, 3, 7, 5, dtype=torch.float64)
    keep = V.clone()
    dense = ops.NTK.to_dense()
    out = ops.NTK.matvec(V)
    assert torch.equal(V, keep)
    assert torch.allclose(out.reshape(4, -1), V.reshape(4, -1) @ dense.T, atol=1e-12)
    KP = ops.K @ ops.P                        # P first (not owned), then K
    PK = ops.P @ ops.K                        # K's output handed to P in place
    assert torch.allclose(PK.matvec(V), ops.P.matvec(ops.K.matvec(V)), atol=1e-12)
    assert torch.allclose(PK.rmatvec(V), ops.K.rmatvec(ops.P.rmatvec(V)), atol=1e-12)
    assert torch.allclose(KP.matvec(V), ops.K.matvec(ops.P.matvec(V)), atol=1e-12)
    assert torch.equal(V, keep)


def test_rademacher_probes_are_fair_independent_signs():
    from neurokpflow.kpflow._probes import random_probes
    g = torch.Generator().manual_seed(3)
    n, d = 4000, 70            # d not a multiple of 64: probes straddle the 64-bit draws
    X = random_probes(n, (7, 10), F64, "cpu", g).reshape(n, d)
    assert set(X.unique().tolist()) == {-1.0, 1.0}
    # E[g gᵀ] = I: every entry of the sample second moment within 5 standard errors (1/sqrt(n))
    C = X.T @ X / n
    assert float((C - torch.eye(d, dtype=F64)).abs().max()) < 5 / math.sqrt(n)
    # consecutive signs of one long draw (bits of one byte and of one word) are uncorrelated
    y = random_probes(1, (2 ** 20,), torch.float32, "cpu", g).reshape(-1).double()
    for lag in (1, 7, 8, 63, 64):
        assert abs(float((y[lag:] * y[:-lag]).mean())) < 5 / 2 ** 10
    assert abs(float(y.mean())) < 5 / 2 ** 10
    # seeded: the same generator state gives the same probes
    a = random_probes(3, (5,), F64, "cpu", torch.Generator().manual_seed(9))
    b = random_probes(3, (5,), F64, "cpu", torch.Generator().manual_seed(9))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- trial-split one-sided trace
def _gru_case(B=6, T=5, I=2, H=4, seed=0, cell=None):
    from neurokpflow.kpflow import operators
    from neurokpflow.models.cells import GRUCell, unroll
    torch.manual_seed(seed)
    cell = cell or GRUCell(I, H, dtype=F64)
    x = torch.randn(B, T, I, dtype=F64)
    hid = unroll(cell, x).detach()
    return cell, x, hid


@pytest.mark.parametrize("name", ["gru", "lstm", "rate", "dale"])
@pytest.mark.parametrize("inner", ["sum", "mean"])
@pytest.mark.parametrize("T,H,row_bytes", [(3, 8, None), (12, 3, None), (3, 8, 1)])
def test_per_trial_adjoint_norms_match_masked_adjoints(name, inner, T, H, row_bytes, monkeypatch):
    # (T=3, H=8): the recurrent sites take the [T, T] Gram form, the input sites the gradient form;
    # (T=12, H=3): the gradient form everywhere; row_bytes=1: one trial at a time
    import importlib
    from neurokpflow.kpflow import operators
    from neurokpflow.models.cells import GRUCell, LSTMCell, LeakyRNNCell
    if row_bytes is not None:   # the package exports a function of the module's name: import the module itself
        monkeypatch.setattr(importlib.import_module("neurokpflow.kpflow.operators"), "_ROW_BLOCK_BYTES", row_bytes)
    make = {"gru": lambda: GRUCell(2, H, dtype=F64), "lstm": lambda: LSTMCell(2, H, dtype=F64),
            "rate": lambda: LeakyRNNCell(2, H, dtype=F64),
            "dale": lambda: LeakyRNNCell(2, H, dale=0.5, alpha=0.5, dtype=F64)}[name]
    torch.manual_seed(1)
    cell, x, hid = _gru_case(T=T, cell=make())
    R = torch.randn(3, cell.hidden_size, dtype=F64)
    ops = operators(cell, x, hid, inner=inner, readout=R, chunk_size=2)
    B = x.shape[0]
    for J in (ops.J_theta, ops.P @ ops.J_theta, ops.readout @ ops.P @ ops.J_theta):
        E = torch.randn(5, *J.shape_out, dtype=F64)
        got = J._rmatmat_block_sqnorms(E, 0)
        want = torch.zeros(5, B, dtype=F64)
        for b in range(B):
            Eb = torch.zeros_like(E)
            Eb[:, b] = E[:, b]
            Y = J.rmatvec(Eb)
            want[:, b] = (Y * Y).sum(-1)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)
        # the per-trial images themselves (the Frobenius estimator's pairs use them)
        vec = J._rmatmat_block_vectors(E, 0)
        for b in range(B):
            Eb = torch.zeros_like(E)
            Eb[:, b] = E[:, b]
            torch.testing.assert_close(vec[:, b], J.rmatvec(Eb), rtol=1e-10, atol=1e-12)
    # K couples trials, so nothing composed with it may split (and dense operators never do)
    assert not (ops.K @ ops.J_theta)._has_block_sqnorms(0)
    assert ops.P.separable_axis == 0 and ops.P.T.separable_axis == 0 and ops.K.separable_axis is None


@pytest.mark.parametrize("inner", ["sum", "mean"])
def test_trial_split_trace_is_unbiased_covers_and_beats_the_plain_sample(inner):
    from neurokpflow.kpflow import operators
    cell, x, hid = _gru_case(B=8, T=6, H=5)
    ops = operators(cell, x, hid, inner=inner)
    J = ops.P @ ops.J_theta
    truth = float(torch.trace((ops.P @ ops.K @ ops.P.T).to_dense()))
    spreads = {}
    for blocks in ("trial", None):
        ests = [trace(J, 8, "vjp", seed=s, blocks=blocks) for s in range(200)]
        assert all(e.meta["blocks"] == blocks for e in ests)
        vals = torch.tensor([e.value for e in ests])
        assert abs(float(vals.mean()) - truth) < 4 * float(vals.std()) / math.sqrt(200)
        coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in ests) / 200
        assert 0.87 <= coverage <= 0.99
        spreads[blocks] = float(vals.std())
    # 8 trials: most of the plain sample's variance is cross-trial
    assert spreads["trial"] < 0.5 * spreads[None]
    # the split is the default for a factor that allows it, and the exact path is unchanged
    assert trace(J, 8, "vjp", seed=0).meta["blocks"] == "trial"
    assert float(trace(J, J.size_out, "vjp")) == pytest.approx(truth, rel=1e-12)


def test_trial_split_errors_name_the_problem():
    from neurokpflow.kpflow import operators
    cell, x, hid = _gru_case()
    ops = operators(cell, x, hid)
    J = ops.P @ ops.J_theta
    with pytest.raises(ValueError, match="blocks must be"):
        trace(J, 8, "vjp", blocks="time")
    with pytest.raises(ValueError, match="method='vjp'"):
        trace(ops.NTK, 8, "hutch++", blocks="trial")
    dense = DenseOperator(torch.randn(12, 5, dtype=F64))
    with pytest.raises(ValueError, match="per-trial adjoint norms"):
        trace(dense, 4, "vjp", blocks="trial")
    with pytest.raises(ValueError, match="per-trial adjoint norms"):     # also where the budget makes it exact
        trace(dense, 100, "vjp", blocks="trial")
    assert trace(J, J.size_out, "vjp").meta["blocks"] == "trial"
    assert trace(dense, 4, "vjp", seed=0).meta["blocks"] is None       # "auto" falls back


# ----------------------------------------------------------------------------- Nyström Frobenius norm
def test_nystrom_frobenius_is_unbiased_covers_and_beats_hutchinson_on_a_decaying_spectrum():
    g = torch.Generator().manual_seed(5)
    U = torch.linalg.qr(torch.randn(80, 80, generator=g, dtype=F64)).Q
    lam = 0.6 ** torch.arange(80, dtype=F64) + 0.01          # a few dominant eigenvalues, then a floor
    M = (U * lam) @ U.T
    A = DenseOperator(M, (8, 10), (8, 10))
    truth = float(torch.linalg.matrix_norm(M))
    sq_truth = truth ** 2
    spreads = {}
    for method in ("nystrom", "hutchinson"):
        ests = [frobenius_norm(A, 24, method, seed=s) for s in range(300)]
        sq = torch.tensor([e.meta["squared"] for e in ests])
        assert abs(float(sq.mean()) - sq_truth) < 4 * float(sq.std()) / math.sqrt(300), method
        coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in ests) / 300
        assert 0.85 <= coverage <= 0.995, (method, coverage)
        spreads[method] = float(sq.std())
    # the sketch takes the dominant eigenvalues, whose λ⁴ carry most of Hutchinson's variance
    assert spreads["nystrom"] < 0.6 * spreads["hutchinson"]
    est = frobenius_norm(A, 24, "nystrom", seed=0)
    assert est.method == "nystrom" and est.n_matvecs == 24
    assert est.meta["sketch_size"] == 8 and est.meta["residual_probes"] == 16
    exact = frobenius_norm(A, 80, "nystrom")                                            # exact at the dimension
    assert float(exact) == pytest.approx(truth, rel=1e-12)
    assert exact.method == "exact" and exact.meta["requested_method"] == "nystrom"


def test_nystrom_frobenius_rejects_what_it_cannot_do():
    with pytest.raises(ValueError, match="self-adjoint PSD"):
        frobenius_norm(DenseOperator(torch.randn(6, 4, dtype=F64)), 8, "nystrom")
    with pytest.raises(ValueError, match="at least 4"):
        frobenius_norm(DenseOperator(torch.eye(6, dtype=F64)), 3, "nystrom")
    with pytest.raises(TypeError, match="budget="):
        frobenius_norm(DenseOperator(torch.eye(6, dtype=F64)), None, "nystrom")
    with pytest.raises(TypeError, match="must be an int"):
        frobenius_norm(DenseOperator(torch.eye(6, dtype=F64)), 8.0, "nystrom")
    with pytest.raises(ValueError, match="'nystrom'"):
        frobenius_norm(DenseOperator(torch.eye(6, dtype=F64)), 8, "nystrom++")


# ----------------------------------------------------------------------------- trial-pair Frobenius norm
def test_gram_factor_is_read_off_mirrored_compositions():
    from neurokpflow.kpflow import operators
    from neurokpflow.kpflow.linop import gram_factor
    cell, x, hid = _gru_case()
    ops = operators(cell, x, hid)
    J = gram_factor(ops.NTK)
    assert J.name == "(P @ J_theta)" and gram_factor(ops.K) is ops.J_theta
    assert gram_factor(ops.P) is None and gram_factor(ops.P @ ops.K) is None
    v = torch.randn(J.shape_out, dtype=F64)
    torch.testing.assert_close(J(J.T(v)), ops.NTK(v))
    # written as J @ J.T or J.gram() for a composition J
    for A in (J @ J.T, J.gram()):
        J2 = gram_factor(A)
        assert J2 is not None
        torch.testing.assert_close(J2(J2.T(v)), ops.NTK(v))


@pytest.mark.parametrize("inner", ["sum", "mean"])
def test_trial_pairs_frobenius_is_unbiased_covers_and_beats_hutchinson(inner):
    from neurokpflow.kpflow import operators
    cell, x, hid = _gru_case(B=8, T=6, H=5)
    ops = operators(cell, x, hid, inner=inner)
    truth = float(torch.linalg.matrix_norm(ops.NTK.to_dense()))
    spreads = {}
    for method in ("trial_pairs", "hutchinson"):
        ests = [frobenius_norm(ops.NTK, 6, method, seed=s) for s in range(300)]
        sq = torch.tensor([e.meta["squared"] for e in ests])
        assert abs(float(sq.mean()) - truth ** 2) < 4 * float(sq.std()) / math.sqrt(300), method
        coverage = sum(e.interval[0] <= truth <= e.interval[1] for e in ests) / 300
        assert 0.87 <= coverage <= 0.99, (method, coverage)
        spreads[method] = float(sq.std())
        if method == "trial_pairs":   # the jackknife error matches the spread over seeds
            reported = float(torch.tensor([e.meta["squared_stderr"] for e in ests]).mean())
            assert 0.7 < reported / spreads[method] < 1.4
    assert spreads["trial_pairs"] < 0.85 * spreads["hutchinson"]   # 8 trials; ~50 trials gain far more
    est = frobenius_norm(ops.NTK, 6, "trial_pairs", seed=0)
    assert est.method == "trial_pairs" and est.meta["pairs"] == 15 and est.meta["n_blocks"] == 8
    # an explicit factor gives the same numbers
    assert float(frobenius_norm(ops.NTK, 6, "trial_pairs", seed=0, factor=ops.P @ ops.J_theta)) == est.value


def test_trial_pairs_frobenius_rejects_what_it_cannot_do():
    from neurokpflow.kpflow import operators
    cell, x, hid = _gru_case()
    ops = operators(cell, x, hid)
    with pytest.raises(ValueError, match="A = J J"):
        frobenius_norm(ops.P @ ops.P, 4, "trial_pairs")
    with pytest.raises(ValueError, match="per-trial adjoint images"):
        frobenius_norm(ops.NTK, 4, "trial_pairs", factor=ops.P @ ops.K @ ops.J_theta)
    with pytest.raises(ValueError, match="at least 3"):
        frobenius_norm(ops.NTK, 2, "trial_pairs")
    with pytest.raises(ValueError, match="cannot be A's factor"):
        frobenius_norm(ops.NTK, 4, "trial_pairs", factor=ops.J_theta.T)
    with pytest.raises(ValueError, match="trial_pairs' only"):
        frobenius_norm(ops.NTK, 4, "hutchinson", factor=ops.P @ ops.J_theta)
    J = ops.P @ ops.J_theta
    assert frobenius_norm(J @ J.T, 4, "trial_pairs", seed=0).value == frobenius_norm(ops.NTK, 4, "trial_pairs",
                                                                                   seed=0).value
