"""Preprocessing: closed forms, invariances, coordinate preservation, no input mutation."""
import numpy as np
import pytest
import xarray as xr

from neurokpflow.data import (
    counts_to_rates,
    crop_epoch,
    pca_project,
    smooth,
    soft_normalize,
    split_halves,
    trial_average,
)

N_TRIALS, N_TIME, N_UNITS, DT = 12, 50, 4, 0.01


@pytest.fixture()
def counts():
    rng = np.random.default_rng(0)
    time = (np.arange(N_TIME) + 0.5) * DT
    data = rng.poisson(2.0, (N_TRIALS, N_TIME, N_UNITS)).astype(np.float32)
    data[0, 40:] = np.nan  # a ragged trial
    return xr.DataArray(
        data,
        dims=("trial", "time", "unit"),
        coords={
            "trial": np.arange(N_TRIALS),
            "time": ("time", time, {"units": "s"}),
            "unit": [10, 11, 12, 13],
            "unit_area": ("unit", ["M1", "M1", "PMd", "PMd"]),
            "condition": ("trial", np.arange(N_TRIALS) % 3),
            "task": ("trial", np.where(np.arange(N_TRIALS) < 6, "MemoryPro", "DelayAnti")),
            "align_time": ("trial", 10.0 * np.arange(N_TRIALS)),
            "go_cue_time": ("trial", 10.0 * np.arange(N_TRIALS) + 0.2),
        },
        name="spike_count",
        attrs={"units": "1", "history": "loaded"},
    )


def test_smooth_preserves_constants_and_nan_and_coords(counts):
    before = counts.copy(deep=True)
    flat = xr.full_like(counts, 3.0).where(~np.isnan(counts))
    out = smooth(flat, 0.02)
    np.testing.assert_allclose(out.values[np.isfinite(flat.values)], 3.0)  # renormalised at edges and NaN
    np.testing.assert_array_equal(np.isnan(out.values), np.isnan(flat.values))
    smoothed = smooth(counts, 0.02)
    assert smoothed.attrs["smoothing_sd_s"] == 0.02 and "gaussian" in smoothed.attrs["history"]
    assert smoothed.coords.keys() == counts.coords.keys()
    xr.testing.assert_identical(counts, before)


def test_smooth_is_the_gaussian_kernel_away_from_edges(counts):
    impulse = xr.zeros_like(counts.isel(trial=[1], unit=[0]), dtype=float)
    impulse[0, 25, 0] = 1.0
    out = smooth(impulse, 0.03).squeeze().values
    t = (np.arange(N_TIME) - 25) * DT
    kernel = np.exp(-0.5 * (t / 0.03) ** 2)
    np.testing.assert_allclose(out, kernel / kernel.sum(), atol=1e-4)
    assert out.sum() == pytest.approx(1.0)


def test_smooth_rejects_bad_sigma_and_irregular_time(counts):
    with pytest.raises(ValueError, match="sigma"):
        smooth(counts, 0.0)
    irregular = counts.assign_coords(time=np.r_[0.0, np.cumsum(np.linspace(0.01, 0.02, N_TIME - 1))])
    with pytest.raises(ValueError, match="not regularly spaced"):
        smooth(irregular, 0.02)
    with pytest.raises(ValueError, match="dims"):
        smooth(counts, 0.02, dim="bins")


def test_counts_to_rates(counts):
    rates = counts_to_rates(counts)
    np.testing.assert_allclose(rates.values, counts.values / DT)
    assert rates.attrs["units"] == "Hz" and rates.name == "firing_rate"
    np.testing.assert_allclose(counts_to_rates(counts, bin_size=0.5).values, counts.values * 2)


def test_soft_normalize_closed_form(counts):
    rates = counts_to_rates(counts)
    out = soft_normalize(rates, softening=5.0)
    span = rates.max(["trial", "time"]) - rates.min(["trial", "time"])
    np.testing.assert_allclose(out.values, (rates / (span + 5.0)).values)
    unsoftened = soft_normalize(rates, softening=0.0)
    np.testing.assert_allclose(unsoftened.max(["trial", "time"]) - unsoftened.min(["trial", "time"]), 1.0)
    assert out.unit_area.values.tolist() == ["M1", "M1", "PMd", "PMd"]


def test_trial_average_groups_and_counts(counts):
    avg = trial_average(counts, "condition")
    assert avg.dims == ("condition", "time", "unit") and avg.n_trials.values.tolist() == [4, 4, 4]
    expected = np.nanmean(counts.values[counts.condition.values == 0], axis=0)  # trial 0 ragged: NaN skipped
    np.testing.assert_allclose(avg.sel(condition=0).values, expected, rtol=1e-6)
    assert "unit_area" in avg.coords and "task" not in avg.coords
    by_task = trial_average(counts, "task")
    assert set(by_task.task.values) == {"MemoryPro", "DelayAnti"}
    with pytest.raises(ValueError, match="per-trial coordinates"):
        trial_average(counts, "target")


def test_split_halves_disjoint_complete_stratified_and_seeded(counts):
    first, second = split_halves(counts, seed=4, by="condition")
    assert sorted(np.r_[first.trial.values, second.trial.values].tolist()) == list(range(N_TRIALS))
    assert set(first.trial.values).isdisjoint(second.trial.values)
    for half in (first, second):
        assert np.bincount(half.condition.values).tolist() == [2, 2, 2]
        assert (np.diff(half.trial.values) > 0).all()
    again, _ = split_halves(counts, seed=4, by="condition")
    np.testing.assert_array_equal(again.trial.values, first.trial.values)
    other = {tuple(split_halves(counts, seed=s)[0].trial.values) for s in range(5)}
    assert len(other) > 1
    odd = counts.isel(trial=slice(0, 7))
    a, b = split_halves(odd, seed=0)
    assert (a.sizes["trial"], b.sizes["trial"]) == (3, 4)


def test_crop_epoch_by_times_and_by_columns(counts):
    cropped = crop_epoch(counts, (0.1, 0.2))
    np.testing.assert_allclose(cropped.time.values, counts.time.values[10:20])
    with pytest.raises(ValueError, match="no time bin"):
        crop_epoch(counts, ("go_cue_time", "go_cue_time"))  # empty epoch
    shifted = counts.assign_coords(stop_cue=counts.go_cue_time + 0.1 + 0.01 * (counts.trial % 2))
    out = crop_epoch(shifted, ("go_cue_time", "stop_cue"))
    assert float(out.time[0]) == pytest.approx(0.205) and out.sizes["time"] == 11
    np.testing.assert_array_equal(np.isnan(out.isel(trial=0, unit=0)).values[-1], True)  # even trials stop earlier


def test_crop_epoch_by_label(counts):
    labels = np.where(counts.time.values < 0.2, "fixation", "response")
    two_d = np.broadcast_to(labels, (N_TRIALS, N_TIME)).copy()
    two_d[3, 15:25] = "response"
    da = counts.assign_coords(epoch=(("trial", "time"), two_d))
    out = crop_epoch(da, "response")
    assert float(out.time[0]) == pytest.approx(counts.time.values[15])
    assert np.isnan(out.isel(trial=2, time=0)).all() and not np.isnan(out.isel(trial=3, time=0)).any()
    with pytest.raises(ValueError, match="never occurs"):
        crop_epoch(da, "delay")


def test_pca_project_recovers_low_rank_structure(counts):
    rng = np.random.default_rng(1)
    latent = rng.standard_normal((N_TRIALS, N_TIME, 2))
    mixing = rng.standard_normal((2, N_UNITS))
    da = counts.copy(data=(latent @ mixing).astype(float))
    proj, loadings = pca_project(da, 2, return_loadings=True)
    assert proj.dims == ("trial", "time", "component") and "condition" in proj.coords
    np.testing.assert_allclose(proj.explained_variance_ratio.sum(), 1.0, atol=1e-10)
    np.testing.assert_allclose(loadings.values @ loadings.values.T, np.eye(2), atol=1e-10)
    assert loadings.unit_area.values.tolist() == ["M1", "M1", "PMd", "PMd"]
    # the projection reconstructs the centred data exactly (rank 2)
    centred = da - da.mean(["trial", "time"])
    recon = proj.values @ loadings.values
    np.testing.assert_allclose(recon, centred.values, atol=1e-8)
    with pytest.raises(ValueError, match="n_components"):
        pca_project(da, 5)


def test_pca_fit_on_average_and_nan_rows(counts):
    avg = trial_average(counts, "condition")
    proj = pca_project(counts, 2, fit_on=avg)
    assert np.isnan(proj.isel(trial=0, time=45)).all() and not np.isnan(proj.isel(trial=1)).any()


@pytest.mark.parametrize(
    "apply",
    [
        lambda da: smooth(da, 0.02),
        counts_to_rates,
        soft_normalize,
        lambda da: trial_average(da, "condition"),
        lambda da: split_halves(da, seed=0),
        lambda da: crop_epoch(da, (0.1, 0.3)),
        lambda da: pca_project(da.fillna(0), 2),
    ],
)
def test_inputs_are_never_mutated(counts, apply):
    before = counts.copy(deep=True)
    apply(counts)
    xr.testing.assert_identical(counts, before)
