"""Task variance, unit clusters, motifs and lesions (Yang 2019 / Driscoll 2024) on planted networks."""
import json

import numpy as np
import pytest
import torch
import xarray as xr

from neurokpflow import models, tasks
from neurokpflow.analysis import task_variance as tv
from neurokpflow.analysis.fixed_points import FixedPointOptions
from neurokpflow.analysis.task_variance import TaskVarianceError, VarianceOptions


def activity(groups, n_trials=12, n_steps=10, n_units=None, seed=0, epochs=None, tasks_=("A", "B", "C")):
    """Synthetic (trial, time, unit) activity: ``groups[task] = units`` whose activity varies across
    that task's trials (random condition values), every other unit constant (zero variance)."""
    rng = np.random.default_rng(seed)
    n_units = n_units or 1 + max(u for us in groups.values() for u in us)
    labels = np.repeat(list(tasks_), n_trials)
    x = np.full((len(labels), n_steps, n_units), 0.3)
    for task, units in groups.items():
        rows = labels == task
        x[np.ix_(rows, np.arange(n_steps), units)] += rng.normal(size=(rows.sum(), n_steps, len(units)))
    ep = np.full((len(labels), n_steps), "stim1", dtype=object) if epochs is None else epochs
    return xr.DataArray(x, dims=("trial", "time", "unit"),
                        coords={"task": ("trial", labels), "epoch": (("trial", "time"), np.asarray(ep).astype(str)),
                                "unit": np.arange(n_units)})


PLANTED = {"A": list(range(10)), "B": list(range(10, 20)), "C": list(range(20, 30))}
FAST = VarianceOptions(k_range=(2, 10), n_init=5)  # fewer candidates and restarts than Yang's (2..29, 20)


def test_variance_closed_form_and_alignment():
    # two trials at +a and -a at every step: variance a^2 at each step, mean over steps = mean(a^2)
    a = np.array([1.0, 2.0, 3.0])
    x = np.stack([a, -a])[..., None]
    act = xr.DataArray(x, dims=("trial", "time", "unit"),
                       coords={"task": ("trial", ["A", "A"]), "epoch": (("trial", "time"), np.full((2, 3), "go1"))})
    var = tv.task_variance(act)
    assert var.dims == ("unit", "task")
    np.testing.assert_allclose(var.sel(task="A").values, [np.mean(a ** 2)])
    # by period, trials are aligned on the epoch onset: the same +-a profile shifted by 2 steps in trial 2
    x2 = np.zeros((2, 6, 1))
    x2[0, 1:4, 0], x2[1, 3:6, 0] = a, -a
    ep = np.full((2, 6), "fix1", dtype=object)
    ep[0, 1:4], ep[1, 3:6] = "stim1", "stim1"
    ep[0, 4:] = "pad"
    act2 = xr.DataArray(x2, dims=("trial", "time", "unit"),
                        coords={"task": ("trial", ["A", "A"]), "epoch": (("trial", "time"), ep.astype(str))})
    per = tv.task_variance(act2, by="period")
    assert per["period"].values.tolist() == ["A:stim1"] and per["epoch"].values.tolist() == ["stim1"]
    np.testing.assert_allclose(per.values[:, 0], [np.mean(a ** 2)])


def test_planted_clusters_are_recovered_and_silhouette_picks_k():
    act = activity(PLANTED, n_units=34)
    ds = tv.cluster_units(act)
    assert ds.attrs["n_clusters"] == 3
    assert int(ds["silhouette"].idxmax()) == 3
    assert json.loads(ds.attrs["excluded_units"]) == [30, 31, 32, 33]  # zero-variance units are inactive
    for c, task in enumerate("ABC"):  # clusters are numbered by their preferred task
        assert ds["unit"].values[ds["cluster"].values == c].tolist() == PLANTED[task]
        assert bool(ds["uses_cluster"].sel(cluster_id=c, task=task))
    np.testing.assert_allclose(ds["cluster_overlap"].values, np.eye(3))
    four = dict(PLANTED, D=list(range(30, 40)))
    assert tv.cluster_units(activity(four, tasks_=("A", "B", "C", "D")), FAST).attrs["n_clusters"] == 4
    # a precomputed (unit, task) variance gives the same clusters
    again = tv.cluster_units(tv.task_variance(act))
    assert np.array_equal(again["cluster"], ds["cluster"]) and again.attrs["excluded_units"] == ds.attrs["excluded_units"]
    agg = tv.cluster_units(act, VarianceOptions(method="agglomerative", linkage="average"))
    assert agg.attrs["n_clusters"] == 3 and "average linkage" in agg.attrs["method"]


def test_shared_units_give_overlap():
    groups = {"A": list(range(10)) + list(range(20, 30)), "B": list(range(10, 30)), "C": list(range(30, 40))}
    ds = tv.cluster_units(activity(groups), FAST)
    overlap = ds["cluster_overlap"]
    assert float(overlap.sel(task_i="A", task_j="B")) > 0 and float(overlap.sel(task_i="A", task_j="C")) == 0
    assert np.allclose(overlap.values, overlap.values.T)
    sim = ds["variance_similarity"]
    assert float(sim.sel(task_i="A", task_j="B")) > float(sim.sel(task_i="A", task_j="C"))


def test_normalisation_invariances():
    act = activity(PLANTED, seed=1)
    base = tv.cluster_units(act, FAST)
    scale = xr.DataArray(np.linspace(0.5, 4.0, act.sizes["unit"]), dims="unit")
    rescaled = tv.cluster_units(act * scale + 7.0, FAST)  # per-unit gain and offset
    np.testing.assert_allclose(rescaled["normalized_variance"], base["normalized_variance"], rtol=1e-9, atol=1e-12)
    assert np.array_equal(rescaled["cluster"], base["cluster"])
    # trial order within a task does not matter; unit order permutes the result
    perm = np.random.default_rng(0).permutation(act.sizes["trial"])
    shuffled = act.isel(trial=perm)
    xr.testing.assert_allclose(tv.task_variance(shuffled).sel(task=["A", "B", "C"]), tv.task_variance(act),
                               rtol=1e-12)
    upermuted = tv.cluster_units(act.isel(unit=np.random.default_rng(1).permutation(act.sizes["unit"])), FAST)
    assert np.array_equal(upermuted["cluster"].sortby("unit").values, base["cluster"].sortby("unit").values)
    # "max": every active unit's maximum over tasks is 1
    np.testing.assert_allclose(base["normalized_variance"].max("task"), 1.0)
    s = tv.cluster_units(act, VarianceOptions(normalization="sum", k_range=(2, 10), n_init=5))
    np.testing.assert_allclose(s["normalized_variance"].sum("task"), 1.0)


def test_motifs_find_periods_that_share_units():
    # units 0-9 vary in the stimulus period of both tasks, 10-19 in A's response, 20-29 in B's response
    n_trials, T = 12, 10
    ep = np.where(np.arange(T) < 5, "stim1", "go1")
    epochs = np.tile(ep, (2 * n_trials, 1))
    rng = np.random.default_rng(0)
    x = np.zeros((2 * n_trials, T, 30))
    x[:, :5, :10] = rng.normal(size=(2 * n_trials, 5, 10))
    x[:n_trials, 5:, 10:20] = rng.normal(size=(n_trials, 5, 10))
    x[n_trials:, 5:, 20:30] = rng.normal(size=(n_trials, 5, 10))
    act = xr.DataArray(x, dims=("trial", "time", "unit"),
                       coords={"task": ("trial", np.repeat(["A", "B"], n_trials)), "epoch": (("trial", "time"), epochs)})
    m = tv.motifs(act, FAST)
    assert m.attrs["n_clusters"] == 3
    shared = m["shared_motifs"]
    assert int(shared.sel(period="A:stim1", period_other="B:stim1")) == 1
    assert int(shared.sel(period="A:go1", period_other="B:go1")) == 0
    assert int(shared.sel(period="A:stim1", period_other="A:go1")) == 0
    stim = m["motif"].values[m["unit"].values < 10]
    assert len(set(stim)) == 1  # the stimulus units form one motif
    np.testing.assert_allclose(m["motif_overlap"].sel(task_i="A", task_j="B"), 1 / 3)


def react_network():
    """A hand-wired rectified network on react_pro / react_anti: units 0-7 carry the stimulus only in
    react_pro trials, units 8-15 only in react_anti trials (gated by the rule inputs); units 16-19 are
    silent.  The readout reads the pro units as they are and the anti units sign-flipped."""
    mix = tasks.mix([tasks.make("react_pro", dt=0.1), tasks.make("react_anti", dt=0.1)])
    model = models.make("rnn", mix.n_inputs, 20, mix.n_outputs, alpha=1.0, activation="relu", seed=0, dtype="float64")
    M = 10.0
    w_in = torch.zeros(20, mix.n_inputs, dtype=torch.float64)
    bias = torch.zeros(20, dtype=torch.float64)
    w_out = torch.zeros(3, 20, dtype=torch.float64)
    for path, rule, sign in ((0, 5, 1.0), (8, 6, -1.0)):
        for k, (channel, s) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1)] * 2):
            unit = path + k
            w_in[unit, 1 + channel] = w_in[unit, 3 + channel] = s  # both modalities
            w_in[unit, rule] = M
            bias[unit] = -M
            w_out[1 + channel, unit] = 0.5 * s * sign
    with torch.no_grad():
        model.cell.weight_ih.copy_(w_in)
        model.cell.bias.copy_(bias)
        model.cell.weight_hh.zero_()
        model.readout.weight.copy_(w_out)
        model.readout.bias.zero_()
    return mix, model


def test_lesioning_the_only_path_of_a_task():
    mix, model = react_network()
    grid = mix.test_grid(n_angles=16)
    clusters = tv.cluster_units(models.record(model, grid))
    assert clusters.attrs["n_clusters"] == 2 and json.loads(clusters.attrs["excluded_units"]) == [16, 17, 18, 19]
    assert clusters["unit"].values[clusters["cluster"].values == 0].tolist() == list(range(8))
    assert clusters["unit"].values[clusters["cluster"].values == 1].tolist() == list(range(8, 16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    effects = tv.lesion_effects(model, mix, grid, clusters)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input model untouched
    perf = effects["performance"]
    assert effects["lesion"].values.tolist() == ["intact", "cluster 0", "cluster 1"]
    np.testing.assert_allclose(perf.sel(lesion="intact"), 1.0)
    assert float(perf.sel(lesion="cluster 0", task="react_pro")) < 0.2
    assert float(perf.sel(lesion="cluster 0", task="react_anti")) == 1.0
    assert float(perf.sel(lesion="cluster 1", task="react_anti")) < 0.2
    assert float(perf.sel(lesion="cluster 1", task="react_pro")) == 1.0
    assert float(effects["loss_change"].sel(lesion="cluster 1", task="react_pro")) == 0.0
    assert effects["n_units"].values.tolist() == [0, 8, 8]


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_lesioned_units_reach_nothing(kind):
    model = models.make(kind, 3, 6, 2, seed=1, dtype="float64")
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    lesioned = tv.lesion(model, [1, 4])
    out_l, states_l = lesioned(x)
    # driving the lesioned units' activity from outside changes neither the outputs nor any other unit
    H = lesioned.cell.hidden_size
    z0 = lesioned.initial_state(4).clone()
    z0[:, [1, 4]] = 5.0
    out_z, states_z = lesioned(x, initial_state=z0)
    others = [u for u in range(lesioned.cell.state_size) if u % H not in (1, 4)]
    np.testing.assert_allclose(out_z.detach(), out_l.detach(), atol=1e-12)
    np.testing.assert_allclose(states_z[..., others].detach(), states_l[..., others].detach(), atol=1e-12)
    assert float(model.readout.weight[:, [1, 4]].detach().abs().sum()) > 0  # the original keeps its weights


def test_motif_table_puts_pairs_side_by_side():
    act = activity(PLANTED)
    clusters = tv.cluster_units(act, FAST)
    names = ["A", "B", "C"]
    rng = np.random.default_rng(0)
    pair = {"task_i": names, "task_j": names}
    alignment = xr.Dataset({v: (("task_i", "task_j"), rng.normal(size=(3, 3)))
                            for v in ("alignment", "gradient_alignment", "loss_change")}, coords=pair)
    fp = xr.Dataset({"n_points": (("task", "stability"), np.arange(12).reshape(3, 4))},
                    coords={"task": names, "stability": ["stable", "marginal", "saddle", "unstable"]})
    table = tv.motif_table(alignment, clusters, fp)
    assert len(table) == 6 and set(table["task_i"]) == set(names)
    row = table[(table.task_i == "B") & (table.task_j == "C")].iloc[0]
    assert row["alignment"] == float(alignment["alignment"].sel(task_i="B", task_j="C"))
    assert row["cluster_overlap"] == 0.0 and row["stable_i"] == 4 and row["saddle_j"] == 10
    with pytest.raises(TaskVarianceError, match="absent from the clusters"):
        tv.motif_table(alignment.assign_coords(task_i=["A", "B", "Z"], task_j=["A", "B", "Z"]), clusters)


def test_errors_are_typed_and_name_the_fix():
    act = activity(PLANTED)
    with pytest.raises(TaskVarianceError, match="normalization"):
        VarianceOptions(normalization="zscore")
    with pytest.raises(ValueError, match="k_range"):
        VarianceOptions(k_range=(1, 5))
    with pytest.raises(TaskVarianceError, match="active_threshold"):
        tv.cluster_units(act, VarianceOptions(active_threshold=1e6))
    with pytest.raises(TaskVarianceError, match="'task' coordinate"):
        tv.task_variance(act.drop_vars("task"))
    with pytest.raises(TypeError, match="models.record"):
        tv.task_variance(np.zeros((2, 3, 4)))
    with pytest.raises(TaskVarianceError, match="2 or more trials"):
        tv.task_variance(act.isel(trial=[0, 12, 24]))
    with pytest.raises(TaskVarianceError, match="by must be"):
        tv.task_variance(act, by="epoch")
    model = models.make("rnn", 3, 6, 2, seed=0)
    with pytest.raises(TaskVarianceError, match=r"\[0, 6\)"):
        tv.lesion(model, [2, 6])
    with pytest.raises(TaskVarianceError, match="int unit indices"):
        tv.lesion(model, [0.5])


def test_fixed_point_summary_of_a_feedforward_network():
    # no recurrence: F(h) = relu(W_in u + b) whatever h, so exactly one fixed point per input, stable (J = 0)
    mix, model = react_network()
    with torch.no_grad():
        _, states = model(mix.test_grid(n_angles=4).inputs)
    inputs = {}
    for name in mix.task_names:
        u = np.zeros(mix.n_inputs)
        u[0] = u[mix.input_names.index(f"rule_{name}")] = 1.0
        inputs[name] = u
    summary = tv.fixed_point_summary(model, inputs, states, FixedPointOptions(n_initial=64))
    assert summary["n_points"].sel(stability="stable").values.tolist() == [1, 1]
    assert summary["n_fixed_points"].values.tolist() == [1, 1]
    with pytest.raises(TypeError, match="inputs_by_task"):
        tv.fixed_point_summary(model, [], states)


def test_plots_of_clusters_motifs_and_lesions():
    from neurokpflow import viz

    clusters = tv.cluster_units(activity(PLANTED), FAST)
    fig = viz.plot_task_variance(clusters)
    heat = fig.axes[0]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["A", "B", "C"]
    assert len(heat.lines) == 2  # boundaries between the 3 clusters
    assert fig.axes[1].get_title() == "k = 3"
    mix, model = react_network()
    grid = mix.test_grid(n_angles=8)
    effects = tv.lesion_effects(model, mix, grid, {"pro path": range(8), "none": []})
    assert effects["lesion"].values.tolist() == ["intact", "pro path", "none"]
    fig = viz.plot_lesion_effects(effects)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["intact", "pro path", "none"]
    with pytest.raises(TypeError, match="cluster_units or motifs"):
        viz.plot_task_variance(effects)


def test_results_round_trip_through_netcdf(tmp_path):
    for name, ds in (("clusters", tv.cluster_units(activity(PLANTED), FAST)), ("motifs", tv.motifs(activity(PLANTED), FAST))):
        ds.to_netcdf(tmp_path / f"{name}.nc", engine="h5netcdf")
        with xr.open_dataset(tmp_path / f"{name}.nc", engine="h5netcdf") as back:
            xr.testing.assert_identical(back.load(), ds)
