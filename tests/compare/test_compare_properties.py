"""Property-based tests over shapes and dtypes, input immutability and degenerate inputs."""
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import neurokpflow.compare as nc
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)

ALL_MEASURES = [nc.Procrustes(), nc.Procrustes("euclidean"), nc.Procrustes(alpha=0.5), nc.CCA(), nc.CCA(truncate=0.9),
                nc.CKA(), nc.CKA(debiased=True), nc.CKA(debiased=True, hsic="lange"), nc.CKA(kernel="rbf"),
                nc.RSA(), nc.RSA("correlation", "kendall_tau_a"), nc.DSA(n_starts=2), nc.DSA("eigenvalues"),
                nc.Predictivity(n_splits=3)]

pairs = st.tuples(st.integers(8, 16), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2 ** 16),
                  st.sampled_from([np.float32, np.float64]))


@settings(max_examples=15, deadline=None)
@given(pairs)
def test_ranges_and_symmetry(args):
    m, nx, ny, seed, dtype = args
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((m, nx)).astype(dtype), rng.standard_normal((m, ny)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nc.InSampleBiasWarning)
        angle = float(nc.procrustes(x, y))
        assert 0 <= angle <= np.pi / 2 + 1e-12
        assert angle == pytest.approx(float(nc.procrustes(y, x)), abs=1e-9)
        assert 0 <= float(nc.cka(x, y)) <= 1 + 1e-12
        assert 0 <= float(nc.cca(x, y)) <= 1 + 1e-12
        assert float(nc.cka(x, y)) == pytest.approx(float(nc.cka(y, x)), abs=1e-12)
        assert float(nc.procrustes(x, y, "euclidean")) ** 2 <= (np.sum((x - x.mean(0)) ** 2, dtype=float)
                                                                 + np.sum((y - y.mean(0)) ** 2, dtype=float)) + 1e-6


@settings(max_examples=10, deadline=None)
@given(pairs)
def test_torch_numpy_and_float32_agree(args):
    m, nx, ny, seed, _ = args
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((m, nx)), rng.standard_normal((m, ny))
    for measure in (nc.CKA(), nc.Procrustes(), nc.RSA()):
        ref = float(measure(x, y))
        assert float(measure(torch.tensor(x), torch.tensor(y))) == pytest.approx(ref, abs=1e-12)
        assert float(measure(x.astype(np.float32), y.astype(np.float32))) == pytest.approx(ref, abs=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("measure", ALL_MEASURES, ids=[m.estimator for m in ALL_MEASURES])
def test_inputs_are_never_mutated(measure, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8, 3)).astype(dtype)
    y = (x @ rng.standard_normal((3, 4)) + 0.1 * rng.standard_normal((6, 8, 4))).astype(dtype)
    xt = torch.tensor(x)
    before = x.copy(), y.copy(), xt.clone()
    measure(x, y)
    measure(xt, y)
    nc.bootstrap(measure, x, y, n_boot=2)
    np.testing.assert_array_equal(x, before[0])
    np.testing.assert_array_equal(y, before[1])
    assert torch.equal(xt, before[2])
    assert x.dtype == dtype


def test_result_states_its_convention():
    s = nc.procrustes(np.eye(4), np.eye(4)[::-1])
    assert isinstance(float(s), float) and s.convention == "angle" and s.metric
    assert s.estimator.startswith("procrustes-kind=angular") and "angle" in repr(s)
    c = nc.cka(np.eye(4), np.eye(4), debiased=True, hsic="lange")
    assert c.convention == "similarity" and not c.metric and "hsic=lange" in c.estimator
    assert "variance=0.99" in nc.CCA(truncate=0.99).estimator
    assert "dims=2" in nc.cca(np.eye(5), np.eye(5), truncate=2).estimator


X = np.random.default_rng(1).standard_normal((10, 3))


@pytest.mark.parametrize("measure", [nc.Procrustes(), nc.CKA(), nc.CCA(), nc.RSA("euclidean", "pearson")],
                         ids=lambda m: m.estimator)
def test_constant_input_raises_clear_error(measure):
    with pytest.raises(nc.DegenerateInputError, match="constant"):
        measure(np.ones((10, 3)), X)


@pytest.mark.parametrize("measure", ALL_MEASURES, ids=[m.estimator for m in ALL_MEASURES])
def test_nan_input_raises(measure):
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(nc.DegenerateInputError, match="NaN"):
        measure(bad, X)


@pytest.mark.parametrize("measure", [nc.Procrustes(), nc.CKA(), nc.CCA(), nc.RSA()], ids=lambda m: m.estimator)
def test_single_condition_raises(measure):
    with pytest.raises(nc.DegenerateInputError):
        measure(X[:1], X[:1])


def test_rank_deficient_and_constant_unit_have_documented_values():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((12, 2))
    deficient = np.hstack([base, base @ rng.standard_normal((2, 3))])  # rank 2 in 5 columns
    with_constant = np.hstack([base, np.ones((12, 1))])
    # CCA works on the numerical rank: 2 canonical correlations, both 1 against the generating basis
    s = nc.cca(deficient, base)
    assert len(s.details["canonical_correlations"]) == 2 and float(s) == pytest.approx(1.0, abs=1e-10)
    # a constant unit vanishes after centring: same as dropping it
    assert float(nc.procrustes(with_constant, base)) == pytest.approx(0, abs=1e-7)
    assert float(nc.cka(with_constant, base)) == pytest.approx(1.0, abs=1e-12)


def test_in_sample_bias_warning_when_units_reach_samples():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((10, 9)), rng.standard_normal((10, 9))
    with pytest.warns(nc.InSampleBiasWarning, match="cross_validated"):
        value = float(nc.cca(x, y))
    assert value == pytest.approx(1.0, abs=1e-8)  # the documented collapse for independent data
    assert float(nc.cross_validated("cca", x, y, n_splits=2)) < 0.9


def test_bad_options_raise_value_errors():
    with pytest.raises(ValueError, match="kind"):
        nc.procrustes(X, X, kind="cosine")
    with pytest.raises(ValueError, match="alpha"):
        nc.procrustes(X, X, alpha=2)
    with pytest.raises(ValueError, match="truncate"):
        nc.cca(X, X, truncate=1.5)
    with pytest.raises(ValueError, match="unknown measure"):
        nc.get_measure("netrep")
    with pytest.raises(TypeError, match="fits nothing"):
        nc.cross_validated("cka", X, X)
    with pytest.raises(nc.DegenerateInputError, match="crossnobis"):
        nc.rsa(X, X, rdm="crossnobis")
