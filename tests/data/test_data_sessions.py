"""Many sessions: read_sessions (tree and stacked layouts) and pseudo_population."""
import numpy as np
import pytest
import xarray as xr

from neurokpflow.compare import as_representation
from neurokpflow.data import (
    MissingDataError,
    NWBFileError,
    NWBLoadError,
    SessionMismatchError,
    pseudo_population,
    read_nwb,
    read_sessions,
    stack_sessions,
    synthetic_nwb,
    synthetic_nwbfile,
    trial_average,
)

OPTIONS = dict(align_to="go_cue_time", window=(-0.2, 0.3), bin_size=0.05)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sessions")
    return [synthetic_nwb(folder / f"s{seed}.nwb", seed=seed, n_units=3 + seed, n_trials=12 + seed)
            for seed in range(3)]


@pytest.fixture(scope="module")
def same_units(tmp_path_factory):
    folder = tmp_path_factory.mktemp("same_units")
    return [synthetic_nwb(folder / f"s{seed}.nwb", seed=seed, n_units=4, n_trials=9 + seed) for seed in range(2)]


def test_tree_children_are_exactly_read_nwb(paths):
    tree = read_sessions(paths, **OPTIONS)
    names = tree.attrs["sessions"]
    assert names == [f"neurokpflow-synthetic-seed{s}-u{3 + s}-t{12 + s}-c4" for s in range(3)]
    assert list(tree.children) == names and tree.attrs["n_sessions"] == 3
    for name, path in zip(names, paths):
        xr.testing.assert_identical(tree[name].to_dataset(), read_nwb(path, **OPTIONS))


def test_session_names_unique_explicit_and_from_session_id(paths):
    tree = read_sessions([paths[0], paths[0], paths[0]], **OPTIONS)
    base = "neurokpflow-synthetic-seed0-u3-t12-c4"
    assert tree.attrs["sessions"] == [base, f"{base}-2", f"{base}-3"]
    named = read_sessions({"a": paths[0], "b/x": paths[1]}, **OPTIONS)
    assert list(named.children) == ["a", "b_x"]
    nwbfile = synthetic_nwbfile(n_units=2, n_trials=4, seed=5)
    nwbfile.fields["session_id"] = "mouse1/day3"
    assert list(read_sessions([nwbfile], **OPTIONS).children) == ["mouse1_day3"]


def test_lazy_tree_matches_eager_and_closes(paths):
    tree = read_sessions(paths, lazy=True, **OPTIONS)
    name = tree.attrs["sessions"][1]
    assert type(tree[name]["spike_count"].data).__name__ == "Array"  # dask: nothing read yet
    eager = read_sessions(paths, **OPTIONS)
    pooled = pseudo_population(tree)
    assert type(pooled.data).__name__ == "Array"
    xr.testing.assert_identical(pooled.compute(), pseudo_population(eager))
    tree.close()
    with pytest.raises((OSError, RuntimeError, ValueError)):  # the files are closed
        tree[name]["spike_count"].values


def test_failing_session_names_itself_and_keeps_its_type(paths, tmp_path):
    with pytest.raises(NWBFileError) as info:
        read_sessions([paths[0], tmp_path / "missing.nwb"], **OPTIONS)
    assert "session #1" in "\n".join(info.value.__notes__)
    with pytest.raises(SessionMismatchError, match="layout"):
        read_sessions(paths, layout="wide")
    with pytest.raises(MissingDataError):
        read_sessions([])


def test_stacked_layout_pads_trials_and_matches_units_by_id(same_units):
    stacked = read_sessions(same_units, layout="stacked", **OPTIONS)
    singles = [read_nwb(p, **OPTIONS) for p in same_units]
    assert stacked.spike_count.dims == ("session", "trial", "time", "unit")
    assert stacked.sizes["trial"] == 10 and stacked.valid.dtype == bool
    first = stacked.isel(session=0)
    np.testing.assert_array_equal(first.trial_id.values[:9], singles[0].trial.values)
    assert np.isnan(first.trial_id.values[9]) and not first.valid.values[9].any()
    assert np.isnan(first.spike_count.values[9]).all()
    np.testing.assert_array_equal(first.spike_count.values[:9], singles[0].spike_count.values)
    assert stacked.session_nwb_file.values.tolist() == [str(p) for p in same_units]
    lazy = read_sessions(same_units, layout="stacked", lazy=True, **OPTIONS)
    assert type(lazy.spike_count.data).__name__ == "Array"
    xr.testing.assert_equal(lazy.compute(), stacked)  # attrs differ only in the history (lazy=True)
    lazy.close()
    # units are matched by id, not by position
    reordered = stack_sessions({"a": singles[0], "b": singles[1].isel(unit=[3, 1, 0, 2])})
    np.testing.assert_array_equal(reordered.spike_count.sel(session="b").values[:, :, :],
                                  singles[1].spike_count.values)


def test_stacked_layout_refuses_misaligned_sessions(paths, same_units):
    with pytest.raises(SessionMismatchError, match="'unit' ids differ.*layout='tree'"):
        read_sessions(paths, layout="stacked", **OPTIONS)
    singles = [read_nwb(p, **OPTIONS) for p in same_units]
    other = read_nwb(same_units[1], align_to="go_cue_time", window=(-0.2, 0.4), bin_size=0.05)
    with pytest.raises(SessionMismatchError, match="time bins differ.*window="):
        stack_sessions({"a": singles[0], "b": other})


def _oracle_means(ds, conditions):
    counts, labels = ds.spike_count.values, ds.condition.values
    return np.stack([np.nanmean(counts[labels == c], axis=0) for c in conditions])


def test_pseudo_population_means_and_provenance(paths):
    tree = read_sessions(paths, **OPTIONS)
    pooled = pseudo_population(tree, condition="condition")
    assert pooled.dims == ("condition", "time", "unit") and pooled.sizes["unit"] == 3 + 4 + 5
    assert pooled.condition.values.tolist() == [0, 1, 2, 3]
    names = tree.attrs["sessions"]
    assert pooled.unit_session.values.tolist() == [names[0]] * 3 + [names[1]] * 4 + [names[2]] * 5
    assert pooled.unit_id.values.tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4]
    np.testing.assert_array_equal(pooled.unit.values, np.arange(12))
    start = 0
    for name in names:
        ds = tree[name].to_dataset()
        block = pooled.isel(unit=slice(start, start + ds.sizes["unit"]))
        np.testing.assert_allclose(block.values, _oracle_means(ds, range(4)), rtol=1e-6)
        np.testing.assert_array_equal(block.unit_baseline_rate.values, ds.unit_baseline_rate.values)
        np.testing.assert_array_equal(block.n_trials.values[:, 0],
                                      [(ds.condition.values == c).sum() for c in range(4)])
        start += ds.sizes["unit"]
    # compare takes it as condition-averaged input, conditions by value
    rep = as_representation(pooled)
    np.testing.assert_allclose(rep.means.numpy(), pooled.values.astype(float))
    assert rep.conditions.tolist() == [0, 1, 2, 3]


def test_conditions_matched_by_value_not_position(paths):
    sessions = [read_nwb(p, **OPTIONS) for p in paths]
    reference = pseudo_population(sessions)
    rng = np.random.default_rng(1)
    shuffled = list(sessions)
    shuffled[1] = sessions[1].isel(trial=rng.permutation(sessions[1].sizes["trial"]))
    xr.testing.assert_identical(pseudo_population(shuffled), reference)
    # relabelling one session's conditions changes its block (so the test above can fail)
    relabelled = list(sessions)
    relabelled[1] = sessions[1].assign_coords(condition=(sessions[1].condition + 1) % 4)
    assert not np.allclose(pseudo_population(relabelled).values, reference.values)


def test_missing_conditions_error_or_intersect(paths):
    sessions = {f"s{i}": read_nwb(p, **OPTIONS) for i, p in enumerate(paths)}
    sessions["s2"] = sessions["s2"].isel(trial=np.flatnonzero(sessions["s2"].condition.values != 3))
    with pytest.raises(SessionMismatchError, match=r"'s2' lacks \[3\].*conditions='intersect'") as info:
        pseudo_population(sessions)
    assert isinstance(info.value, (NWBLoadError, ValueError)) and "\n" not in str(info.value)
    kept = pseudo_population(sessions, conditions="intersect")
    assert kept.condition.values.tolist() == [0, 1, 2]
    with pytest.raises(MissingDataError, match="condition='target'|per-trial"):
        pseudo_population(sessions, condition="target")
    with pytest.raises(MissingDataError, match="var="):
        pseudo_population(sessions, var="rates")


def test_time_grids_must_agree_or_intersect(paths):
    a = read_nwb(paths[0], **OPTIONS)
    b = read_nwb(paths[1], align_to="go_cue_time", window=(-0.1, 0.5), bin_size=0.05)
    with pytest.raises(SessionMismatchError, match="time='intersect'"):
        pseudo_population([a, b])
    both = pseudo_population([a, b], time="intersect")
    np.testing.assert_allclose(both.time.values, np.arange(-0.075, 0.3, 0.05))
    np.testing.assert_allclose(both.isel(unit=slice(3, None)).values,
                               _oracle_means(b, range(4))[:, 0:8], rtol=1e-6)


def test_stacked_input_gives_the_same_pseudo_population(same_units):
    tree = read_sessions(same_units, **OPTIONS)
    stacked = read_sessions(same_units, layout="stacked", **OPTIONS)
    from_tree, from_stack = pseudo_population(tree), pseudo_population(stacked)
    np.testing.assert_array_equal(from_tree.values, from_stack.values)
    assert from_tree.unit_session.values.tolist() == from_stack.unit_session.values.tolist()


def test_pseudo_trials_pair_real_trials_of_the_same_condition(paths):
    sessions = {f"s{i}": read_nwb(p, **OPTIONS) for i, p in enumerate(paths)}
    pseudo = pseudo_population(sessions, pseudo_trials=2, seed=3)
    assert pseudo.dims == ("trial", "time", "unit") and pseudo.sizes["trial"] == 8
    assert pseudo.condition.values.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for k in range(pseudo.sizes["trial"]):
        for u in range(pseudo.sizes["unit"]):
            ds = sessions[str(pseudo.unit_session.values[u])]
            source = ds.sel(trial=int(pseudo.source_trial.values[k, u]))
            assert source.condition.item() == pseudo.condition.values[k]
            np.testing.assert_array_equal(pseudo.values[k, :, u],
                                          source.spike_count.sel(unit=pseudo.unit_id.values[u]).values)
    xr.testing.assert_identical(pseudo, pseudo_population(sessions, pseudo_trials=2, seed=3))
    assert not pseudo.equals(pseudo_population(sessions, pseudo_trials=2, seed=4))
    fewest = pseudo_population(sessions, pseudo_trials="min")
    assert fewest.sizes["trial"] == 4 * min(int((d.condition == c).sum()) for d in sessions.values() for c in range(4))
    with pytest.raises(SessionMismatchError, match="pseudo_trials='min'"):
        pseudo_population(sessions, pseudo_trials=50)
    assert as_representation(pseudo).has_trials


@pytest.mark.realdata
def test_real_recording_pooled_twice(shared_data_dir):
    path = shared_data_dir / "m1_center_out_chewie.nwb"
    options = dict(series={"binned_spike_counts": "unit"}, resample="sum", bin_size=0.05, window=(0.0, 1.0))
    tree = read_sessions([path, path], **options)
    assert tree.attrs["sessions"] == ["dad-demo-chewie", "dad-demo-chewie-2"]
    pooled = pseudo_population(tree, condition="target", var="binned_spike_counts")
    assert pooled.sizes == {"condition": 4, "time": 20, "unit": 142}
    single = trial_average(read_nwb(path, **options).binned_spike_counts, "target")
    for half in (slice(0, 71), slice(71, 142)):
        np.testing.assert_array_equal(pooled.isel(unit=half).values, single.transpose("target", "time", "unit").values)
