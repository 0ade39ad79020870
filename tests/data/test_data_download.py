"""``load_dataset`` / ``dataset_path`` download named datasets on first use, end to end against a real
HTTP server on 127.0.0.1: from a mirror (``base_url`` / ``$NEUROKPFLOW_DATA_URL``), from an emulated
DANDI API, and from the original publication's file (converted to NWB).  Checksums are enforced and a
failed download leaves nothing in the cache.
"""
import dataclasses
import hashlib
import sys

import numpy as np
import pytest
import xarray as xr

from neurokpflow.data import (
    DATASETS,
    ChecksumError,
    DatasetNotFoundError,
    DownloadError,
    MissingExtraError,
    dataset_path,
    load_dataset,
    registry,
    synthetic_nwb,
)

from local_http import ASSET_PATH, emulate_dandi, http_server  # noqa: F401  (fixture)

GRASSHOPPER = "grasshopper_auditory_receptor.nwb"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fresh_machine(tmp_path, monkeypatch):
    """No local copies anywhere: an empty cache, no $NEUROKPFLOW_DATA, no ../shared/data."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NEUROKPFLOW_CACHE", str(cache))
    monkeypatch.delenv("NEUROKPFLOW_DATA", raising=False)
    monkeypatch.delenv("NEUROKPFLOW_DATA_URL", raising=False)
    monkeypatch.delenv("NEUROKPFLOW_DANDI_API", raising=False)
    monkeypatch.setattr(registry, "_shared_dirs", lambda: [])
    return cache


def cache_listing(cache):
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


@pytest.mark.realdata
def test_mirror_download_end_to_end(http_server, shared_data_dir, fresh_machine, monkeypatch):
    http_server.serve(f"/mirror/{GRASSHOPPER}", shared_data_dir / GRASSHOPPER)
    downloaded = load_dataset("grasshopper_auditory_receptor", base_url=http_server.url + "/mirror")
    local = load_dataset("grasshopper_auditory_receptor", data_dir=shared_data_dir)
    xr.testing.assert_identical(downloaded.drop_attrs(deep=False), local.drop_attrs(deep=False))
    assert downloaded.attrs["nwb_file"] == str(fresh_machine / GRASSHOPPER)
    assert sha256(fresh_machine / GRASSHOPPER) == DATASETS["grasshopper_auditory_receptor"].sha256
    assert cache_listing(fresh_machine) == [GRASSHOPPER]
    # second use: found in the cache, no request; the environment variable works like the argument
    http_server.log.clear()
    monkeypatch.setenv("NEUROKPFLOW_DATA_URL", http_server.url + "/mirror")
    assert dataset_path("grasshopper_auditory_receptor") == fresh_machine / GRASSHOPPER
    assert http_server.log == []


@pytest.mark.realdata
def test_checksum_failure_leaves_no_file(http_server, shared_data_dir, fresh_machine):
    # the mirror holds another file under the registered name
    http_server.serve(f"/mirror/{GRASSHOPPER}", shared_data_dir / "mouse_postsubiculum_A8604-211122.nwb")
    with pytest.raises(ChecksumError, match="does not have the pinned SHA-256") as info:
        dataset_path("grasshopper_auditory_receptor", base_url=http_server.url + "/mirror")
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert any(method == "GET" for method, _, _ in http_server.log)  # it was downloaded, then discarded
    assert cache_listing(fresh_machine) == []


def test_offline_and_missing_files_raise_typed_errors(http_server, fresh_machine):
    with pytest.raises(DownloadError, match="HTTP 404"):
        dataset_path("grasshopper_auditory_receptor", base_url=http_server.url + "/empty")
    dead = http_server.url
    http_server.shutdown()
    http_server.server_close()
    with pytest.raises(DownloadError, match="offline") as info:
        dataset_path("grasshopper_auditory_receptor", base_url=dead)
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(DatasetNotFoundError, match="not found in"):
        dataset_path("grasshopper_auditory_receptor", download_missing=False)
    assert cache_listing(fresh_machine) == []


def test_dandi_dataset_downloads_through_the_archive_api(http_server, fresh_machine, tmp_path, monkeypatch):
    stand_in = synthetic_nwb(tmp_path / "stand_in.nwb", n_units=3, n_trials=4, seed=0)
    entry = dataclasses.replace(DATASETS["mc_maze_small"],
                                dandi=dataclasses.replace(DATASETS["mc_maze_small"].dandi, path=ASSET_PATH))
    monkeypatch.setitem(DATASETS, "mc_maze_small", entry)
    api, _ = emulate_dandi(http_server, stand_in)
    monkeypatch.setenv("NEUROKPFLOW_DANDI_API", api)
    path = dataset_path("mc_maze_small")
    assert path == fresh_machine / entry.filename and sha256(path) == sha256(stand_in)


def test_dandi_digest_mismatch_keeps_nothing(http_server, fresh_machine, tmp_path, monkeypatch):
    stand_in = synthetic_nwb(tmp_path / "stand_in.nwb", n_units=3, n_trials=4, seed=0)
    entry = dataclasses.replace(DATASETS["dmfc_rsg"],
                                dandi=dataclasses.replace(DATASETS["dmfc_rsg"].dandi, dandiset="000140",
                                                          version="0.220113.0408", path=ASSET_PATH))
    monkeypatch.setitem(DATASETS, "dmfc_rsg", entry)
    api, _ = emulate_dandi(http_server, stand_in, digest="0" * 64)
    monkeypatch.setenv("NEUROKPFLOW_DANDI_API", api)
    with pytest.raises(ChecksumError):
        dataset_path("dmfc_rsg")
    assert cache_listing(fresh_machine) == []


def test_registered_dandi_assets_are_pinned():
    for name in ("mc_maze_small", "dmfc_rsg"):
        asset = DATASETS[name].dandi
        assert asset.version[0].isdigit() and asset.version != "draft", name
        assert asset.path.endswith(DATASETS[name].filename)


@pytest.mark.realdata
def test_m1_is_rebuilt_from_its_public_source(http_server, shared_data_dir, fresh_machine, tmp_path,
                                              monkeypatch):
    """The KordingLab/DAD .mat layout, served and converted on first use, loads exactly like the shared file."""
    import pynwb
    from scipy.io import savemat

    with pynwb.NWBHDF5IO(str(shared_data_dir / "m1_center_out_chewie.nwb"), "r") as io:
        nwb = io.read()
        counts = nwb.processing["ecephys"]["binned_spike_counts"].data[:]
        velocity = nwb.processing["behavior"]["hand_velocity"].data[:]
        trials = nwb.trials.to_dataframe()
    labels = np.zeros(len(counts), np.uint8)
    for row in trials.itertuples():
        labels[round(row.start_time / 0.05):round(row.stop_time / 0.05)] = row.target
    n_train = round(trials.stop_time[trials.split == "train"].max() / 0.05)
    mat = tmp_path / "chewie_demo.mat"
    savemat(mat, {"Ytr": counts[:n_train], "Yte": counts[n_train:], "Xtr": velocity[:n_train],
                  "Xte": velocity[n_train:], "Ttr": labels[:n_train, None], "Tte": labels[n_train:, None]})
    serve_public_source(http_server, monkeypatch, "m1_center_out", [mat])

    assert_rebuilt_like_shared("m1_center_out", shared_data_dir)
    assert cache_listing(fresh_machine) == ["chewie_demo.mat", "m1_center_out_chewie.nwb"]


@pytest.mark.realdata
def test_grasshopper_is_rebuilt_from_nitime_sample_files(http_server, shared_data_dir, fresh_machine, tmp_path,
                                                         monkeypatch):
    """nitime's text files (times in µs, stimulus every 50 µs), served and converted on first use."""
    import pynwb

    with pynwb.NWBHDF5IO(str(shared_data_dir / GRASSHOPPER), "r") as io:
        nwb = io.read()
        spikes = nwb.units["spike_times"][0]
        stimuli = [nwb.stimulus[f"sound_pressure_{k}"].data[:] for k in (1, 2)]
    header = "repro call number: 0\nmode: 3"
    files = [tmp_path / f"grasshopper_spike_times{k}.txt" for k in (1, 2)]
    np.savetxt(files[0], np.round(spikes[spikes < 11] * 1e6), fmt="%.0f", header=header)
    np.savetxt(files[1], np.round((spikes[spikes > 11] - 12) * 1e6), fmt="%.0f", header=header)
    for k, stimulus in enumerate(stimuli, 1):
        files.append(tmp_path / f"grasshopper_stimulus{k}.txt")
        np.savetxt(files[-1], np.c_[np.arange(len(stimulus)) * 50, stimulus], fmt=("%d", "%.9g"), header=header)
    serve_public_source(http_server, monkeypatch, "grasshopper_auditory_receptor", files)

    assert_rebuilt_like_shared("grasshopper_auditory_receptor", shared_data_dir,
                               series=["sound_pressure_1", "sound_pressure_2"])
    assert cache_listing(fresh_machine) == sorted([f.name for f in files] + [GRASSHOPPER])


def serve_public_source(server, monkeypatch, name, files):
    """Point the entry's published files at copies served locally (same names, their own SHA-256)."""
    public = DATASETS[name].public
    assert [f.filename for f in public.files] == [f.name for f in files]
    served = tuple(dataclasses.replace(f, url=server.serve(f"/published/{f.filename}", path), sha256=sha256(path))
                   for f, path in zip(public.files, files))
    entry = dataclasses.replace(DATASETS[name], public=dataclasses.replace(public, files=served))
    monkeypatch.setitem(DATASETS, name, entry)


def assert_rebuilt_like_shared(name, shared_data_dir, **options):
    rebuilt = load_dataset(name, **options)
    local = load_dataset(name, data_dir=shared_data_dir, **options)
    # a new file: new NWB object ids and a new path; everything else identical
    for ds in (rebuilt, local):
        for variable in ds.variables:
            ds[variable].attrs.pop("nwb_object_id", None)
    xr.testing.assert_identical(rebuilt.drop_attrs(deep=False), local.drop_attrs(deep=False))
    assert rebuilt.attrs["nwb_identifier"] == local.attrs["nwb_identifier"]


def test_without_pooch_the_error_names_the_extra(monkeypatch, fresh_machine):
    monkeypatch.setitem(sys.modules, "pooch", None)
    with pytest.raises(MissingExtraError) as info:
        dataset_path("grasshopper_auditory_receptor", base_url="http://127.0.0.1:9")
    assert str(info.value).endswith("install neurokpflow[download]")


@pytest.mark.parametrize("name, event", [("mc_maze_small", "move_onset_time"), ("dmfc_rsg", "set_time")])
def test_registered_defaults_read_a_file_with_that_layout(name, event):
    """The entry's default options (event, window, bin size) form a valid read of a trials table with that event."""
    from neurokpflow.data import read_nwb, synthetic_nwbfile

    nwbfile = synthetic_nwbfile(n_units=4, n_trials=6, seed=1)
    go = nwbfile.trials["go_cue_time"].data[:]
    nwbfile.trials.add_column(event, "stand-in event", data=list(go))
    defaults = DATASETS[name].defaults
    ds = read_nwb(nwbfile, **defaults)
    start, stop = defaults["window"]
    assert ds.sizes["time"] == round((stop - start) / defaults["bin_size"])
    assert ds.attrs["alignment"] == event
