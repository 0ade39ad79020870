"""Closed-form reference values (comparison doc, sections 5-7) to 1e-9."""
import numpy as np
import pytest

import neurokpflow.compare as nc
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)

CROSS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
STRETCHED = CROSS @ np.diag([1.0, 2.0])


@pytest.mark.parametrize("call, expected", [
    (lambda: nc.procrustes(CROSS, STRETCHED), np.arccos(3 / np.sqrt(10))),
    (lambda: nc.procrustes(CROSS, STRETCHED, "euclidean"), np.sqrt(2)),
    (lambda: nc.procrustes(CROSS, STRETCHED, alpha=0.0), 0.0),
    (lambda: nc.procrustes(CROSS, STRETCHED, "euclidean", alpha=0.0), np.sqrt(10) - 2),
    (lambda: nc.procrustes(CROSS, STRETCHED, alpha=0.5), 0.2227806270),
    (lambda: nc.procrustes(CROSS, STRETCHED, "euclidean", alpha=0.5), 1.2897629914),
    (lambda: nc.cca(CROSS, STRETCHED), 1.0),
    (lambda: nc.cca(CROSS, STRETCHED, output="angular"), 0.0),
    (lambda: nc.cka(CROSS, STRETCHED), 20 / np.sqrt(544)),
    (lambda: nc.cka(CROSS, STRETCHED, output="angular"), 0.5404195003),
    (lambda: nc.rsa(CROSS, STRETCHED, "euclidean", "spearman"), 0.0),
    (lambda: nc.rsa(CROSS, STRETCHED, "euclidean", "kendall_tau_a"), 0.0),
    (lambda: nc.rsa(CROSS, STRETCHED, "euclidean", "pearson"), 0.5292347596),
    (lambda: nc.rsa(CROSS, STRETCHED, "sqeuclidean", "pearson"), 0.5625439505),
    (lambda: nc.rsa(CROSS, STRETCHED, "sqeuclidean", "cosine"), 0.8980265101),
])
def test_cross_example(call, expected):
    assert float(call()) == pytest.approx(expected, abs=1e-9)


def test_cross_example_rdm_vectors():
    iu = np.triu_indices(4, 1)
    np.testing.assert_allclose(nc.rdm(CROSS, "sqeuclidean")[iu], [2, 1, 1, 1, 1, 2], atol=1e-12)
    np.testing.assert_allclose(nc.rdm(STRETCHED, "sqeuclidean")[iu], [2, 2.5, 2.5, 2.5, 2.5, 8], atol=1e-12)


def test_principal_angles_example_uncentred():
    theta = np.pi / 3
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, np.cos(theta)], [0.0, np.sin(theta)]])
    assert float(nc.procrustes(x, y, center=False)) == pytest.approx(0.7227342478, abs=1e-9)
    # centring changes the answer: the example is deliberately uncentred
    assert abs(float(nc.procrustes(x, y)) - 0.7227342478) > 1e-3


def test_scipy_procrustes_disparity_identity():
    from scipy.spatial import procrustes as scipy_procrustes

    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((20, 4)), rng.standard_normal((20, 4))
    disparity = scipy_procrustes(x, y)[2]
    assert np.cos(float(nc.procrustes(x, y))) ** 2 == pytest.approx(1 - disparity, abs=1e-10)


def test_statistics_reference_values():
    assert nc.spearman_brown(0.6, 2) == pytest.approx(0.75, abs=1e-12)
    # Brain-Score ceiling normalisation (r / c)^2 with r = 0.5, c = 0.8
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 5))
    score = nc.predictivity(x, x @ rng.standard_normal((5, 3)) + rng.standard_normal((40, 3)), ceiling=0.8)
    assert float(score) == pytest.approx(np.sign(score.details["r"]) * (score.details["r"] / 0.8) ** 2, abs=1e-12)
    assert (0.5 / 0.8) ** 2 == pytest.approx(0.390625)


def test_crossnobis_identical_runs_equals_squared_euclidean():
    trials = np.repeat(CROSS[:, None, :], 2, axis=0)  # each condition twice, identical
    labels = np.repeat(np.arange(4), 2)
    rep = nc.as_representation(trials, condition=labels)
    np.testing.assert_allclose(nc.rdm_vector(rep, "crossnobis"), [2, 1, 1, 1, 1, 2], atol=1e-12)


def test_eigenvalue_distance_is_w2_not_squared():
    a, b = np.diag([1.0, 2.0]), np.diag([1.0, 4.0])
    # optimal matching 1-1, 2-4: mean squared cost 2 -> W2 = sqrt(2) (W2^2 would be 2)
    assert nc.compare_operators(a, b, "eigenvalues") == pytest.approx(np.sqrt(2), abs=1e-12)


def test_dmd_recovers_operator_to_machine_precision():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    a /= 1.05 * np.abs(np.linalg.eigvals(a)).max()
    x = np.zeros((3, 25, 4))
    x[:, 0] = rng.standard_normal((3, 4))
    for t in range(24):
        x[:, t + 1] = x[:, t] @ a.T
    np.testing.assert_allclose(nc.fit_operator(x).numpy(), a, atol=1e-10)


def test_pavf_and_spectrum_differ_on_non_normal_vs_normal():
    normal, non_normal = np.diag([0.5, 0.9]), np.array([[0.5, 3.0], [0.0, 0.9]])
    assert nc.compare_operators(normal, non_normal, "eigenvalues") == pytest.approx(0.0, abs=1e-12)
    assert nc.compare_operators(normal, non_normal, "pavf") > 0.1


def test_nbs_duality():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((15, 3)), rng.standard_normal((15, 5))
    xc, yc = x - x.mean(0), y - y.mean(0)
    kx, ky = xc @ xc.T, yc @ yc.T
    w, v = np.linalg.eigh(kx)
    root = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ ky @ root)
    nbs = np.sum(np.sqrt(np.clip(inner, 0, None))) / np.sqrt(np.trace(kx) * np.trace(ky))
    assert float(nc.procrustes(x, y)) == pytest.approx(np.arccos(nbs), abs=1e-7)
