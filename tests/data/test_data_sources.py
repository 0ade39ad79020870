"""Where NWB data live: HDF5 paths, NWB-Zarr stores, file objects, streamed URLs (with and without an
on-disk cache) and DANDI assets, each read through the same ``read_nwb`` and compared with the local read.

Remote reads go to a real HTTP server on 127.0.0.1 that honours Range requests (``local_http``); the
DANDI API is emulated on it with the endpoints the resolution calls.
"""
import hashlib
import io
import sys

import h5py
import numpy as np
import pytest
import xarray as xr

from neurokpflow.data import (
    DandiAsset,
    DatasetNotFoundError,
    DownloadError,
    MissingExtraError,
    NWBFileError,
    Source,
    describe_nwb,
    open_nwb,
    read_nwb,
    synthetic_nwb,
)
from neurokpflow.data.sources import http_url

from local_http import ASSET_PATH, DANDISET, VERSION, emulate_dandi, http_server  # noqa: F401  (fixture)

SYNTH = dict(align_to="go_cue_time", bin_size=0.02, series={"hand_velocity": "axis"})


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory):
    return synthetic_nwb(tmp_path_factory.mktemp("nwb") / "synthetic.nwb", n_units=6, n_trials=10, seed=3)


def assert_same_read(remote: xr.Dataset, local: xr.Dataset, label: str):
    """Identical data, coords and variable attrs; dataset attrs equal except ``nwb_file`` (the source)."""
    xr.testing.assert_identical(remote.drop_attrs(deep=False), local.drop_attrs(deep=False))
    assert remote.attrs["nwb_file"] == label
    assert {k: v for k, v in remote.attrs.items() if k != "nwb_file"} == {
        k: v for k, v in local.attrs.items() if k != "nwb_file"
    }


def test_url_read_equals_local_read(http_server, synthetic_file):
    url = http_server.serve("/data/synthetic.nwb", synthetic_file)
    assert_same_read(read_nwb(url, **SYNTH), read_nwb(synthetic_file, **SYNTH), url)
    assert all(method in ("HEAD", "GET") for method, _, _ in http_server.log)


@pytest.mark.realdata
def test_corpus_file_streamed_equals_local_read(http_server, shared_data_dir):
    path = shared_data_dir / "grasshopper_auditory_receptor.nwb"
    url = http_server.serve("/grasshopper.nwb", path)
    options = dict(bin_size=0.01, window=(0.0, 1.0))
    assert_same_read(read_nwb(url, **options), read_nwb(path, **options), url)
    # the local description names the resolved path (../shared may be a relative path or a symlink)
    assert str(describe_nwb(url)) == str(describe_nwb(path)).replace(str(path.resolve()), url)


@pytest.mark.realdata
def test_streaming_fetches_byte_ranges_not_the_whole_file(http_server, shared_data_dir):
    # the file is mostly two 20 kHz stimulus series that a spikes-only read never touches
    path = shared_data_dir / "grasshopper_auditory_receptor.nwb"
    url = http_server.serve("/grasshopper.nwb", path)
    ds = read_nwb(Source(url, block_size=2**14), bin_size=0.01, window=(0.0, 1.0))
    assert float(ds.spike_count.sum()) == 1797
    gets = [rng for method, _, rng in http_server.log if method == "GET"]
    assert gets and all(rng and rng.startswith("bytes=") for rng in gets)
    assert http_server.bytes_sent < path.stat().st_size / 4


def test_disk_cache_serves_the_second_read_without_requests(http_server, synthetic_file, tmp_path):
    url = http_server.serve("/data/synthetic.nwb", synthetic_file)
    first = read_nwb(Source(url, cache=tmp_path / "cache"), **SYNTH)
    assert any(method == "GET" for method, _, _ in http_server.log)
    assert any((tmp_path / "cache").iterdir())
    http_server.log.clear()
    second = read_nwb(Source(url, cache=tmp_path / "cache"), **SYNTH)
    assert http_server.log == []
    xr.testing.assert_identical(first, second)


def test_remote_errors_are_typed(http_server, synthetic_file):
    with pytest.raises(NWBFileError, match="not found"):
        read_nwb(http_server.url + "/missing.nwb")
    dead = http_server.url
    http_server.shutdown()
    http_server.server_close()
    with pytest.raises(DownloadError, match="cannot stream"):
        read_nwb(dead + "/data/synthetic.nwb")


def test_s3_urls_are_read_anonymously_over_https():
    assert http_url("s3://dandiarchive/blobs/abc/def") == "https://dandiarchive.s3.amazonaws.com/blobs/abc/def"
    assert http_url("https://example.org/a.nwb") == "https://example.org/a.nwb"


def test_file_objects_are_read_left_open_and_at_their_position(synthetic_file):
    local = read_nwb(synthetic_file, **SYNTH)
    with open(synthetic_file, "rb") as handle:
        handle.seek(17)
        assert_same_read(read_nwb(handle, **SYNTH), local, str(synthetic_file))
        assert not handle.closed and handle.tell() == 17
    buffer = io.BytesIO(synthetic_file.read_bytes())
    assert_same_read(read_nwb(buffer, **SYNTH), local, "<file object>")
    assert buffer.tell() == 0


def test_file_object_that_is_not_nwb(tmp_path):
    with pytest.raises(NWBFileError, match="not an HDF5 file"):
        read_nwb(io.BytesIO(b"plain text, not HDF5" * 100))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5["x"] = np.arange(3)
    with pytest.raises(NWBFileError, match="HDF5 but not NWB"):
        read_nwb(buffer)


def test_zarr_store_reads_like_its_hdf5_original(synthetic_file, tmp_path):
    import pynwb
    from hdmf_zarr import NWBZarrIO

    store = tmp_path / "synthetic.nwb.zarr"
    with pynwb.NWBHDF5IO(str(synthetic_file), "r") as source, NWBZarrIO(str(store), "w") as target:
        target.export(src_io=source, write_args={"link_data": False})
    assert_same_read(read_nwb(store, **SYNTH), read_nwb(synthetic_file, **SYNTH), str(store.resolve()))


@pytest.mark.realdata
def test_corpus_zarr_store_equals_what_hdmf_zarr_reads(shared_data_dir):
    from hdmf_zarr import NWBZarrIO

    store = shared_data_dir / "nwb-corpus" / "zarr_timeseries_tutorial_pynwb.nwb.zarr"
    with NWBZarrIO(str(store), mode="r") as zio:
        direct = zio.read().acquisition["synthetic_timeseries"]
        expected = (np.asarray(direct.data[:]), direct.rate, direct.unit)
    with open_nwb(store) as nwbfile:
        series = nwbfile.acquisition["synthetic_timeseries"]
        np.testing.assert_array_equal(series.data[:], expected[0])
        assert (series.rate, series.unit) == expected[1:]
    assert "synthetic_timeseries (TimeSeries) shape (100, 100)" in str(describe_nwb(store))


@pytest.mark.parametrize(
    "module, extra, source",
    [("hdmf_zarr", "zarr", "zarr"), ("fsspec", "streaming", "url"), ("requests", "dandi", "dandi")],
)
def test_missing_extra_names_the_install(monkeypatch, tmp_path, module, extra, source):
    store = tmp_path / "x.nwb.zarr"
    store.mkdir()
    (store / ".zgroup").write_text("{}")
    sources = {"zarr": store, "url": "https://example.org/x.nwb", "dandi": DandiAsset("140", "a.nwb")}
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingExtraError) as info:
        read_nwb(sources[source])
    message = str(info.value)
    assert message.endswith(f"install neurokpflow[{extra}]") and "\n" not in message
    assert isinstance(info.value, ImportError)


# --------------------------------------------------------------------------- DANDI (emulated API)
@pytest.mark.parametrize("direct", [True, False], ids=["direct-content-url", "via-download-redirect"])
def test_dandi_asset_resolves_and_streams(http_server, synthetic_file, direct):
    api, blob = emulate_dandi(http_server, synthetic_file, direct=direct)
    asset = DandiAsset("DANDI:140", ASSET_PATH, version=VERSION, api_url=api)
    record = asset.resolve()
    assert record["url"] == (blob if direct else f"{api}/assets/{record['asset_id']}/download/")
    assert record["sha256"] == hashlib.sha256(synthetic_file.read_bytes()).hexdigest()
    label = f"DANDI:{DANDISET}/{VERSION}:{ASSET_PATH}"
    assert_same_read(read_nwb(asset, **SYNTH), read_nwb(synthetic_file, **SYNTH), label)


def test_dandi_api_url_from_the_environment(http_server, synthetic_file, monkeypatch):
    api, _ = emulate_dandi(http_server, synthetic_file)
    monkeypatch.setenv("NEUROKPFLOW_DANDI_API", api)
    assert DandiAsset(DANDISET, ASSET_PATH, version=VERSION).resolve()["size"] == synthetic_file.stat().st_size


def test_dandi_errors_are_typed(http_server, synthetic_file):
    api, _ = emulate_dandi(http_server, synthetic_file)
    with pytest.raises(DatasetNotFoundError, match="no asset at this path"):
        DandiAsset(DANDISET, "sub-X/other.nwb", version=VERSION, api_url=api).resolve()
    with pytest.raises(DatasetNotFoundError, match="no dandiset 000140 version '9.9'"):
        DandiAsset(DANDISET, ASSET_PATH, version="9.9", api_url=api).resolve()
    with pytest.raises(NWBFileError, match="6-digit id"):
        DandiAsset("mc-maze", ASSET_PATH)
    http_server.shutdown()
    http_server.server_close()
    with pytest.raises(DownloadError, match="cannot reach the DANDI API"):
        DandiAsset(DANDISET, ASSET_PATH, version=VERSION, api_url=api).resolve()
