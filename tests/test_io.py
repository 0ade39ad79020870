"""The package's I/O module: atomic writes, netCDF results and open_result."""
import pytest
import xarray as xr

import neurokpflow
from neurokpflow._io import atomic_write as write_atomic
from neurokpflow._io import atomic_write, write_netcdf


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out" / "result.txt"
    write_atomic(target, "first")
    write_atomic(target, b"second")
    assert target.read_text() == "second"

    def failing(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(target, failing)
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.txt"]


def test_atomic_write_options_refuse_overwrite_and_missing_folders(tmp_path):
    target = tmp_path / "x.txt"
    atomic_write(target, "a")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        atomic_write(target, "b", overwrite=False)
    assert target.read_text() == "a"
    with pytest.raises(FileNotFoundError, match="create it first"):
        atomic_write(tmp_path / "missing" / "y.txt", "b", mkdir=False)
    atomic_write(tmp_path / "made" / "y.txt", b"b", fsync=False)
    assert (tmp_path / "made" / "y.txt").read_bytes() == b"b"
    with pytest.raises(TypeError, match="bytes, str or a callable"):
        atomic_write(tmp_path / "z.txt", 3.0)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["x.txt", "y.txt"]


def test_open_result_reopens_netcdf_results_and_sweeps_and_explains_folders(tmp_path):
    ds = xr.Dataset({"score": ("step", [0.1, 0.2])}, coords={"step": [0, 10]}, attrs={"analysis": "collapse"})
    write_netcdf(ds, tmp_path / "collapse.nc")
    xr.testing.assert_identical(neurokpflow.open_result(tmp_path / "collapse.nc"), ds)
    with pytest.raises(ValueError, match="open one of its results"):
        neurokpflow.open_result(tmp_path)
    with pytest.raises(FileNotFoundError):
        neurokpflow.open_result(tmp_path / "nothing.nc")
    (tmp_path / "notes.nc").write_text("not netcdf")
    with pytest.raises(ValueError, match="not a netCDF result"):
        neurokpflow.open_result(tmp_path / "notes.nc")
    from neurokpflow._io import write_zarr_group

    sweep = tmp_path / "sweep_out"
    write_zarr_group(ds, sweep / "sweep.zarr", "combined")
    xr.testing.assert_equal(neurokpflow.open_result(sweep), ds)
