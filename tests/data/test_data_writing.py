"""to_nwb / from_nwb: lossless round trip of the model-activity layout, NWB validity, atomic writes."""
import json

import numpy as np
import pynwb
import pytest
import xarray as xr
from nwbinspector import inspect_nwbfile

from neurokpflow.data import (
    MissingDataError,
    NWBWriteError,
    from_nwb,
    read_nwb,
    synthetic_nwb,
    to_nwb,
)

N_TRIALS, N_STEPS, N_HIDDEN, DT = 6, 30, 8, 0.02
OUTPUTS = ["fixation", "cos", "sin"]


def model_activity():
    """The layout of ``neurokpflow.record(model, batch)``: hidden/output over (trial, time, ·)."""
    rng = np.random.default_rng(0)
    time = np.arange(N_STEPS) * DT
    epoch = np.empty((N_TRIALS, N_STEPS), dtype="<U9")
    epoch[:] = "fixation"
    epoch[:, 5:15] = "stimulus"
    epoch[:, 15:] = "response"
    epoch[::2, 26:] = "pad"  # even trials end early
    hidden = rng.standard_normal((N_TRIALS, N_STEPS, N_HIDDEN)).astype(np.float32)
    output = rng.standard_normal((N_TRIALS, N_STEPS, len(OUTPUTS))).astype(np.float32)
    hidden[epoch == "pad"] = np.nan
    output[epoch == "pad"] = np.nan
    return xr.Dataset(
        {
            "hidden": (("trial", "time", "unit"), hidden),
            "output": (("trial", "time", "output_channel"), output),
        },
        coords={
            "trial": np.arange(N_TRIALS),
            "time": ("time", time, {"units": "s", "long_name": "step start time"}),
            "unit": np.arange(N_HIDDEN),
            "output_channel": OUTPUTS,
            "epoch": (("trial", "time"), epoch),
            "task": ("trial", np.array(["MemoryPro", "DelayAnti", "ReactPro"] * 2)),
            "condition": ("trial", np.arange(N_TRIALS) % 4),
            "stimulus_angle": ("trial", rng.uniform(0, 2 * np.pi, N_TRIALS)),
            "stimulus_on": ("trial", np.full(N_TRIALS, 5)),
        },
        attrs={
            "dt": DT,
            "model_kind": "leaky_rnn",
            "model_config": json.dumps({"hidden_size": N_HIDDEN, "alpha": 0.2}),
            "state_convention": "hidden[:, t] is the state after consuming inputs[:, t]",
        },
    )


def no_critical(path):
    return [m for m in inspect_nwbfile(nwbfile_path=str(path)) if m.importance.name == "CRITICAL"]


def test_model_activity_round_trip_is_lossless_and_valid(tmp_path):
    ds = model_activity()
    before = ds.copy(deep=True)
    path = to_nwb(ds, tmp_path / "activity.nwb")
    xr.testing.assert_identical(from_nwb(path), ds)
    xr.testing.assert_identical(ds, before)  # input untouched
    assert pynwb.validate(path=str(path)) == []
    assert no_critical(path) == []


def test_written_file_is_ordinary_nwb(tmp_path):
    ds = model_activity()
    path = to_nwb(ds, tmp_path / "activity.nwb")
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        trials = nwb.trials.to_dataframe()
        assert trials["task"].tolist() == ds.task.values.tolist()
        np.testing.assert_allclose(np.diff(trials["start_time"]), N_STEPS * DT)
        hidden = nwb.processing["misc"]["hidden"]
        assert hidden.data.shape == (N_TRIALS * N_STEPS, N_HIDDEN) and hidden.rate == pytest.approx(1 / DT)
        epochs = nwb.intervals["epoch"].to_dataframe()
        assert set(epochs["label"]) == {"fixation", "stimulus", "response", "pad"}
        assert epochs.groupby("trial")["n_bins"].sum().tolist() == [N_STEPS] * N_TRIALS
    # a generic reader recovers the values: align to the trial starts, one bin per step
    generic = read_nwb(path, window=(0.0, N_STEPS * DT), bin_size=DT, series=["hidden"], units=False)
    np.testing.assert_array_equal(generic.hidden.values, ds.hidden.values.astype(float))
    np.testing.assert_array_equal(generic.condition.values, ds.condition.values)


def test_irregular_time_bool_data_and_loaded_recording_round_trip(tmp_path):
    ds = model_activity().isel(time=[0, 1, 2, 5, 9, 20])
    ds["reward"] = (("trial", "time"), ds.hidden.isel(unit=0).values > 0)
    ds["readout_weights"] = (("output_channel", "unit"), np.ones((3, N_HIDDEN)))
    path = to_nwb(ds, tmp_path / "irregular.nwb")
    xr.testing.assert_identical(from_nwb(path), ds)
    assert pynwb.validate(path=str(path)) == []
    source = synthetic_nwb(tmp_path / "rec.nwb", n_units=4, n_trials=5)
    recording = read_nwb(source, align_to="go_cue_time", window=(-0.2, 0.2), bin_size=0.05)
    xr.testing.assert_identical(from_nwb(to_nwb(recording, tmp_path / "rec_out.nwb")), recording)


def test_synthetic_file_is_valid(tmp_path):
    path = synthetic_nwb(tmp_path / "synthetic.nwb", n_units=5, n_trials=6, seed=7)
    assert pynwb.validate(path=str(path)) == []
    assert no_critical(path) == []
    with pynwb.NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert len(nwb.units) == 5 and len(nwb.trials) == 6
        assert {"condition", "target_angle", "go_cue_time", "target_on_time"} <= set(nwb.trials.colnames)
        assert len(nwb.get_events_table("go_cue")) == 6


def test_synthetic_is_reproducible(tmp_path):
    a = read_nwb(synthetic_nwb(tmp_path / "a.nwb", seed=5, n_units=3), bin_size=0.05)
    b = read_nwb(synthetic_nwb(tmp_path / "b.nwb", seed=5, n_units=3), bin_size=0.05)
    c = read_nwb(synthetic_nwb(tmp_path / "c.nwb", seed=6, n_units=3), bin_size=0.05)
    xr.testing.assert_equal(a.spike_count, b.spike_count)
    assert not a.spike_count.equals(c.spike_count)


def test_write_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = to_nwb(model_activity(), tmp_path / "a.nwb")
    size = path.stat().st_size
    with pytest.raises(FileExistsError, match="overwrite=True"):
        to_nwb(model_activity(), path)
    bad = model_activity().assign_coords(task=("trial", np.array([None, "a", "b", "c", "d", "e"], dtype=object)))
    with pytest.raises(NWBWriteError, match="task"):
        to_nwb(bad, path, overwrite=True)
    assert path.stat().st_size == size and sorted(p.name for p in tmp_path.iterdir()) == ["a.nwb"]
    to_nwb(model_activity().isel(trial=[0]), path, overwrite=True)
    assert from_nwb(path).sizes["trial"] == 1


def test_bad_layouts_are_refused(tmp_path):
    ds = model_activity()
    with pytest.raises(NWBWriteError, match="'trial' dim"):
        to_nwb(ds.isel(trial=0), tmp_path / "x.nwb")
    with pytest.raises(NWBWriteError, match="name"):
        to_nwb(ds.hidden.rename(None), tmp_path / "x.nwb")
    with pytest.raises(NWBWriteError, match="when.*cannot be written"):
        to_nwb(ds.assign_attrs(when=object()), tmp_path / "x.nwb")
    with pytest.raises(NWBWriteError, match="per-trial"):
        to_nwb(ds.assign_coords(score=(("trial", "unit"), np.zeros((N_TRIALS, N_HIDDEN)))), tmp_path / "x.nwb")
    assert list(tmp_path.iterdir()) == []


def test_from_nwb_on_foreign_file(tmp_path):
    path = synthetic_nwb(tmp_path / "s.nwb", n_units=2, n_trials=2)
    with pytest.raises(MissingDataError, match="read_nwb"):
        from_nwb(path)
