"""Sweeps: specification validation, train-or-resume, the dask engine and the combined store."""
import pickle
import time

import numpy as np
import pytest
import torch

from neurokpflow import tasks, training
from neurokpflow.sweep import Sweep, SweepSpecError, load, open_sweep, run_id, run_sweep, train_or_resume
from neurokpflow.training import trainer

from local_http import http_server  # noqa: F401  (fixture)

TINY = {"task": "memory_pro", "hidden": 8, "steps": 4, "checkpoint_every": 2, "batch_size": 8}
CHEWIE = "m1_center_out_chewie.nwb"


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
    ("device = 'tpu'\n", "device"),
    ("[compute]\nsubtask_at = [0]\n", "compute.subtask_at"),                # a single task is not a mix
    ("[compute]\nmeasures = ['cka', 'nope']\n", "compute.measures"),
    ("[compute]\nstats = 'bootstrap'\n", "compute.stats"),
    ("[compute]\nn_boot = 1.5\n", "compute.n_boot"),
    ("[compute]\ncompare_at = [0]\n", "compute.compare_at"),                 # nothing to compare with
    ("[recordings.a]\npath = 'absent.nwb'\n[compute]\ncompare_at = [0]\n", "recordings.a.path"),
    ("[recordings.a]\npth = 'x.nwb'\n[compute]\ncompare_at = [0]\n", "recordings.a.pth"),
    ("[recordings.a]\npath = 'x.nwb'\nbin_size = '50ms'\n[compute]\ncompare_at = [0]\n", "recordings.a.bin_size"),
    ("[recordings]\na = 3\n[compute]\ncompare_at = [0]\n", "recordings.a"),
    ("[recordings]\na = 'x.nwb'\n", "recordings"),                          # no compare_at checkpoints
])
def test_spec_errors_name_the_field_in_one_line(tmp_path, text, field):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    with pytest.raises(SweepSpecError) as info:
        load(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert field in message and "\n" not in message


def test_recording_paths_are_relative_to_the_spec_file(tmp_path, shared_data_dir):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "rec.nwb").symlink_to(shared_data_dir / CHEWIE)
    path = tmp_path / "sub" / "spec.toml"
    path.write_text("[recordings]\nchewie = 'rec.nwb'\n[compute]\ncompare_at = [0]\n")
    options = load(path).recording_options()["chewie"]
    assert options["path"] == str(tmp_path / "sub" / "rec.nwb") and options["condition"] == "condition"


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


def test_sweep_on_a_local_cluster_equals_inline(tmp_path, shared_data_dir):
    # the workers get the recording's path only and read it themselves
    sweep = Sweep(grid={**TINY, "seed": [0, 1], "lr": [1e-3, 1e-2]},
                  compute={"collapse_at": [2, 4], "compare_at": [0, 4]},
                  recordings={"chewie": {"path": str(shared_data_dir / CHEWIE), "condition": "target"}})
    ds = run_sweep(sweep, tmp_path / "dask", n_workers=2, progress=False)
    opened = open_sweep(tmp_path / "dask")
    assert opened.sizes["run"] == 4 and opened.sizes["step"] == 4 and opened.sizes["collapse_step"] == 2
    assert list(opened.run.values) == [run_id(r) for r in sweep.runs()]
    assert sorted(set(opened.seed.values.tolist())) == [0, 1]
    assert sorted(set(opened.lr.values.tolist())) == [1e-3, 1e-2]
    assert set(opened.status.values.tolist()) == {"done"}
    assert set(opened.threads.values.tolist()) == {1}
    assert opened.effective_rank.dims[:2] == ("run", "collapse_step")
    assert opened.score.dims == ("run", "session", "measure", "compare_step")
    assert np.isfinite(opened.score.values).all()
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


def test_cli_sweep_with_a_missing_or_unusable_recording_fails_before_any_run(tmp_path, capsys, shared_data_dir):
    from neurokpflow.cli.main import main

    spec = tmp_path / "spec.toml"
    base = "[grid]\nhidden = 8\nsteps = 2\ncheckpoint_every = 2\n[compute]\ncompare_at = [2]\n"
    cases = {"missing": (tmp_path / "absent.nwb", "recordings.rec.path"),
             # a real file without a trials table: read in the driver before any run, rejected in one line
             "no trials": (shared_data_dir / "mouse_postsubiculum_A8604-211122.nwb", "no trials table")}
    for label, (recording, expected) in cases.items():
        spec.write_text(base + f"[recordings.rec]\npath = '{recording}'\n")
        assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", "inline"]) == 2, label
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and expected in err[0] and "recordings.rec" in err[0], (label, err)
        assert not (tmp_path / "out").exists(), label  # nothing ran


def test_comparisons_land_in_the_store_with_session_and_measure_dims(tmp_path, shared_data_dir, http_server):
    from neurokpflow.data import load_recording
    from neurokpflow.models import model_activity
    from neurokpflow.compare import compare

    # the second session is the same file served over HTTP (Range requests on 127.0.0.1): read by URL
    http_server.serve(f"/{CHEWIE}", shared_data_dir / CHEWIE)
    recordings = {"local": {"path": str(shared_data_dir / CHEWIE), "condition": "target"},
                  "remote": {"path": f"{http_server.url}/{CHEWIE}", "condition": "target", "bin_size": 0.1}}
    sweep = Sweep(grid={**TINY, "seed": [0, 1], "lr": [1e-3, 1e-2]},
                  compute={"compare_at": [0, 4], "measures": ["cka", "procrustes"]}, recordings=recordings)
    run_sweep(sweep, tmp_path, scheduler="inline", progress=False)
    ds = open_sweep(tmp_path)
    assert ds.score.dims == ("run", "session", "measure", "compare_step")
    assert list(ds.session.values) == ["local", "remote"] and list(ds.measure.values) == ["cka", "procrustes"]
    assert list(ds.compare_step.values) == [0, 4] and list(ds.convention.values) == ["similarity", "angle"]
    grid = open_sweep(tmp_path, grid=True)
    assert grid.score.sel(measure="cka").dims == ("lr", "seed", "session", "compare_step")
    # oracle: the same comparison made by hand for one run (seed 1, lr 1e-2) at its last checkpoint
    run = sweep.runs()[-1]
    model, _ = training.load_checkpoint(training.list_checkpoints(tmp_path / "runs" / run_id(run))[-1])
    rec = load_recording(shared_data_dir / CHEWIE, condition="target", bin_size=0.05, smooth_sigma=0.05)
    activity = model_activity(model, tasks.make("memory_pro"), rec["condition"].values)
    expected = compare({4: activity}, rec, measures=["cka"], stats=[], time="resample", seed=1)
    got = grid.score.sel(measure="cka", lr=1e-2, seed=1, session="local", compare_step=4)
    assert float(got) == float(expected.score.squeeze())
    # the untrained network is the same for both learning rates, the trained ones differ
    cka0 = grid.score.sel(measure="cka", session="local", compare_step=0)
    assert np.array_equal(cka0.sel(lr=1e-3), cka0.sel(lr=1e-2))
    assert not np.array_equal(grid.score.sel(compare_step=4, lr=1e-3), grid.score.sel(compare_step=4, lr=1e-2))
    # changing what is computed recomputes the analyses without retraining
    calls = []
    original = trainer._step_seed
    trainer._step_seed = lambda seed, step, stream: calls.append(step) or original(seed, step, stream)
    try:
        again = run_sweep(Sweep(grid=sweep.grid, compute={"compare_at": [4], "measures": ["cka"]},
                                recordings={"local": recordings["local"]}), tmp_path, scheduler="inline",
                          progress=False)
    finally:
        trainer._step_seed = original
    assert calls == [] and again.sizes["compare_step"] == 1
    np.testing.assert_array_equal(again.score.sel(session="local", measure="cka", compare_step=4).values,
                                  ds.score.sel(session="local", measure="cka", compare_step=4).values)


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


# ---------------------------------------------------------------- per-run random state
def test_resume_leaves_process_random_state_alone(tmp_path):
    # regression: resume() restored the process-global torch/numpy/python RNG from the checkpoint
    import random

    run = _tiny().runs()[0]
    train_or_resume(run, tmp_path)
    for ckpt in training.list_checkpoints(tmp_path)[1:]:
        ckpt.unlink()
    torch.manual_seed(7), np.random.seed(7), random.seed(7)
    torch.rand(3), np.random.rand(3), random.random()  # the process moves on between attempts
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    assert train_or_resume(run, tmp_path).step == 4
    assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


def test_concurrent_runs_in_one_process_equal_each_run_alone(tmp_path):
    """Two runs in two threads of one process (one resumed mid-way) give the parameters of each run
    trained alone: nothing is shared through process-global random state."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = _tiny(seed=[3, 4], g=[0.9]).runs()
    alone = {s: train_or_resume(r, tmp_path / f"alone{s}").model.state_dict() for s, r in ((3, a), (4, b))}
    train_or_resume(a, tmp_path / "a")
    for ckpt in training.list_checkpoints(tmp_path / "a")[1:]:
        ckpt.unlink()  # run a was interrupted after step 2
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip((3, 4), pool.map(lambda x: train_or_resume(*x), [(a, tmp_path / "a"), (b, tmp_path / "b")])))
    for s, result in done.items():
        assert result.step == 4
        for k, v in alone[s].items():
            assert torch.equal(v, result.model.state_dict()[k]), (s, k)


# ---------------------------------------------------------------- progress
def test_progress_counts_checkpoints_and_runs(tmp_path, capsys):
    from neurokpflow.sweep.engine import Progress

    sweep = Sweep(grid={**TINY, "steps": 5, "seed": [0, 1]})  # checkpoints at 2, 4 and 5
    a, b = sweep.runs()
    train_or_resume(a, tmp_path / "runs" / run_id(a))
    for ckpt in training.list_checkpoints(tmp_path / "runs" / run_id(a))[1:]:
        ckpt.unlink()  # run a was interrupted after its first checkpoint
    with Progress([a, b], tmp_path) as bar:
        assert bar.bar.total == 2 * 3 + 2 and bar.bar.n == 1
        train_or_resume(a, tmp_path / "runs" / run_id(a))
        bar.refresh()
        assert bar.bar.n == 3
        bar.run_done(run_id(a))
        assert bar.bar.n == 4
        bar.write("dask dashboard: http://127.0.0.1:8787/status")
    err = capsys.readouterr().err
    assert "runs 1/2" in err and "4/8" in err and "dask dashboard: http://127.0.0.1:8787/status" in err


# ---------------------------------------------------------------- Ctrl-C and rerun
_STEP_HOOK = '''
import os
if os.environ.get("NEUROKPFLOW_TEST_STEP_LOG"):
    from neurokpflow.training import trainer as _trainer

    _original = _trainer._step_seed

    def _counting(seed, step, stream):
        if stream == 0:  # one batch per training step
            with open(os.environ["NEUROKPFLOW_TEST_STEP_LOG"], "a") as fh:
                fh.write(f"{int(seed)} {int(step)}\\n")
        return _original(seed, step, stream)

    _trainer._step_seed = _counting
'''


def _steps_by_seed(log):
    out = {}
    for line in log.read_text().split("\n") if log.exists() else []:
        if line:
            seed, step = map(int, line.split())
            out.setdefault(seed, []).append(step)
    return out


def test_ctrl_c_then_rerun_completes_only_the_missing_steps(tmp_path):
    """SIGINT to a running `neurokpflow sweep` (a real LocalCluster), then the same command again: the
    second attempt trains exactly the steps after each run's last checkpoint, counted in every process
    (driver and dask workers) through a sitecustomize hook, and the results equal an uninterrupted sweep."""
    import os
    import signal
    import subprocess
    import sys

    from _paths import REPO_ROOT

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_STEP_HOOK)
    steps = 20
    spec = tmp_path / "spec.toml"
    spec.write_text(f"[grid]\nhidden = 8\nbatch_size = 8\nsteps = {steps}\ncheckpoint_every = 5\nseed = [0, 1]\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": f"{hook}{os.pathsep}{REPO_ROOT}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "neurokpflow.cli.main", "sweep", str(spec), "--out", str(out), "--workers", "1",
               "-q"]  # one worker: at the interrupt one run is part-way, the other not started
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    first = subprocess.Popen(command, env={**env, "NEUROKPFLOW_TEST_STEP_LOG": str(logs[0])},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("runs/*/checkpoints/step_*.pt")):
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err.decode()[-2000:]
    assert "interrupted" in err.decode()
    last = {}
    for run in load(spec).runs():
        found = training.list_checkpoints(out / "runs" / run_id(run))
        last[run["seed"]] = int(found[-1].stem.split("_")[-1]) if found else 0
    assert min(last.values()) < steps, "the sweep finished before it was interrupted"
    done_before = _steps_by_seed(logs[0])
    for seed, step in last.items():
        assert set(range(step)) <= set(done_before.get(seed, []))
    second = subprocess.run(command, env={**env, "NEUROKPFLOW_TEST_STEP_LOG": str(logs[1])}, capture_output=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    redone = _steps_by_seed(logs[1])
    for seed, step in last.items():
        assert sorted(redone.get(seed, [])) == list(range(step, steps)), seed
    reference = run_sweep(load(spec), tmp_path / "reference", scheduler="inline", progress=False)
    _same_numbers(reference, open_sweep(out))
    assert not list(out.rglob(".*.tmp-*"))


# ---------------------------------------------------------------- batch systems (dask-jobqueue)
@pytest.mark.parametrize("kind, directive", [("slurm", "#SBATCH"), ("pbs", "#PBS")])
def test_jobqueue_cluster_writes_a_single_threaded_worker_job_script(kind, directive):
    pytest.importorskip("dask_jobqueue")
    from neurokpflow.sweep.clusters import jobqueue_cluster

    with jobqueue_cluster(kind, queue="short", walltime="00:30:00", memory="2GB") as cluster:
        script = cluster.job_script()  # built, never submitted: nothing is scaled
        assert len(cluster.workers) == 0
    assert directive in script and "short" in script and "00:30:00" in script
    assert "--nthreads 1" in script and "export OMP_NUM_THREADS=1" in script
    with pytest.raises(ValueError, match="slurm, pbs"):
        jobqueue_cluster("lsf")


def test_jobqueue_needs_its_extra(monkeypatch):
    import sys

    from neurokpflow.sweep.clusters import jobqueue_cluster

    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)
    with pytest.raises(ImportError, match=r"install neurokpflow\[jobqueue\]"):
        jobqueue_cluster("slurm")


def test_cli_cluster_options_are_parsed_and_checked(tmp_path, capsys):
    from neurokpflow.cli.commands import _key_value
    from neurokpflow.cli.main import main

    assert _key_value("queue=short") == ("queue", "short")
    assert _key_value("walltime=02:00:00") == ("walltime", "02:00:00")
    assert _key_value('job_extra_directives=["--gres=gpu:1"]') == ("job_extra_directives", ["--gres=gpu:1"])
    assert _key_value("cores=2") == ("cores", 2)
    spec = tmp_path / "spec.toml"
    spec.write_text("[grid]\nhidden = 8\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--cluster-option", "queue=x"]) == 2
    assert "--cluster-option needs --cluster" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_two_sweeps_of_one_spec_on_one_scheduler_both_run(tmp_path):
    """Regression: task keys were ``run-<id>``, so while another client of the same scheduler held a
    sweep's futures (the same spec swept into another folder at the same time), a second sweep got
    those results back without running anything and found no groups in its own store."""
    from dask.distributed import Client, LocalCluster

    sweep = Sweep(grid={**TINY, "steps": 2, "seed": [0, 1]})
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as other:
        held = [other.submit(lambda: {"status": "done"}, key=f"run-{run_id(r)}", pure=False) for r in sweep.runs()]
        other.gather(held)  # the other user's results stay held while this sweep runs
        ds = run_sweep(sweep, tmp_path, scheduler=cluster.scheduler_address, progress=False)
    assert ds.sizes["run"] == 2 and set(ds.status.values.tolist()) == {"done"}


def test_every_worker_holds_the_recordings_before_any_run(tmp_path, shared_data_dir, monkeypatch):
    """Run seconds measure the run: workers import the run code and get each recording when they
    start (a worker plugin), so the worker that runs nothing has it too.  A recording up to
    SHIP_RECORDING_BYTES travels from the driver (the workers read no file); a larger one is read by
    each worker from its path."""
    from dask.distributed import Client, LocalCluster

    from neurokpflow.sweep import engine
    from neurokpflow.sweep.run import recording

    sweep = Sweep(grid={**TINY, "steps": 2}, compute={"compare_at": [0]},
                  recordings={"chewie": {"path": str(shared_data_dir / CHEWIE), "condition": "target"}})
    driver_copy = recording(sweep.recording_options()["chewie"])

    def held():
        import sys

        from neurokpflow.sweep import run
        shared = list(run._SHARED.values())
        return (len(shared), run._recording.cache_info().currsize, "pynwb" in sys.modules,
                float(shared[0].sum()) if shared else None)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        ds = run_sweep(sweep, tmp_path / "shipped", scheduler=cluster.scheduler_address, progress=False)
        assert list(client.run(held).values()) == [(1, 0, False, float(driver_copy.sum()))] * 2
        monkeypatch.setattr(engine, "SHIP_RECORDING_BYTES", driver_copy.nbytes - 1)

        def forget():
            from neurokpflow.sweep import run
            run._SHARED.clear()

        client.run(forget)
        run_sweep(sweep, tmp_path / "read", scheduler=cluster.scheduler_address, progress=False)
        assert [h[1:3] for h in client.run(held).values()] == [(1, True)] * 2      # read from the file
    assert ds.status.values.tolist() == ["done"]


def test_sweep_workers_keep_glibcs_default_malloc_trimming():
    """dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which made a training run in a
    worker 1.7-1.9x slower than in a plain process; the sweep's own cluster leaves it unset, also in a
    worker restarted after it died."""
    import os

    import dask
    from dask.distributed import Client

    from neurokpflow.sweep.engine import local_cluster

    assert dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_") == 65536  # dask's default
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as plain, Client(plain) as client:
        # a plain dask cluster: its workers get dask's value, and its nanny exports it into this process
        assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {"65536"}
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536"
    with local_cluster(1) as cluster, Client(cluster) as client:
        read = lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")  # noqa: E731

        def worker_state():
            import sys

            import dask
            return (dask.config.get("distributed.worker.profile.enabled"),
                    all(m in sys.modules for m in ("neurokpflow.sweep.run", "neurokpflow.analysis", "torch")))

        # no stack-sampling profiler, and the run code imported as the worker started (no task ran)
        assert list(client.run(worker_state).values()) == [(False, True)]
        assert set(client.run(read).values()) == {None}
        client.restart()
        assert set(client.run(read).values()) == {None}


def test_a_bad_recording_found_while_the_local_cluster_starts_closes_it_and_writes_nothing(tmp_path):
    """The default cluster starts while the driver checks the recordings; a failed check closes it
    (no worker process is left) and raises before anything is written."""
    import multiprocessing

    (tmp_path / "bad.nwb").write_bytes(b"not an HDF5 file")
    sweep = Sweep(grid={**TINY, "steps": 2}, compute={"compare_at": [0]},
                  recordings={"rec": {"path": str(tmp_path / "bad.nwb"), "condition": "target"}})
    before = {p.pid for p in multiprocessing.active_children()}
    with pytest.raises(SweepSpecError, match="recordings.rec"):
        run_sweep(sweep, tmp_path / "out", n_workers=1, progress=False)
    assert not (tmp_path / "out").exists()
    assert {p.pid for p in multiprocessing.active_children()} <= before


def test_an_interrupted_sweep_closes_its_cluster_before_the_error_propagates(tmp_path, monkeypatch):
    """Ctrl-C while results arrive: the default cluster is closed (no worker process left) before the
    KeyboardInterrupt reaches the caller; only a sweep that finished closes it in the background."""
    import multiprocessing

    from neurokpflow.sweep import engine

    def interrupt(self, rid=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.Progress, "run_done", interrupt)
    before = {p.pid for p in multiprocessing.active_children()}
    sweep = Sweep(grid={**TINY, "steps": 2, "seed": [0, 1]})
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path / "out", n_workers=1, progress=False)
    assert {p.pid for p in multiprocessing.active_children()} <= before
