"""The real recordings in ../shared/data (skipped when absent) and the dataset registry."""
import numpy as np
import pytest

from neurokpflow.data import (
    DATASETS,
    BinningError,
    DatasetNotFoundError,
    MissingTrialsError,
    counts_to_rates,
    dataset_path,
    describe_nwb,
    list_datasets,
    load_dataset,
    read_nwb,
    trial_average,
)

@pytest.mark.realdata
def test_m1_center_out_condition_average(shared_data_dir):
    ds = load_dataset("m1_center_out", data_dir=shared_data_dir)
    assert ds.spike_count.dims == ("trial", "time", "unit") and ds.sizes["trial"] == 93
    average = trial_average(ds.spike_count, "target")
    assert average.dims == ("target", "time", "unit")
    assert average.shape == (4, ds.sizes["time"], 71)
    assert average.target.values.tolist() == [0, 1, 2, 3] and average.n_trials.sum() == 93
    # every stored count inside a trial comes back exactly once (trials tile the recording)
    summary = describe_nwb(dataset_path("m1_center_out", shared_data_dir))
    (counts_info,) = [s for s in summary.series if s.path.endswith("binned_spike_counts")]
    assert counts_info.shape == (3018, 71)
    assert float(ds.spike_count.sum()) == float(_raw_counts_inside_trials(shared_data_dir))
    assert ds.hand_velocity.dims == ("trial", "time", "axis") and ds.axis.values.tolist() == ["x", "y"]
    assert set(np.unique(ds.split.values)) == {"train", "test"}


def _raw_counts_inside_trials(folder):
    import pynwb

    with pynwb.NWBHDF5IO(str(folder / "m1_center_out_chewie.nwb"), "r") as io:
        nwb = io.read()
        data = nwb.processing["ecephys"]["binned_spike_counts"].data[:]
        start, stop = nwb.trials["start_time"].data[:], nwb.trials["stop_time"].data[:]
    index = np.arange(data.shape[0]) * 0.05
    inside = ((index[:, None] >= start[None] - 1e-9) & (index[:, None] + 0.05 <= stop[None] + 1e-9)).any(axis=1)
    return data[inside].astype(np.int64).sum()


@pytest.mark.realdata
def test_m1_coarser_bins_sum_the_stored_counts(shared_data_dir):
    fine = load_dataset("m1_center_out", data_dir=shared_data_dir, window=(0.0, 1.0))
    coarse = load_dataset("m1_center_out", data_dir=shared_data_dir, window=(0.0, 1.0), bin_size=0.1)
    summed = fine.spike_count.coarsen(time=2).reduce(np.sum)  # NaN propagates
    np.testing.assert_array_equal(coarse.spike_count.values, summed.values)
    with pytest.raises(BinningError, match="multiple of 0.05"):
        load_dataset("m1_center_out", data_dir=shared_data_dir, bin_size=0.07)


@pytest.mark.realdata
def test_grasshopper_mean_rates(shared_data_dir):
    ds = load_dataset("grasshopper_auditory_receptor", data_dir=shared_data_dir)
    rates = trial_average(counts_to_rates(ds.spike_count), "condition").mean(["time", "unit"])
    np.testing.assert_allclose(rates.sel(condition=["co200", "co800"]).values, [92.9, 86.8], atol=1e-9)
    assert ds.unit.size == 1 and bool(ds.observed.all())
    assert ds.spike_count.sum() == 1797


@pytest.mark.realdata
def test_postsubiculum_has_no_trials(shared_data_dir):
    path = dataset_path("mouse_postsubiculum", shared_data_dir)
    with pytest.raises(MissingTrialsError, match=r"\['epochs'\].*intervals='epochs'"):
        read_nwb(path, intervals="trials", window=(0.0, 1.0), bin_size=0.1)
    ds = load_dataset("mouse_postsubiculum", data_dir=shared_data_dir)
    assert ds.sizes["trial"] == 1 and ds.tags.values.tolist() == ["wake"]
    assert ds.unit.values.tolist() == [6, 191, 206] and ds.unit_electrode_group.values.tolist() == ["group0_psb"] * 3
    summary = describe_nwb(path)
    assert summary.units.n_spikes == 21354 and summary.units.n_units == 3
    assert float(ds.spike_count.sum()) <= 21354  # the last partial bin of the epoch is masked


def test_registry_lists_every_dataset_and_explains_missing_files(tmp_path, monkeypatch):
    assert set(list_datasets()) == set(DATASETS) >= {"m1_center_out", "grasshopper_auditory_receptor", "mouse_postsubiculum", "synthetic"}
    monkeypatch.setenv("NEUROKPFLOW_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    info = DATASETS["m1_center_out"]
    try:
        found = dataset_path("m1_center_out", data_dir=tmp_path, download_missing=False)
    except DatasetNotFoundError as err:
        assert "NEUROKPFLOW_DATA" in str(err) and str(tmp_path) in str(err)
    else:  # the repository-relative folder exists on this machine
        assert found.name == info.filename
    with pytest.raises(KeyError, match="registered"):
        load_dataset("nope")
    synthetic = load_dataset("synthetic", n_units=3, n_trials=4, seed=1)
    assert synthetic.spike_count.shape[::2] == (4, 3) and synthetic.attrs["alignment"] == "go_cue_time"
