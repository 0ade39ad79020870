"""Bootstrap intervals (BCa), noise-corrected estimators, deterministic parallel replicates, sessions."""
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

import neurokpflow.compare as nc
from neurokpflow import viz
from neurokpflow.compare.simulate import simulate_pair
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def test_bca_interval_equals_scipy_bootstrap_on_the_same_replicates():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 6))
    y = x @ rng.standard_normal((6, 4)) + rng.standard_normal((12, 4))
    boot = _quiet(nc.bootstrap, "cka", x, y, over="conditions", n_boot=300, seed=1)
    a, b = nc.align(x, y)
    m = nc.get_measure("cka")

    def statistic(idx):
        return float(m.score(a.take_conditions(idx.astype(int)), b.take_conditions(idx.astype(int))))

    ref = scipy.stats.bootstrap((np.arange(12),), statistic, n_resamples=0, method="BCa", vectorized=False,
                                bootstrap_result=SimpleNamespace(bootstrap_distribution=boot.samples))
    assert boot.method == "bca"
    assert boot.low == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert boot.high == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert boot.bias == pytest.approx(boot.samples.mean() - boot.estimate)
    assert boot.se == pytest.approx(boot.samples.std(ddof=1))
    assert boot.bias_corrected == pytest.approx(2 * boot.estimate - boot.samples.mean())


def test_noise_corrected_intervals_cover_the_noise_free_truth():
    """Reduced coverage check (the full one: python -m benchmarks.bench_compare coverage). On 25 simulated data
    sets, the default interval of the noise-corrected CKA (BCa over trials) and of the noise-corrected Procrustes
    angle (bias-corrected, basic interval over trials, bias measured against the plug-in target) covers the
    noise-free truth at least 80 % of the time and always contains its estimate. The former default (percentile
    over conditions) puts the in-sample Procrustes angle outside its own interval."""
    rng = np.random.default_rng(7)
    n_sets, old_inside = 25, 0
    cover, inside = {"cka": 0, "procrustes": 0}, {"cka": 0, "procrustes": 0}
    for i in range(n_sets):
        pair = simulate_pair(rng, units=(12, 16))
        for name, m, method in (("cka", nc.CKA(cross_validated=True), "bca"),
                                ("procrustes", nc.Procrustes(cross_validated=True), "bias_corrected")):
            truth = float(nc.get_measure(name)(pair.first_means, pair.second_means))
            boot = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=60, seed=i)
            assert boot.over == "trials" and boot.method == method
            inside[name] += boot.low <= boot.estimate <= boot.high
            cover[name] += boot.low <= truth <= boot.high
        old = _quiet(nc.bootstrap, "procrustes", pair.first, pair.second, over="conditions", interval="percentile",
                     n_boot=60, seed=i)
        old_inside += old.low <= old.estimate <= old.high
    assert inside == {"cka": n_sets, "procrustes": n_sets}
    assert min(cover.values()) >= 0.8 * n_sets
    assert old_inside < n_sets / 2


def test_noise_corrected_procrustes_bootstrap_measures_its_bias_against_the_plug_in_target():
    """The noise-corrected angle is not the plain angle of the data's means, so its bootstrap bias is measured
    against the resampled population's own target (the plain angle of its condition means), and every trial is
    drawn from all of its condition's trials (independent draws keep the folds independent). Against the
    estimate itself, with (condition, fold) cells, the bias came out about twice too large."""
    pair = simulate_pair(np.random.default_rng(8), n_times=3, units=(8, 10))
    a, b = nc.align(pair.first, pair.second)
    m = nc.Procrustes(cross_validated=True)
    boot = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=2)
    reference = float(nc.procrustes(pair.first, pair.second))          # plain angle of the trial-averaged means
    assert boot.reference == pytest.approx(reference) and boot.raw_estimate == pytest.approx(float(m(a, b)))
    assert boot.bias == pytest.approx(boot.samples.mean() - reference)
    assert boot.estimate == pytest.approx(boot.raw_estimate - boot.bias)
    shifted = boot.samples + boot.raw_estimate - reference
    q_low, q_high = np.percentile(shifted, [2.5, 97.5])
    assert (boot.low, boot.high) == pytest.approx((2 * boot.raw_estimate - q_high, 2 * boot.raw_estimate - q_low))
    design = nc.stats._Design(m, [(a, b)], "trials")
    assert design.folds == 1 and nc.stats._Design(nc.CKA(cross_validated=True), [(a, b)], "trials").folds == 4
    assert len(set(design.resamplers[0][0].cell.tolist())) == a.n_conditions     # cells = conditions
    cka = _quiet(nc.bootstrap, nc.CKA(cross_validated=True), pair.first, pair.second, n_boot=20, seed=2)
    assert cka.reference is None and cka.bias == pytest.approx(cka.samples.mean() - cka.estimate)


def test_crossnobis_rsa_reports_the_bias_corrected_estimate_inside_its_interval():
    """The rank correlation of crossnobis RDMs is attenuated by the RDMs' noise (several SE below the truth), so
    every replicate can fall below the estimate and BCa is undefined. The default interval for crossnobis RSA
    reports 2 theta - mean(replicates), which lies inside the basic interval and is removes most of the attenuation."""
    rng = np.random.default_rng(11)
    errors = {"raw": [], "corrected": []}
    for i in range(6):
        pair = simulate_pair(rng, n_times=4, units=(12, 16))
        truth = float(nc.rsa(pair.first_means, pair.second_means, "sqeuclidean"))
        boot = _quiet(nc.bootstrap, nc.RSA("crossnobis"), pair.first, pair.second, n_boot=60, seed=i)
        assert boot.method == "bias_corrected" and boot.over == "trials"
        assert boot.raw_estimate == pytest.approx(float(nc.rsa(pair.first, pair.second, "crossnobis")))
        assert boot.estimate == pytest.approx(2 * boot.raw_estimate - boot.samples.mean())
        assert boot.bias_corrected == boot.estimate
        q_low, q_high = np.percentile(boot.samples, [2.5, 97.5])
        assert (boot.low, boot.high) == pytest.approx((2 * boot.raw_estimate - q_high, 2 * boot.raw_estimate - q_low))
        assert boot.low <= boot.estimate <= boot.high
        errors["raw"].append(boot.raw_estimate - truth)
        errors["corrected"].append(boot.estimate - truth)
    assert all(e < 0 for e in errors["raw"])                     # attenuated every time
    assert abs(np.mean(errors["corrected"])) < 0.5 * abs(np.mean(errors["raw"]))


def test_compare_gives_crossnobis_rsa_its_bias_corrected_estimate_inside_the_plotted_interval():
    pair = simulate_pair(np.random.default_rng(12), n_times=3, units=(8, 10))
    ds = _quiet(nc.compare, pair.first, pair.second, measures=[nc.RSA("crossnobis"), nc.CKA(cross_validated=True)],
                stats=["bootstrap"], n_boot=30)
    low, high, point = (ds[v].values for v in ("ci_low", "ci_high", "ci_estimate"))
    assert np.all((low <= point) & (point <= high))
    assert point[0] != ds["score"].values[0] and point[1] == ds["score"].values[1]
    assert list(ds["ci_method"].values) == ["bias_corrected over trials", "bca over trials"]
    viz.plot_comparison(ds)          # no negative error bar: the bar is drawn around ci_estimate


def test_trial_jackknife_acceleration_masks_one_trial_and_reduces_to_efrons_formula():
    """Leaving trial j out masks it (NaN): only its own (condition, fold) cell mean changes, every other trial
    keeps its fold (deleting it would shift the folds of the later trials). With one stratum the multi-sample
    acceleration is Efron's sum d^3 / (6 (sum d^2)^1.5) of the jackknife values."""
    from neurokpflow.compare._inputs import fold_means

    pair = simulate_pair(np.random.default_rng(13), n_times=2, units=(4, 5))
    a, b = nc.align(pair.first, pair.second)
    design = nc.stats._Design(nc.CKA(cross_validated=True), [(a, b)], "trials")
    cell = design.resamplers[0][0].cell
    j = 21
    masked = a.trials.clone()
    masked[j] = float("nan")
    before, after = fold_means(a, 4), fold_means(a.with_trials(masked, a.trial_condition), 4)
    changed = (before != after).any(-1).reshape(4, a.n_conditions, a.n_times).any(-1)      # (fold, condition)
    condition, fold = divmod(int(cell[j]), 4)
    assert changed.sum() == 1 and changed[fold, condition]
    values = np.random.default_rng(0).standard_normal(7)
    d = values.mean() - values
    efron = np.sum(d ** 3) / (6 * np.sum(d ** 2) ** 1.5)
    assert nc.stats._stratified_acceleration([6 * d]) == pytest.approx(efron)
    assert nc.stats._acceleration(values) == pytest.approx(efron)
    assert abs(design.acceleration()) < 0.5


@pytest.mark.parametrize("units", [5, 40])   # feature-space and sample-space forms of the cross-fold products
def test_noise_corrected_estimators_equal_plain_ones_without_noise_and_accept_a_deterministic_model(units):
    rng = np.random.default_rng(1)
    means = rng.standard_normal((6, 3, units))
    other = means @ rng.standard_normal((units, 7)) + 0.3 * rng.standard_normal((6, 3, 7))
    labels = np.repeat(np.arange(6), 8)
    trials = xr.DataArray(means[labels], dims=("trial", "time", "unit"),
                          coords={"condition": ("trial", labels), "time": [0.0, 0.1, 0.2]})
    model = xr.DataArray(other, dims=("condition", "time", "unit"),
                         coords={"condition": np.arange(6), "time": [0.0, 0.1, 0.2]})
    for plain, corrected in ((nc.CKA(), nc.CKA(cross_validated=True)),
                             (nc.Procrustes(), nc.Procrustes(cross_validated=True)),
                             (nc.Procrustes("euclidean"), nc.Procrustes("euclidean", cross_validated=True))):
        assert float(corrected(model, trials)) == pytest.approx(float(plain(model, trials)), abs=1e-9)
        assert "noise=cv4" in corrected.estimator and corrected.metric is False
    with pytest.raises(nc.DegenerateInputError, match="trial-level data"):
        nc.cka(means, other, cross_validated=True)
    with pytest.raises(ValueError, match="linear kernel"):
        nc.CKA(kernel="rbf", cross_validated=True)


def test_noise_corrected_cka_removes_the_trial_noise_bias_on_average():
    rng = np.random.default_rng(2)
    plain, corrected, truth = [], [], []
    for _ in range(20):
        pair = simulate_pair(rng, noise=2.0)
        truth.append(float(nc.cka(pair.first_means, pair.second_means)))
        plain.append(float(nc.cka(pair.first, pair.second)))
        corrected.append(float(nc.cka(pair.first, pair.second, cross_validated=True)))
    bias_plain, bias_corrected = np.mean(plain) - np.mean(truth), np.mean(corrected) - np.mean(truth)
    assert bias_plain < -0.05 and abs(bias_corrected) < abs(bias_plain) / 3


def test_same_seed_same_numbers_at_every_n_jobs():
    pair = simulate_pair(np.random.default_rng(3))
    m = nc.CKA(cross_validated=True)
    serial = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=5, n_jobs=1)
    threads = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=5, n_jobs=2)
    threads = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=5, n_jobs=2, backend="threads")
    processes = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=5, n_jobs=2, backend="processes")
    auto = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=5, n_jobs=2)
    for other in (threads, processes, auto):
        assert np.array_equal(serial.samples, other.samples)
        assert (serial.low, serial.high) == (other.low, other.high)
    other_seed = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=40, seed=6)
    assert not np.array_equal(serial.samples, other_seed.samples)
    perm = [nc.permutation_test("cka", pair.first, pair.second, n_perm=30, seed=1, n_jobs=j).null for j in (1, 2)]
    assert np.array_equal(*perm)
    ceiling = [float(nc.noise_ceiling("cka", pair.first, n_splits=6, seed=2, n_jobs=j)) for j in (1, 2)]
    assert ceiling[0] == ceiling[1]


def test_process_pool_reloads_each_calls_data_and_leaves_no_file(monkeypatch, tmp_path):
    """The warm pool caches a call's data in its workers; the next call (other data, other measure) must not
    reuse it, and the shared file holding it is removed. "auto" picks processes above the work threshold and
    threads below it, with the same numbers."""
    from neurokpflow.compare import _replicates

    monkeypatch.setattr(_replicates, "_shared_dir", lambda: str(tmp_path))
    pair = simulate_pair(np.random.default_rng(4), n_times=3)
    for m in (nc.CKA(cross_validated=True), nc.Procrustes(cross_validated=True)):
        serial = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=12, seed=1)
        parallel = _quiet(nc.bootstrap, m, pair.first, pair.second, n_boot=12, seed=1, n_jobs=2, backend="processes")
        assert np.array_equal(serial.samples, parallel.samples)
    assert list(tmp_path.iterdir()) == []
    chosen = []
    original = _replicates.choose_backend
    monkeypatch.setattr(_replicates, "choose_backend", lambda *a: chosen.append(original(*a)) or chosen[-1])
    serial = _quiet(nc.bootstrap, "cka", pair.first, pair.second, over="trials", n_boot=12, seed=1)
    for threshold, backend in ((0.0, "processes"), (float("inf"), "threads")):
        monkeypatch.setattr(_replicates, "PROCESS_MIN_SECONDS", {False: threshold, True: threshold})
        chosen.clear()
        auto = _quiet(nc.bootstrap, "cka", pair.first, pair.second, over="trials", n_boot=12, seed=1, n_jobs=2)
        assert np.array_equal(auto.samples, serial.samples) and (auto.low, auto.high) == (serial.low, serial.high)
        assert chosen == [backend, backend]             # the replicates, then the jackknife of the acceleration


def test_permutation_p_value_counts_the_observed_labelling():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 3))
    result = nc.permutation_test("cka", x, y, n_perm=50, seed=0)
    k = np.sum(result.null >= result.observed - 1e-12)
    assert result.p_value == pytest.approx((k + 1) / (len(result.null) + 1))


def test_biased_bootstrap_warns_and_names_the_bias_corrected_estimate():
    """In-sample Procrustes with conditions resampled: duplicates lower the fitted distance, the bias is
    many SEs, and the warning names the corrected value."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8, 20))
    y = x[:, :12] + rng.standard_normal((8, 12))
    with pytest.warns(nc.BootstrapBiasWarning, match="bias-corrected estimate"):
        boot = nc.bootstrap("procrustes", x, y, over="conditions", n_boot=100)
    assert boot.bias < 0 and abs(boot.bias) > nc.stats.BIAS_WARNING_FRACTION * boot.se


def test_hierarchical_and_fold_aware_trial_resampling():
    pair = simulate_pair(np.random.default_rng(6), n_times=2)
    both = _quiet(nc.bootstrap, "cka", pair.first, pair.second, over="both", n_boot=30)
    assert both.over == "both" and both.low <= both.high
    with pytest.raises(nc.DegenerateInputError, match="multi-session"):
        nc.bootstrap("cka", pair.first, pair.second, over="sessions", n_boot=10)
    # trials drawn for a fold-based estimator stay in their fold: trial k of a condition keeps k % n_folds
    a, _ = nc.align(pair.first, pair.second)
    picked, cell = nc.stats._trial_draw_index(a, np.random.default_rng(0), 4)
    position = {i: k for c in range(a.n_conditions) for k, i in enumerate(np.flatnonzero(a.trial_condition == c))}
    assert all(a.trial_condition[s] == a.trial_condition[i] and position[s] % 4 == position[i] % 4
               for i, s in enumerate(picked))
    assert len(set(cell.tolist())) == 4 * a.n_conditions


def test_trial_resampling_gives_cell_means_the_unbiased_variance():
    """Plain resampling of n trials gives a cell mean the bootstrap variance (n-1)/n s^2/n (25 % short
    at 4 trials per (condition, fold) cell); the modified residuals make it s^2/n and keep the mean."""
    pair = simulate_pair(np.random.default_rng(3), n_conditions=2, n_times=1, units=(3, 3))
    a, _ = nc.align(pair.first, pair.second)
    folds = 4
    rng = np.random.default_rng(0)
    draws = torch.stack([nc.stats._trial_draw(a, rng, folds).trials for _ in range(2000)])   # (draw, trial, ...)
    _, cell = nc.stats._trial_draw_index(a, rng, folds)
    for c in np.unique(cell):
        members = np.flatnonzero(cell == c)
        n = len(members)
        means = draws[:, members].mean(1)
        s2 = a.trials[members].var(0, unbiased=True)
        assert torch.allclose(means.mean(0), a.trials[members].mean(0), atol=6 * float(s2.max() / n) ** 0.5 / 60)
        ratio = (means.var(0) / (s2 / n)).mean()        # 3 x 1 entries, each within ~10 % of 1 (2000 draws)
        assert abs(float(ratio) - 1.0) < 0.1, float(ratio)


def _session(rng, n_units, n_trials=6, conditions=("left", "right", "up", "down")):
    """One session as read_nwb returns it: spike_count (trial, time, unit), valid (trial, time), per-trial condition."""
    latent = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])[:, None, :] * np.linspace(0.5, 1.5, 5)[None, :, None]
    rates = latent @ rng.standard_normal((2, n_units))
    labels = np.repeat(np.arange(len(conditions)), n_trials)
    counts = rates[labels] + 0.3 * rng.standard_normal((len(labels), 5, n_units))
    return xr.Dataset({"spike_count": (("trial", "time", "unit"), counts),
                       "valid": (("trial", "time"), np.ones((len(labels), 5), bool))},
                      coords={"trial": np.arange(len(labels)), "time": 0.05 + 0.1 * np.arange(5),
                              "unit": np.arange(n_units), "condition": ("trial", np.array(conditions)[labels])})


def _sessions():
    rng = np.random.default_rng(8)
    parts = {"s1": _session(rng, 5), "s2": _session(rng, 7), "s3": _session(rng, 4)}
    model = _session(rng, 6)["spike_count"].groupby("condition").mean("trial")
    return model, parts


def test_multi_session_datatree_gives_per_session_scores_and_a_session_bootstrap():
    model, parts = _sessions()
    tree = xr.DataTree.from_dict({name: ds for name, ds in parts.items()})
    options = nc.StatsOptions(n_boot=30, n_perm=10)
    ds = _quiet(nc.compare, model, tree, measures=["cka"], stats=["bootstrap", "permutation"], var="spike_count",
                options=options)
    singles = [float(nc.cka(model, parts[s], var="spike_count")) for s in ("s1", "s2", "s3")]
    assert list(ds["session"].values) == ["s1", "s2", "s3"]
    np.testing.assert_allclose(ds["session_score"].sel(measure=ds.measure[0]).values, singles, atol=1e-12)
    assert float(ds["score"][0]) == pytest.approx(np.mean(singles))
    assert "over sessions" in str(ds["ci_method"].values[0])
    boot = _quiet(nc.bootstrap, "cka", model, tree, n_boot=30, var="spike_count")
    assert boot.over == "sessions" and boot.session_estimates.shape == (3,)
    assert boot.low <= boot.estimate <= boot.high


def test_session_dimension_is_read_like_a_datatree_and_pseudo_population_is_a_plain_input():
    model, parts = _sessions()
    stacked = xr.concat([p["spike_count"] for p in parts.values()], dim="session", join="outer")
    stacked = stacked.assign_coords(session=list(parts))
    per_session = _quiet(nc.compare, model, stacked, measures=["cka"], stats=[])
    tree = xr.DataTree.from_dict(dict(parts))
    np.testing.assert_allclose(per_session["session_score"].values,
                               _quiet(nc.compare, model, tree, measures=["cka"], stats=[],
                                      var="spike_count")["session_score"].values, atol=1e-12)
    pseudo = xr.concat([p["spike_count"].groupby("condition").mean("trial").assign_coords(unit=np.arange(p.sizes["unit"]) + 10 * k)
                        for k, p in enumerate(parts.values())], dim="unit")
    pseudo = pseudo.assign_coords(unit_session=("unit", np.repeat(list(parts), [p.sizes["unit"] for p in parts.values()])))
    score = nc.cka(model, pseudo)
    assert 0 < float(score) <= 1 and pseudo.sizes["unit"] == 16


def test_stats_options_validate_and_legacy_keywords_override():
    with pytest.raises(ValueError, match="interval"):
        nc.StatsOptions(interval="normal")
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((10, 4)), rng.standard_normal((10, 3))
    a = _quiet(nc.compare, x, y, measures=["cka"], stats=["bootstrap"], options=nc.StatsOptions(n_boot=20, seed=3))
    b = _quiet(nc.compare, x, y, measures=["cka"], stats=["bootstrap"], n_boot=20, seed=3)
    c = _quiet(nc.compare, x, y, measures=["cka"], stats=["bootstrap"],
               options=nc.StatsOptions(n_boot=20, seed=3, n_jobs=2))
    assert float(a["ci_low"][0]) == float(b["ci_low"][0]) == float(c["ci_low"][0])
