"""Calibration of the statistics and parity with rsatoolbox."""
import numpy as np
import pytest
import scipy.stats
import xarray as xr

import neurokpflow.compare as nc
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)


def test_debiased_cka_is_centred_on_zero_under_independence():
    rng = np.random.default_rng(0)
    n, p = 32, 8
    pairs = [(rng.standard_normal((n, p)), rng.standard_normal((n, p))) for _ in range(150)]
    biased = np.mean([float(nc.cka(x, y)) for x, y in pairs])
    song = np.mean([float(nc.cka(x, y, debiased=True)) for x, y in pairs])
    assert biased == pytest.approx(p / (n + p), abs=0.015)  # the bias the doc tabulates
    assert abs(song) < 0.01


def test_permutation_p_values_are_uniform_under_the_null():
    rng = np.random.default_rng(1)
    p_values = [nc.permutation_test("cka", rng.standard_normal((10, 3)), rng.standard_normal((10, 3)),
                                    n_perm=39, seed=s).p_value for s in range(120)]
    assert scipy.stats.kstest(p_values, "uniform").pvalue > 0.01
    assert 0.01 <= np.mean(np.asarray(p_values) <= 0.1) <= 0.22


def test_permutation_detects_a_real_effect_and_time_blocks_work():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 12, 4))
    y = x @ rng.standard_normal((4, 5)) + 0.1 * rng.standard_normal((20, 12, 5))
    assert nc.permutation_test("procrustes", x, y, n_perm=49).p_value == pytest.approx(1 / 50)
    blocks = nc.permutation_test("cka", x, y, over="time_blocks", block_length=2, n_perm=49)  # 6! orders
    assert blocks.p_value == pytest.approx(1 / 50) and len(blocks.null) == 49


@pytest.mark.parametrize("measure", ["procrustes", "shape_metric", "cca"])
def test_cross_validated_distance_not_smaller_than_in_sample_on_average(measure):
    rng = np.random.default_rng(3)
    m = nc.get_measure(measure)
    in_sample, held_out = [], []
    for _ in range(15):
        x, y = rng.standard_normal((30, 8)), rng.standard_normal((30, 8))
        in_sample.append(float(m(x, y)))
        held_out.append(float(nc.cross_validated(m, x, y, n_splits=3)))
    more_similar_in_sample = np.mean(in_sample) > np.mean(held_out) if m.convention in ("similarity", "score") \
        else np.mean(in_sample) < np.mean(held_out)
    assert more_similar_in_sample


def _noisy_trials(n_cond=20, n_time=5, n_units=30, n_trials=8, noise=2.0, seed=4):
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal((n_cond, n_time, n_units)) * np.linspace(0.3, 2.0, n_units)
    labels = np.repeat(np.arange(n_cond), n_trials)
    trials = signal[labels] + noise * rng.standard_normal((len(labels), n_time, n_units))
    da = xr.DataArray(trials, dims=("trial", "time", "unit"),
                      coords={"time": np.arange(n_time) * 0.1, "target": ("trial", labels)})
    flat = signal.reshape(-1, n_units)
    truth = flat.var(0) / (flat.var(0) + noise ** 2 / n_trials)
    return signal, da, truth


def test_noise_ceiling_recovers_known_reliability():
    _, da, truth = _noisy_trials()
    estimate = nc.split_half_reliability(da, condition="target", n_splits=20)
    assert np.median(estimate) == pytest.approx(np.median(truth), abs=0.05)
    assert np.corrcoef(estimate, truth)[0, 1] > 0.5


def test_ceiling_normalised_predictivity_of_the_true_signal_is_about_one():
    signal, da, _ = _noisy_trials(n_cond=40, n_units=10)
    model = xr.DataArray(signal @ np.random.default_rng(5).standard_normal((10, 10)), dims=("condition", "time", "unit"),
                         coords={"condition": np.arange(40), "time": np.arange(5) * 0.1})
    score = nc.predictivity(model, da, ceiling="split_half", condition=(None, "target"))
    assert score.details["r"] < 0.95
    assert float(score) == pytest.approx(1.0, abs=0.1)


def test_measure_noise_ceiling_conventions():
    _, da, _ = _noisy_trials(noise=0.5)
    sim = nc.noise_ceiling("cka", da, condition="target", n_splits=4)
    ang = nc.noise_ceiling("procrustes", da, condition="target", n_splits=4)
    dist = nc.noise_ceiling("procrustes_euclidean", da, condition="target", n_splits=4)
    assert sim.value == pytest.approx(nc.spearman_brown(sim.split_half))
    assert ang.value == pytest.approx(np.arccos(nc.spearman_brown(np.cos(ang.split_half))))
    assert dist.value == pytest.approx(dist.split_half / np.sqrt(2))
    assert sim.value > sim.split_half and ang.value < ang.split_half


def test_bootstrap_intervals_over_conditions_and_trials():
    signal, da, _ = _noisy_trials(n_cond=12, n_units=6, noise=1.0)
    model = xr.DataArray(signal, dims=("condition", "time", "unit"),
                         coords={"condition": np.arange(12), "time": np.arange(5) * 0.1})
    for over in ("conditions", "trials", "both"):
        boot = nc.bootstrap("cka", model, da, over=over, n_boot=40, condition=(None, "target"))
        assert boot.low <= boot.high and len(boot.samples) == 40
        assert boot.low - 0.05 <= boot.estimate <= boot.high + 0.05
    with pytest.raises(nc.DegenerateInputError, match="trial-level"):
        nc.bootstrap("cka", signal, signal, over="trials", n_boot=5)


def test_parity_with_rsatoolbox():
    rsd = pytest.importorskip("rsatoolbox.data")
    rsr = pytest.importorskip("rsatoolbox.rdm")
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((9, 5)), rng.standard_normal((9, 7))
    rdms = [rsr.calc_rdm(rsd.Dataset(v), method="euclidean") for v in (x, y)]
    cosine_cov = rsr.compare(rdms[0], rdms[1], method="cosine_cov")[0, 0]
    assert float(nc.cka(x, y)) == pytest.approx(cosine_cov, abs=1e-10)
    spearman = rsr.compare(rdms[0], rdms[1], method="spearman")[0, 0]
    assert float(nc.rsa(x, y, "sqeuclidean", "spearman")) == pytest.approx(spearman, abs=1e-10)
    np.testing.assert_allclose(nc.rdm_vector(nc.as_representation(x), "sqeuclidean"),
                               rdms[0].get_vectors()[0], atol=1e-12)
    corr = rsr.compare(rdms[0], rdms[1], method="corr")[0, 0]
    assert float(nc.rsa(x, y, "sqeuclidean", "pearson")) == pytest.approx(corr, abs=1e-10)


def test_crossnobis_is_unbiased_on_average():
    rng = np.random.default_rng(7)
    patterns = rng.standard_normal((5, 10))
    labels = np.repeat(np.arange(5), 4)
    truth = nc.rdm_vector(nc.as_representation(patterns), "sqeuclidean")
    estimates = [nc.rdm_vector(nc.as_representation((patterns[labels] + rng.standard_normal((20, 10)))[:, None, :],
                                                    condition=labels), "crossnobis") for _ in range(300)]
    np.testing.assert_allclose(np.mean(estimates, 0), truth, atol=0.1)
    assert np.min(estimates) < np.min(truth)  # single estimates scatter (and can go below the truth)
