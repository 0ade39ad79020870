"""Sweeps: specification validation, train-or-resume, the dask engine and the combined store."""
import pickle
import time

import numpy as np
import pytest
import torch

from neurokpflow import tasks, training
from neurokpflow.sweep import Sweep, SweepSpecError, load, open_sweep, run_id, run_sweep, train_or_resume
from neurokpflow.training import trainer

TINY = {"task": "memory_pro", "hidden": 8, "steps": 4, "checkpoint_every": 2, "batch_size": 8}


def _tiny(**grid):
    return Sweep(grid={**TINY, **grid}, compute={"collapse_at": [2, 4]})


# ---------------------------------------------------------------- specification
@pytest.mark.parametrize("text, field", [
    ("[grid]\nhiden = 8\n", "grid.hiden"),
    ("[grid]\nhidden = 'eight'\n", "grid.hidden"),
    ("[grid]\nlr = [0.1, 'x']\n", "grid.lr"),
    ("[grid]\ntask = 'no_such_task'\n", "grid.task"),
    ("[compute]\ncollapse_at = [3]\n[grid]\nsteps = 4\ncheckpoint_every = 2\n", "compute.collapse_at"),
    ("[compute]\nfoo = [1]\n", "compute.foo"),
    ("gird = 1\n", "gird"),
    ("threads = 0\n", "threads"),
])
def test_spec_errors_name_the_field_in_one_line(tmp_path, text, field):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SweepSpecError) as info:
        load(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_missing_spec_file(tmp_path):
    with pytest.raises(SweepSpecError, match="does not exist"):
        load(tmp_path / "absent.toml")


def test_toml_equals_python_and_grid_product(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text("threads = 1\n[grid]\ntask = [['memory_pro', 'memory_anti'], 'memory_pro']\n"
                    "hidden = 8\nseed = [0, 1, 2]\nlr = [0.001, 0.01]\n")
    sweep = load(path)
    assert sweep == Sweep(grid={"task": [["memory_pro", "memory_anti"], "memory_pro"], "hidden": 8,
                                "seed": [0, 1, 2], "lr": [0.001, 0.01]}, threads=1)
    runs = sweep.runs()
    assert len(runs) == 2 * 3 * 2
    ids = [run_id(r) for r in runs]
    assert len(set(ids)) == len(ids)
    assert ids == [run_id(r) for r in load(path).runs()]  # same spec, same ids


def test_tasks_survive_plain_pickle():
    # regression: plain pickle failed with "cannot pickle 'mappingproxy'"
    for task in (tasks.make("memory_pro"), tasks.mix(["memory_pro", "memory_anti"])):
        copy = pickle.loads(pickle.dumps(task))
        assert type(copy) is type(task) and copy.spec == task.spec
        a, b = task.sample(4, seed=1), copy.sample(4, seed=1)
        assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)


# ---------------------------------------------------------------- train-or-resume
def test_train_or_resume_after_a_killed_attempt(tmp_path):
    run = _tiny().runs()[0]
    whole = train_or_resume(run, tmp_path / "whole")
    # a killed attempt: checkpoints up to step 2 and a stale temporary file of the log
    part = tmp_path / "part"
    train_or_resume(run, part)
    for ckpt in training.list_checkpoints(part)[1:]:
        ckpt.unlink()
    (part / ".log.nc.tmp-99999").write_bytes(b"partial")
    with pytest.raises(FileExistsError):  # what a plain retry of train() does
        training.train(whole.model, tasks.make("memory_pro"), 4, part, progress=False)
    again = train_or_resume(run, part)
    assert again.step == 4
    for (k, v), (_, w) in zip(whole.model.state_dict().items(), again.model.state_dict().items()):
        assert torch.equal(v, w), k
    assert not list(part.rglob(".*.tmp-*"))


# ---------------------------------------------------------------- engine
def _count_steps(monkeypatch):
    calls = []
    original = trainer._step_seed

    def counting(seed, step, stream):
        if stream == 0:
            calls.append(step)
        return original(seed, step, stream)

    monkeypatch.setattr(trainer, "_step_seed", counting)
    return calls


def _same_numbers(a, b):
    assert list(a.run.values) == list(b.run.values)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


def test_sweep_on_a_local_cluster_equals_inline(tmp_path):
    sweep = _tiny(seed=[0, 1], lr=[1e-3, 1e-2])
    ds = run_sweep(sweep, tmp_path / "dask", n_workers=2, progress=False)
    opened = open_sweep(tmp_path / "dask")
    assert opened.sizes["run"] == 4 and opened.sizes["step"] == 4 and opened.sizes["collapse_step"] == 2
    assert list(opened.run.values) == [run_id(r) for r in sweep.runs()]
    assert sorted(set(opened.seed.values.tolist())) == [0, 1]
    assert sorted(set(opened.lr.values.tolist())) == [1e-3, 1e-2]
    assert set(opened.status.values.tolist()) == {"done"}
    assert set(opened.threads.values.tolist()) == {1}
    assert opened.effective_rank.dims[:2] == ("run", "collapse_step")
    assert "torch" in opened.attrs["versions"]
    _same_numbers(ds, opened)
    serial = run_sweep(sweep, tmp_path / "inline", scheduler="inline", progress=False)
    _same_numbers(opened, serial)


def test_rerun_skips_finished_runs_and_resumes_unfinished_ones(tmp_path, monkeypatch):
    import zarr

    sweep = _tiny(seed=[0, 1])
    calls = _count_steps(monkeypatch)
    first = run_sweep(sweep, tmp_path, scheduler="inline", progress=False)
    assert len(calls) == 2 * 4
    calls.clear()
    run_sweep(sweep, tmp_path, scheduler="inline", progress=False)
    assert calls == []  # nothing retrained
    # interrupt one run after its first checkpoint: no result group, checkpoints up to step 2
    rid = run_id(sweep.runs()[1])
    del zarr.open_group(str(tmp_path / "sweep.zarr"), mode="a")["runs"][rid]
    for ckpt in training.list_checkpoints(tmp_path / "runs" / rid)[1:]:
        ckpt.unlink()
    again = run_sweep(sweep, tmp_path, scheduler="inline", progress=False)
    assert calls == [2, 3]  # only the missing steps of the interrupted run
    _same_numbers(first, again)


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    sweep = Sweep(grid={**TINY, "optimizer": "sgd", "lr": [1e-3, 1e12]})
    ds = run_sweep(sweep, tmp_path, scheduler="inline")
    status = dict(zip(ds.lr.values.tolist(), ds.status.values.tolist()))
    assert status == {1e-3: "done", 1e12: "failed"}
    errors = ds.error.values.tolist()
    assert errors[0] == "" and "diverged" in errors[1]
    assert np.all(np.isfinite(ds.loss.sel(run=ds.run[0]).values))
    assert "1 of 2 run(s) failed" in capsys.readouterr().err


def test_cli_sweep(tmp_path, capsys):
    from neurokpflow.cli.main import main

    spec = tmp_path / "spec.toml"
    spec.write_text("[grid]\ntask = 'memory_pro'\nhidden = 8\nsteps = 2\ncheckpoint_every = 2\nbatch_size = 8\n"
                    "seed = [0, 1]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", "inline", "-q"]) == 0
    assert open_sweep(tmp_path / "out").sizes["run"] == 2
    spec.write_text("[grid]\nseed = 'zero'\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and "grid.seed" in err[0]
    assert not (tmp_path / "bad").exists()  # nothing ran


def test_a_killed_worker_is_retried_and_the_sweep_is_bitwise_unchanged(tmp_path):
    import os
    import signal
    import threading

    from dask.distributed import Client, LocalCluster

    sweep = Sweep(grid={**TINY, "steps": 40, "checkpoint_every": 5, "seed": [0, 1]})
    reference = run_sweep(sweep, tmp_path / "inline", scheduler="inline", progress=False)
    out = tmp_path / "dask"
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        pids = list(client.run(os.getpid).values())

        def kill_when_a_run_has_a_checkpoint():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                for ckpt in out.glob("runs/*/checkpoints/step_*.pt"):
                    if not (ckpt.parent.parent / "log.nc").exists() or len(list(ckpt.parent.iterdir())) < 8:
                        os.kill(pids[0], signal.SIGKILL)
                        killed.append(ckpt)
                        return
                time.sleep(0.02)

        watcher = threading.Thread(target=kill_when_a_run_has_a_checkpoint)
        watcher.start()
        ds = run_sweep(sweep, out, scheduler=cluster.scheduler_address, progress=False)
        watcher.join()
    assert killed, "no worker was killed mid-run"
    assert set(ds.status.values.tolist()) == {"done"}
    _same_numbers(reference, ds)
    assert not list(out.rglob(".*.tmp-*"))
