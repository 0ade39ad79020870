"""Coordinate-aware inputs, the compare() entry point, time/training comparisons, pairwise and plots."""
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
import xarray as xr

import neurokpflow.compare as nc
from neurokpflow import viz
from test_compare_support import one_torch_thread  # noqa: F401  (autouse fixture)
from _paths import SHARED_DATA

matplotlib.use("Agg")
TIMES = np.round(np.arange(8) * 0.05, 10)
LATENT = np.random.default_rng(0).standard_normal((5, 8, 3))


def model_recording(n_units=7, seed=1, conditions=np.arange(5), times=TIMES):
    rng = np.random.default_rng(seed)
    hidden = LATENT[conditions][:, : len(times)] @ rng.standard_normal((3, n_units))
    return xr.Dataset({"hidden": (("trial", "time", "unit"), hidden)},
                      coords={"time": ("time", times, {"units": "s"}), "condition": ("trial", conditions),
                              "task": ("trial", ["reach"] * len(conditions))})


def data_recording(n_units=4, n_trials=4, seed=2, noise=0.3):
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(5), n_trials)  # interleaved, not sorted
    counts = LATENT[labels] @ rng.standard_normal((3, n_units)) + noise * rng.standard_normal((len(labels), 8, n_units))
    counts[0, -2:] = np.nan  # one shorter trial, NaN-padded as the NWB layout does
    return xr.Dataset({"spike_count": (("trial", "time", "unit"), counts)},
                      coords={"time": TIMES, "target": ("trial", labels)})


PAIR = dict(condition=("condition", "target"))


def test_alignment_matches_condition_values_not_positions():
    model, data = model_recording(), data_recording()
    a, b = nc.align(model, data, **PAIR)
    assert a.n_units == 7 and b.n_units == 4 and list(a.conditions) == list(b.conditions) == list(range(5))
    shuffled = model.isel(trial=[3, 0, 4, 1, 2])
    assert float(nc.cka(shuffled, data, **PAIR)) == pytest.approx(float(nc.cka(model, data, **PAIR)), abs=1e-12)
    # a plain array is matched by position: shuffling it does change the result
    a_arr = model["hidden"].values
    assert float(nc.cka(a_arr[[3, 0, 4, 1, 2]], a.means.numpy())) != pytest.approx(float(nc.cka(a_arr, a.means.numpy())))


def test_condition_mismatch_errors_and_intersect():
    model, data = model_recording(conditions=np.arange(4)), data_recording()
    with pytest.raises(nc.AlignmentError, match=r"only in second \[4\].*intersect"):
        nc.cka(model, data, **PAIR)
    a, b = nc.align(model, data, conditions="intersect", **PAIR)
    assert a.n_conditions == b.n_conditions == 4


def test_time_mismatch_errors_intersect_and_resample():
    model = model_recording(times=TIMES[:6] + 0.025)
    data = data_recording()
    with pytest.raises(nc.AlignmentError, match="time='intersect'"):
        nc.cka(model, data, **PAIR)
    with pytest.raises(nc.AlignmentError, match="share no time bin"):
        nc.align(model, data, time="intersect", **PAIR)
    a, b = nc.align(model, data, time="resample", **PAIR)
    np.testing.assert_allclose(b.times, TIMES[1:6])
    np.testing.assert_allclose(a.means[:, 0].numpy(), (model["hidden"].values[:, 0] + model["hidden"].values[:, 1]) / 2)
    a, b = nc.align(model_recording(times=TIMES[:6]), data, time="intersect", **PAIR)
    assert a.n_times == b.n_times == 6


def test_dataset_variable_and_coordinate_errors():
    model, data = model_recording(), data_recording()
    two = data.assign(extra=data["spike_count"] * 2)
    with pytest.raises(ValueError, match="var="):
        nc.cka(model, two, **PAIR)
    assert float(nc.cka(model, two, var=(None, "spike_count"), **PAIR)) == pytest.approx(
        float(nc.cka(model, data, **PAIR)))
    with pytest.raises(ValueError, match="condition='target'"):
        nc.cka(model, data)
    with pytest.raises(KeyError, match="stimulus"):
        nc.cka(model, data, condition=("condition", "stimulus"))
    with pytest.raises(ValueError, match="'unit'"):
        nc.cka(model.rename(unit="neuron"), data, **PAIR)


def test_nan_padding_is_averaged_and_all_nan_bins_error():
    data = data_recording()
    b = nc.as_representation(data, condition="target")
    assert torch.isfinite(b.means).all()
    only_short = data.where(data["target"] != 0, drop=False)
    only_short["spike_count"][dict(trial=np.flatnonzero(data["target"].values == 0))] = np.nan
    with pytest.raises(nc.DegenerateInputError, match="no valid"):
        nc.as_representation(only_short, condition="target")


def test_compare_returns_dataset_with_scores_cis_and_nulls():
    model, data = model_recording(), data_recording()
    ds = nc.compare(model, data, measures=["procrustes", "cka", nc.RSA(compare="pearson"), "predictivity"],
                    stats=["bootstrap", "permutation", "noise_ceiling", "cross_validated"], n_boot=15, n_perm=15, **PAIR)
    assert set(ds.data_vars) == {"score", "ci_low", "ci_high", "bias", "se", "ci_estimate", "ci_method", "p_value",
                                 "null_mean", "null", "noise_ceiling", "cv_score"}
    assert np.array_equal(ds["ci_estimate"].values, ds["score"].values)      # no bias-corrected interval here
    assert ds.sizes == {"measure": 4, "permutation": 15}
    assert list(ds["convention"].values) == ["angle", "similarity", "similarity", "score"]
    for name in ("score", "ci_low", "ci_high", "p_value", "noise_ceiling"):
        assert np.isfinite(ds[name].values).all()
    assert np.isnan(ds["cv_score"].sel(measure=ds.measure[1])).item()  # cka fits nothing (documented NaN)
    assert float(ds["score"][0]) == pytest.approx(float(nc.procrustes(model, data, **PAIR)))
    fig = viz.plot_comparison(ds)
    assert len(fig.axes) == 4
    # titles name measures in words, not by their machine id
    titles = [ax.get_title() for ax in fig.axes]
    assert all("=" not in t for t in titles) and any(t.startswith("Procrustes") for t in titles)
    measures = [nc.get_measure(m) for m in ("procrustes", "cka")] + [nc.RSA(compare="pearson"), nc.get_measure("predictivity")]
    assert list(ds["label"].values) == [m.label for m in measures]
    # ax=: draws into the caller's Axes and returns their figure
    from neurokpflow.viz._axes import new_figure

    mine = new_figure(12, 3)
    assert viz.plot_comparison(ds, ax=list(mine.subplots(1, 4))) is mine
    with pytest.raises(TypeError, match="4 panel"):
        viz.plot_comparison(ds, ax=mine.axes[0])
    # the old location still works, with a DeprecationWarning
    with pytest.warns(DeprecationWarning, match="neurokpflow.viz.plot_comparison"):
        assert nc.plot_comparison is viz.plot_comparison


def test_time_resolved_cross_temporal_and_plot():
    model, data = model_recording(), data_recording()
    tr = nc.time_resolved("cka", model, data, **PAIR)
    assert tr.dims == ("time",) and np.allclose(tr["time"], TIMES)
    t3 = float(nc.cka(model.isel(time=[3]), data.isel(time=[3]), **PAIR))
    assert float(tr[3]) == pytest.approx(t3)
    ct = nc.cross_temporal("cka", model, data, **PAIR)
    assert ct.shape == (8, 8) and np.allclose(np.diag(ct), tr)
    ds = nc.compare(model, data, measures=["cka"], stats=["bootstrap"], resolution="cross_temporal", n_boot=5, **PAIR)
    assert ds["score"].dims == ("measure", "time_model", "time_data")
    viz.plot_comparison(ds)
    with pytest.raises(ValueError, match="dsa"):
        nc.time_resolved("dsa", model, data, **PAIR)


def test_along_training_over_checkpoints():
    data = data_recording()
    ckpts = xr.concat([model_recording(seed=s) * w for s, w in [(1, 0.0), (1, 0.5), (1, 1.0)]], dim="checkpoint")
    noise = xr.DataArray(np.random.default_rng(9).standard_normal(ckpts["hidden"].shape), dims=ckpts["hidden"].dims)
    ckpts["hidden"] = ckpts["hidden"] + noise * xr.DataArray([1.0, 0.5, 0.01], dims="checkpoint")
    ckpts = ckpts.assign_coords(checkpoint=[0, 100, 200])
    curve = nc.along_training("cka", ckpts, data, **PAIR)
    assert curve.dims == ("checkpoint",) and list(curve["checkpoint"].values) == [0, 100, 200]
    assert curve[0] < curve[2]
    ds = nc.compare(ckpts, data, measures=["cka"], stats=["permutation"], n_perm=5, **PAIR)
    assert ds["score"].dims == ("measure", "checkpoint")
    np.testing.assert_allclose(ds["score"][0].values, curve.values)
    as_list = nc.along_training("cka", [ckpts.isel(checkpoint=i) for i in range(3)], data, **PAIR)
    assert as_list.dims == ("step",)  # lists and mappings get the package's one training dimension
    np.testing.assert_allclose(as_list.values, curve.values)


def test_pairwise_batched_matches_single_pairs():
    rng = np.random.default_rng(4)
    reps = {f"r{i}": rng.standard_normal((30, k)) for i, k in enumerate((3, 5, 4, 5))}
    out = nc.pairwise(reps, ["procrustes", "procrustes_euclidean", "cka", nc.CKA(output="angular"), "rsa"])
    assert out.dims == ("measure", "first", "second") and out.sizes["first"] == 4
    for i, a in enumerate(reps):
        for j, b in enumerate(reps):
            assert out[0, i, j] == pytest.approx(float(nc.procrustes(reps[a], reps[b])), abs=1e-7)
            assert out[1, i, j] == pytest.approx(float(nc.procrustes(reps[a], reps[b], "euclidean")), abs=1e-6)
            assert out[2, i, j] == pytest.approx(float(nc.cka(reps[a], reps[b])), abs=1e-10)
            assert out[4, i, j] == pytest.approx(float(nc.rsa(reps[a], reps[b])), abs=1e-12)
    f32 = nc.pairwise(reps, ["cka"], dtype=torch.float32)
    np.testing.assert_allclose(f32[0], out[2], atol=1e-5)
    with pytest.raises(ValueError, match="share their samples"):
        nc.pairwise([reps["r0"], reps["r1"][:10]])


def test_pairwise_diagonal_is_exactly_identity():
    rng = np.random.default_rng(5)
    reps = [rng.standard_normal((40, 6)) for _ in range(3)]
    # float32 makes the round-off visible (arccos(1 - 1e-7) = 5e-4), float64 on a GPU too
    for dtype in (torch.float64, torch.float32):
        out = nc.pairwise(reps, measures=("procrustes", "cka", "procrustes_euclidean"), dtype=dtype)
        for m in out.measure.values:
            diag = np.diagonal(out.sel(measure=m).values)
            want = 1.0 if "similarity" in str(out.sel(measure=m).convention.values) else 0.0
            assert np.all(diag == want), (dtype, m, diag)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA absent")
def test_pairwise_on_cuda_matches_cpu():
    rng = np.random.default_rng(5)
    reps = [rng.standard_normal((40, 6)) for _ in range(3)]
    np.testing.assert_allclose(nc.pairwise(reps, device="cuda"), nc.pairwise(reps), atol=1e-9)


def _data_dir() -> Path:
    return SHARED_DATA


@pytest.mark.realdata
def test_real_m1_recording_against_a_model():
    path = _data_dir() / "m1_center_out_chewie.nwb"
    if not path.exists():
        pytest.skip(f"real recording absent: {path} (set NEUROKPFLOW_DATA)")
    pynwb = pytest.importorskip("pynwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        series = nwb.processing["ecephys"]["binned_spike_counts"]
        counts, rate = np.asarray(series.data[:], dtype=float), float(series.rate)
        start = float(series.starting_time or 0.0)
        trials = nwb.trials.to_dataframe()
    n_bins = 20  # the first second of every trial (all trials are >= 1 s)
    first = np.round((trials["start_time"].to_numpy() - start) * rate).astype(int)
    binned = np.stack([counts[f: f + n_bins] for f in first])
    data = xr.DataArray(binned, dims=("trial", "time", "unit"),
                        coords={"time": np.arange(n_bins) / rate, "target": ("trial", trials["target"].to_numpy())})
    data = data.isel(unit=np.flatnonzero(binned.reshape(-1, binned.shape[-1]).std(0) > 0))
    targets = np.unique(data["target"].values)
    rng = np.random.default_rng(0)
    model = xr.DataArray(rng.standard_normal((len(targets), n_bins, 16)), dims=("condition", "time", "unit"),
                         coords={"condition": targets, "time": np.arange(n_bins) / rate})
    ds = nc.compare(model, data, measures=["cka", "procrustes"], stats=["bootstrap", "noise_ceiling"],
                    n_boot=20, condition=(None, "target"))
    assert np.isfinite(ds["score"]).all() and np.isfinite(ds["noise_ceiling"]).all()
    assert float(ds["noise_ceiling"].sel(measure=ds.measure[0])) > float(ds["score"][0])
