"""Two-sided invariance tests generated from each measure's declared ``invariances`` table, and
metric axioms for the measures declared metric."""
import numpy as np
import pytest

import neurokpflow.compare as nc
from neurokpflow.errors import InputError
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)

N_COND, N_TRIALS, N_UNITS = 24, 3, 6
RNG = np.random.default_rng(0)
LABELS = np.repeat(np.arange(N_COND), N_TRIALS)
# decaying spectrum so truncated (SVCCA) measures see a non-trivial PCA
SIGNAL = RNG.standard_normal((N_COND, N_UNITS)) @ np.diag(np.linspace(3, 0.3, N_UNITS))
TRIALS_X = (SIGNAL[LABELS] + 0.3 * RNG.standard_normal((len(LABELS), N_UNITS)))[:, None, :]
OTHER = RNG.standard_normal((N_UNITS, N_UNITS)) + 2 * np.eye(N_UNITS)
TRIALS_Y = (SIGNAL[LABELS] @ OTHER + 0.5 * RNG.standard_normal((len(LABELS), N_UNITS)))[:, None, :]

ORTH, _ = np.linalg.qr(RNG.standard_normal((N_UNITS, N_UNITS)))
LINEAR = RNG.standard_normal((N_UNITS, N_UNITS)) + 0.5 * np.eye(N_UNITS)
TRANSFORM_FUNCS = {
    "rotation": lambda x: x @ ORTH,
    "permutation": lambda x: x[..., ::-1],
    "isotropic_scale": lambda x: 3.7 * x,
    "translation": lambda x: x + np.linspace(-2, 5, N_UNITS),
    "invertible_linear": lambda x: x @ LINEAR,
    "anisotropic_scale": lambda x: x * np.linspace(0.3, 3, N_UNITS),
}
assert set(TRANSFORM_FUNCS) == set(nc.TRANSFORMS)

# every registered measure defined on single time bins (a new registry entry is tested automatically),
# plus variants the registry does not name
REGISTERED = [entry() for entry in nc.MEASURES.values() if entry.capabilities["per_time_bin"]]
VARIANTS = [
    nc.Procrustes("angular"), nc.Procrustes("euclidean"), nc.Procrustes("angular", alpha=0.5),
    nc.Procrustes("angular", alpha=0.0), nc.CCA(), nc.CCA(output="angular"), nc.CCA(truncate=3),
    nc.CKA(), nc.CKA(output="angular"), nc.CKA(debiased=True), nc.CKA(debiased=True, hsic="lange"),
    nc.CKA(kernel="rbf", sigma=2.0), nc.CKA(kernel="rbf"),
    nc.RSA("euclidean", "spearman"), nc.RSA("euclidean", "kendall_tau_a"), nc.RSA("euclidean", "pearson"),
    nc.RSA("sqeuclidean", "cosine"), nc.RSA("correlation", "pearson"), nc.RSA("crossnobis", "pearson"),
    nc.Predictivity(n_splits=4),
]
MEASURES = list({m.estimator: m for m in REGISTERED + VARIANTS}.values())
CASES = [(m, t, inv) for m in MEASURES for t, inv in m.invariances.items()]


def score(m, x, y):
    return float(m(x, y, condition=LABELS))


@pytest.mark.parametrize("measure, transform, invariant", CASES,
                         ids=[f"{m.estimator}-{t}-{'inv' if i else 'not'}" for m, t, i in CASES])
def test_invariance_table(measure, transform, invariant):
    t = TRANSFORM_FUNCS[transform]
    base, moved = score(measure, TRIALS_X, TRIALS_Y), score(measure, t(TRIALS_X), TRIALS_Y)
    if invariant:
        assert moved == pytest.approx(base, abs=1e-7)
        if measure.symmetric:
            assert score(measure, TRIALS_X, t(TRIALS_X)) == pytest.approx(
                score(measure, TRIALS_X, TRIALS_X), abs=1e-6)
    else:
        assert abs(moved - base) > 1e-4


def test_every_measure_declares_both_directions_somewhere():
    declared = {t for m in MEASURES for t, inv in m.invariances.items() if not inv}
    assert declared == set(nc.TRANSFORMS) - {"permutation"}


OPERATOR = np.random.default_rng(5).standard_normal((4, 4))
_Q, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((4, 4)))
_Q[:, 0] *= -1  # det = -1 is part of the group
_S = np.random.default_rng(7).standard_normal((4, 4)) + np.eye(4)
OPERATOR_TRANSFORMS = {
    "rotation": lambda a: _Q @ a @ _Q.T,
    "permutation": lambda a: a[::-1, ::-1],
    "isotropic_scale": lambda a: 2.5 * a,
    "invertible_linear": lambda a: _S @ a @ np.linalg.inv(_S),
}
DSA_MEASURES = [nc.DSA("pavf", "angular"), nc.DSA("pavf", "euclidean"), nc.DSA("eigenvalues")]
DSA_CASES = [(m, t, inv) for m in DSA_MEASURES for t, inv in m.invariances.items()]


@pytest.mark.parametrize("measure, transform, invariant", DSA_CASES,
                         ids=[f"{m.estimator}-{t}" for m, t, _ in DSA_CASES])
def test_dsa_operator_invariance_table(measure, transform, invariant):
    d = nc.compare_operators(OPERATOR, OPERATOR_TRANSFORMS[transform](OPERATOR), measure.comparison, measure.kind)
    assert (d < 1e-6) if invariant else (d > 1e-3)


def test_dsa_on_rotated_recording_is_zero():
    rng = np.random.default_rng(8)
    traj = np.cumsum(rng.standard_normal((3, 30, 4)), axis=1)
    assert float(nc.dsa(traj, traj @ _Q)) == pytest.approx(0.0, abs=1e-6)


METRIC_MEASURES = [m for m in MEASURES if m.metric]


@pytest.mark.parametrize("measure", METRIC_MEASURES, ids=[m.estimator for m in METRIC_MEASURES])
def test_metric_axioms(measure):
    rng = np.random.default_rng(11)
    reps = [rng.standard_normal((20, k)) for k in (3, 4, 5, 4)]
    d = np.array([[float(measure(a, b)) for b in reps] for a in reps])
    np.testing.assert_allclose(d, d.T, atol=1e-8)
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-6)
    for i in range(4):
        for j in range(4):
            for k in range(4):
                assert d[i, j] <= d[i, k] + d[k, j] + 1e-9


def test_one_minus_cka_is_not_declared_metric_and_can_break_triangle():
    # squared Procrustes Euclidean distance violates the triangle inequality on collinear points
    x = np.array([[0.0], [1.0], [2.0]]) * np.array([[1.0, 0.0]]) + np.array([[0, 0], [0, 0], [0, 1.0]])
    a, b, c = x, 2 * x, 3 * x
    sq = lambda p, q: float(nc.procrustes(p, q, "euclidean")) ** 2  # noqa: E731
    assert sq(a, c) > sq(a, b) + sq(b, c)
    assert not nc.CKA().metric and nc.CKA(output="angular").metric


def test_zero_padding_and_sample_order():
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((15, 3)), rng.standard_normal((15, 4))
    assert float(nc.procrustes(x, np.hstack([x, np.zeros((15, 2))]))) == pytest.approx(0, abs=1e-7)
    perm = rng.permutation(15)
    assert float(nc.procrustes(x[perm], y[perm])) == pytest.approx(float(nc.procrustes(x, y)), abs=1e-12)
    assert abs(float(nc.procrustes(x[perm], y)) - float(nc.procrustes(x, y))) > 1e-3


@pytest.mark.parametrize("name", list(nc.MEASURES))
def test_every_registered_measure_keeps_its_declared_contract(name):
    entry = nc.MEASURES[name]
    m = entry()
    assert isinstance(m, nc.Measure) and nc.get_measure(name).estimator == m.estimator
    for capability, value in entry.capabilities.items():
        assert getattr(m, capability) == value, capability
    assert "=" not in m.label and m.label == entry.description
    x = np.repeat(TRIALS_X, 8, axis=1) + 0.1 * RNG.standard_normal((len(LABELS), 8, N_UNITS))  # 8 time bins
    y = np.repeat(TRIALS_Y, 8, axis=1) + 0.1 * RNG.standard_normal((len(LABELS), 8, N_UNITS))
    value = m(x, y, condition=LABELS)
    assert np.isfinite(float(value)) and value.convention == entry.capabilities["convention"]
    if entry.capabilities["per_time_bin"]:
        assert np.isfinite(nc.time_resolved(m, x, y, condition=LABELS).values).all()
    else:
        with pytest.raises(InputError, match="per-time-bin"):
            nc.time_resolved(m, x, y, condition=LABELS)
