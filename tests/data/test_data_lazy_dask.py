"""Lazy NWB reads under dask.distributed: computed in the driver while a Client runs, and in workers."""
import io
import pickle

import numpy as np
import pytest
import xarray as xr

from neurokpflow.data import read_nwb

OPTIONS = {"bin_size": 0.05, "units_per_chunk": 1}
GRASSHOPPER = "grasshopper_auditory_receptor.nwb"
CHEWIE = "m1_center_out_chewie.nwb"
CHEWIE_OPTIONS = {"bin_size": 0.05, "units": False, "series": {"binned_spike_counts": "unit"}, "units_per_chunk": 16}


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _read_and_compute(path, options):
    with read_nwb(path, lazy=True, **options) as ds:
        return ds.compute()


@pytest.mark.parametrize("name, options", [(GRASSHOPPER, OPTIONS), (CHEWIE, CHEWIE_OPTIONS)])
def test_lazy_read_computes_in_the_driver_while_a_client_runs(client, shared_data_dir, name, options):
    # regression: "TypeError: Could not serialize object of type _HLGExprSequence" once any Client existed
    path = shared_data_dir / name
    eager = read_nwb(path, **options)
    with read_nwb(path, lazy=True, **options) as lazy:
        assert any(type(v.data).__module__.startswith("dask") for v in lazy.data_vars.values())
        xr.testing.assert_identical(lazy.compute(), eager)
        # the tasks ran on the cluster's workers, which reopened the file by its path
        assert client.run(lambda: True)


def test_lazy_read_inside_a_worker_and_shipped_to_one(client, shared_data_dir):
    path = shared_data_dir / CHEWIE
    eager = read_nwb(path, **CHEWIE_OPTIONS)
    inside = client.submit(_read_and_compute, str(path), CHEWIE_OPTIONS).result()
    xr.testing.assert_identical(inside, eager)
    with read_nwb(path, lazy=True, **CHEWIE_OPTIONS) as lazy:
        mean = lazy["binned_spike_counts"].mean("trial")  # a derived lazy array travels too
        shipped = client.submit(lambda a: a.compute(), mean).result()
        xr.testing.assert_identical(shipped, eager["binned_spike_counts"].mean("trial"))


def test_lazy_read_survives_plain_pickle_and_closes(shared_data_dir):
    path = shared_data_dir / GRASSHOPPER
    eager = read_nwb(path, **OPTIONS)
    lazy = read_nwb(path, lazy=True, **OPTIONS)
    copy = pickle.loads(pickle.dumps(lazy))
    copy.close()  # closing a copy closes nothing of the original
    np.testing.assert_array_equal(lazy["spike_count"].values, eager["spike_count"].values)
    lazy.close()
    with pytest.raises(ValueError, match="closed"):  # in this process (a cluster's workers reopen by path)
        lazy["spike_count"].compute(scheduler="sync")


def test_a_lazy_read_of_a_file_object_says_it_cannot_leave_the_process(shared_data_dir):
    with open(shared_data_dir / GRASSHOPPER, "rb") as fh:
        lazy = read_nwb(io.BufferedReader(fh), lazy=True, **OPTIONS)
        try:
            assert np.isfinite(lazy["spike_count"].compute(scheduler="sync").values).any()  # computes here
            with pytest.raises(TypeError, match="cannot be computed in another process"):
                pickle.dumps(lazy)
        finally:
            lazy.close()
