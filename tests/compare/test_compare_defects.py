"""Regression tests for defects found by trying the comparison module as a new user would."""
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from threadpoolctl import threadpool_info

import neurokpflow.compare as nc
import neurokpflow.compare.dynamics as dynamics
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)
from _paths import SHARED_DATA

DATA = SHARED_DATA


def test_cca_angular_does_not_claim_to_be_a_metric_and_says_when_it_equals_the_shape_metric():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 3)), rng.standard_normal((30, 6))
    assert nc.CCA(output="angular").metric is False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nc.InSampleBiasWarning)
        unequal = nc.cca(x, y, output="angular")
        shape0 = nc.procrustes(x, y, alpha=0.0)
        equal = nc.cca(x, y[:, :3], output="angular")
        shape0_equal = nc.procrustes(x, y[:, :3], alpha=0.0)
    assert unequal.details["equals_shape_metric"] is False and float(unequal) != pytest.approx(float(shape0), abs=1e-3)
    assert equal.details["equals_shape_metric"] is True and float(equal) == pytest.approx(float(shape0_equal), abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,alpha", [("angular", 1.0), ("euclidean", 1.0), ("angular", 0.5), ("angular", 0.0)])
def test_procrustes_distance_of_an_input_to_itself_is_zero(kind, alpha, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 7)).astype(dtype) * 3 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nc.InSampleBiasWarning)
        assert float(nc.procrustes(x, x, kind, alpha)) <= 1e-12
        rotated = x.astype(np.float64) @ np.linalg.qr(rng.standard_normal((7, 7)))[0]
        if alpha == 1.0:   # also across the invariance group, to round-off
            assert float(nc.procrustes(x, rotated, kind, alpha)) <= 1e-12 * (1 if kind == "angular" else 100)


def test_empty_time_bin_error_names_coordinate_values_and_a_selection_that_works():
    rng = np.random.default_rng(2)
    values = rng.standard_normal((6, 8, 3))
    values[4:, 6:] = np.nan          # the two trials of condition 'up' stop early
    times = 0.025 + 0.05 * np.arange(8)
    da = xr.DataArray(values, dims=("trial", "time", "unit"),
                      coords={"condition": ("trial", ["left", "left", "right", "right", "up", "up"]), "time": times})
    with pytest.raises(nc.DegenerateInputError) as info:
        nc.as_representation(da)
    message = str(info.value)
    assert "'up'" in message and "0.325 s" in message and "time='intersect'" not in message
    assert "data.sel(time=slice(0.025, 0.275))" in message
    fixed = nc.as_representation(da.sel(time=slice(0.025, 0.275)))   # the suggested selection works
    assert fixed.n_times == 6


def test_dsa_chooses_its_rank_by_a_stated_rule_and_records_it():
    rng = np.random.default_rng(3)
    # 2-dim rotational dynamics embedded in 12 units plus small noise: full numerical rank 12, energy in 2 dims
    angle = 0.2
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    states = [rng.standard_normal((6, 2))]
    for _ in range(29):
        states.append(states[-1] @ rot.T)
    latent = np.stack(states, axis=1)                                  # (condition, time, 2)
    x = latent @ rng.standard_normal((2, 12)) + 1e-3 * rng.standard_normal((6, 30, 12))
    y = latent @ rng.standard_normal((2, 9)) + 1e-3 * rng.standard_normal((6, 30, 9))
    score = nc.dsa(x, y)
    assert nc.DSA().rank == 0.99 and "rank=energy0.99" in nc.DSA().estimator
    assert score.details["rank"] == 2 and min(score.details["energy_kept"]) >= 0.99
    assert "0.99 of the embedding energy" in score.details["rank_rule"]
    assert float(score) < 0.05                                         # same dynamics, different embeddings
    assert nc.dsa(x, y, rank=None).details["rank"] == 9                # the old behaviour, on request


def test_dsa_fits_on_one_thread_and_restores_the_settings(monkeypatch):
    seen = []
    original = dynamics.compare_operators

    def spy(*args, **kwargs):
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        seen.append((torch.get_num_threads(), blas))
        return original(*args, **kwargs)

    monkeypatch.setattr(dynamics, "compare_operators", spy)
    torch.set_num_threads(2)
    try:
        rng = np.random.default_rng(4)
        nc.dsa(rng.standard_normal((4, 20, 5)), rng.standard_normal((4, 20, 5)))
        assert seen and seen[0][0] == 1 and all(n == 1 for n in seen[0][1])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.skipif(not (DATA / "m1_center_out_chewie.nwb").exists(), reason="real M1 recording not in ../shared/data")
def test_dsa_on_the_m1_recording_uses_a_low_rank():
    from neurokpflow.data import load_recording

    recording = load_recording(DATA / "m1_center_out_chewie.nwb", condition="target")
    half = recording.isel(trial=slice(0, None, 2))
    other = recording.isel(trial=slice(1, None, 2))
    score = nc.dsa(half, other)
    assert score.details["rank"] < 20 < recording.sizes["unit"]


def test_in_sample_cca_warns_well_before_units_reach_samples():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))    # 6 units > 40 / 10, far below 39
    with pytest.warns(nc.InSampleBiasWarning, match="samples/10"):
        nc.cca(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", nc.InSampleBiasWarning)
        nc.cca(rng.standard_normal((80, 4)), rng.standard_normal((80, 4)))   # 4 <= 80 / 10: no warning
