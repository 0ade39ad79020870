"""The ``neurokpflow`` command line: help, exit codes, one-line errors, and every sub-command on a
reduced demo run (``demo --quick``, run once per module)."""
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurokpflow.cli.errors import EXIT_CODES, EXIT_MISSING, EXIT_UNUSABLE, EXIT_USAGE
from neurokpflow.cli.main import main
from _paths import REPO_ROOT, SHARED_DATA

COMMANDS = ("info", "train", "analyze", "compare", "demo")


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err, *fragments):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--quick", "--quiet", "--out", str(out)])
    assert code == 0
    return out


def _nwb_with_trials(path, columns, trials=True):
    """A small valid NWB file: 3 units and (unless ``trials`` is False) 8 trials with the given columns."""
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.misc import Units

    nwb = NWBFile(session_description="test", identifier="cli-test",
                  session_start_time=datetime(2025, 1, 1, tzinfo=timezone.utc))
    for name in columns:
        nwb.add_trial_column(name, f"the {name}")
    for i in range(8 if trials else 0):
        nwb.add_trial(start_time=2.0 * i, stop_time=2.0 * i + 1.9, **{c: i % 4 for c in columns})
    nwb.units = Units(name="units", description="test units", resolution=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        nwb.units.add_unit(spike_times=np.sort(rng.uniform(0, 16, 200)))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


# ------------------------------------------------------------------------------------------ help
def test_help_lists_every_command_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert f"\n    {command} " in out
    for code, meaning in EXIT_CODES.items():
        assert f"{code:<4}{meaning}" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"neurokpflow {command}" in out and "--quiet" in out


def test_no_command_prints_help(capsys):
    code, out, _ = run_cli(capsys)
    assert code == 0 and "COMMAND" in out


def test_console_script_is_declared():
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("neurokpflow") == "neurokpflow.cli.main:main"


# ------------------------------------------------------------------------------------ bad input
def test_missing_file_is_one_line_and_exit_3(capsys, tmp_path):
    missing = tmp_path / "absent.nwb"
    code, _, err = run_cli(capsys, "info", str(missing))
    assert code == EXIT_MISSING
    assert_one_line_error(err, "no such file", str(missing))


def test_debug_shows_the_traceback(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--debug", "info", str(tmp_path / "absent.nwb"))
    assert code == EXIT_MISSING and "Traceback" in err


def test_unknown_task_lists_the_known_ones(capsys, tmp_path):
    code, _, err = run_cli(capsys, "train", "--task", "memory_pr0", "--out", str(tmp_path / "run"))
    assert code == EXIT_USAGE
    assert_one_line_error(err, "unknown task 'memory_pr0'", "memory_pro", "flip_flop")
    assert not (tmp_path / "run").exists()


def test_invalid_number_is_an_argparse_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--task", "memory_pro", "--steps", "-3", "--out", str(tmp_path)])
    assert exit_.value.code == EXIT_USAGE
    assert "expected a positive integer" in capsys.readouterr().err


def test_file_that_is_not_nwb_exits_4(capsys, tmp_path):
    fake = tmp_path / "notes.nwb"
    fake.write_text("not an HDF5 file")
    code, _, err = run_cli(capsys, "info", str(fake))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "notes.nwb")


def test_nwb_without_the_condition_column_exits_4(capsys, tmp_path, demo):
    path = _nwb_with_trials(tmp_path / "no_condition.nwb", ["target"])
    code, _, err = run_cli(capsys, "compare", str(demo / "run"), str(path))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "no trials column 'condition'", "target", "--condition")


def test_nwb_without_trials_exits_4_before_any_training(capsys, tmp_path):
    path = _nwb_with_trials(tmp_path / "no_trials.nwb", [], trials=False)
    code, _, err = run_cli(capsys, "demo", "--quick", "--nwb", str(path), "--out", str(tmp_path / "demo"))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "has no trials table")
    assert not (tmp_path / "demo" / "run").exists()


def test_run_folder_errors(capsys, tmp_path):
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "nope"))
    assert code == EXIT_MISSING
    assert_one_line_error(err, "does not exist")
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(capsys, "analyze", str(tmp_path / "empty"))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "holds no checkpoints")


def test_a_real_bug_is_reported_as_internal_error(capsys, monkeypatch, tmp_path):
    from neurokpflow.cli import commands

    def broken(args):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(commands, "run_info", broken)
    path = _nwb_with_trials(tmp_path / "x.nwb", ["condition"])
    code, _, err = run_cli(capsys, "info", str(path))
    assert code == 1
    assert_one_line_error(err, "ZeroDivisionError: boom", "--debug")


# ------------------------------------------------------------------------------------- train run
def test_train_writes_a_run_and_refuses_to_overwrite_it(capsys, tmp_path):
    import torch

    threads = torch.get_num_threads()
    run = tmp_path / "run"
    code, out, _ = run_cli(capsys, "train", "--quiet", "--threads", "1", "--task", "memory_pro", "--dt", "0.05", "--hidden", "8",
                           "--steps", "6", "--checkpoint-every", "3", "--batch-size", "8", "--out", str(run))
    assert code == 0 and out == ""
    assert torch.get_num_threads() == threads, "--threads applies only while the command runs"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000003.pt", "step_00000006.pt"]
    settings = json.loads((run / "run.json").read_text())
    assert settings["tasks"] == ["memory_pro"] and settings["hidden"] == 8 and settings["dt"] == 0.05
    with xr.open_dataset(run / "log.nc") as log:
        assert log.sizes["step"] == 6
    code, _, err = run_cli(capsys, "train", "--task", "memory_pro", "--steps", "6", "--out", str(run))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "already holds a run", "--resume")
    code, out, _ = run_cli(capsys, "train", "--resume", "--steps", "9", "--out", str(run), "--quiet")
    assert code == 0 and (run / "checkpoints" / "step_00000009.pt").exists()


def test_train_task_list(capsys):
    code, out, _ = run_cli(capsys, "train", "--task", "list")
    assert code == 0 and "memory_pro" in out.split() and "kpflow_multitask" in out.split()


# ----------------------------------------------------------------------------------------- demo
def test_demo_writes_report_and_results_that_reopen(demo):
    for name in ("report.html", "summary.json", "compare.nc", "analysis/collapse.nc", "virtual_animal.nwb",
                 "run/log.nc", "figures/trajectories.png", "figures/effective_ranks.png"):
        assert (demo / name).is_file(), name
    assert not list(demo.rglob(".*tmp*")), "temporary files left behind"
    with xr.open_dataset(demo / "compare.nc") as comparison:
        assert {"score", "ci_low", "ci_high", "p_value", "null_mean"} <= set(comparison.data_vars)
        assert comparison["step"].values[0] == 0 and comparison.sizes["measure"] == 2
    with xr.open_dataset(demo / "analysis" / "collapse.nc") as collapse:
        assert collapse["step"].values[0] == 0
        assert np.isfinite(collapse["effective_rank"].values).all()


def test_demo_report_states_the_numbers_with_real_figures(demo):
    import base64

    html = (demo / "report.html").read_text()
    summary = json.loads((demo / "summary.json").read_text())
    png = [chunk.split('"')[0] for chunk in html.split("data:image/png;base64,")[1:]]
    assert len(png) >= 5
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in png)
    assert (demo / "figures" / "trajectories.png").read_bytes() in [base64.b64decode(p) for p in png]
    for op in ("K", "P", "PKP*"):
        assert f"effective rank of {op}" in html
    proc = summary["comparison"]["procrustes"]["trained"]
    assert f"{proc['ci_estimate']:.3f} [{proc['ci'][0]:.3f}, {proc['ci'][1]:.3f}]" in html
    for measure in ("procrustes", "cka"):          # every interval shown contains the estimate shown with it
        for entry in summary["comparison"][measure].values():
            assert entry["ci"][0] <= entry["ci_estimate"] <= entry["ci"][1]
    assert "100.0 %" in html or "%" in html.split("test-grid accuracy")[1][:200]


def test_demo_training_moves_the_model_towards_the_recording(demo):
    comparison = json.loads((demo / "summary.json").read_text())["comparison"]
    angle = comparison["procrustes"]
    assert angle["trained"]["score"] < angle["untrained"]["score"]
    assert angle["trained"]["score"] < angle["trained"]["null_mean"]
    cka = comparison["cka"]
    assert cka["trained"]["score"] > cka["untrained"]["score"]
    assert cka["trained"]["score"] > cka["trained"]["null_mean"]


def test_demo_similarity_flow_is_saved_summarised_and_reported(demo):
    summary = json.loads((demo / "summary.json").read_text())["similarity_flow"]
    with xr.open_dataset(demo / "similarity_flow.nc") as flow:
        assert list(flow["task"].values) == ["memory_pro"]
        assert {"change", "change_direct", "change_adam_step", "change_adam_momentum", "measured"} <= set(flow.data_vars)
        last = flow.isel(step=-1)
        assert summary["last"]["step"] == int(flow["step"].values[-1])
        assert summary["last"]["measured_adam"] == pytest.approx(float(last["measured"]))
        assert summary["last"]["per_task"]["memory_pro"]["predicted_gd"] == pytest.approx(
            float(last["change"].sum()))
        assert summary["last"]["procrustes_angle"] == pytest.approx(float(last["score"]))
    html = (demo / "report.html").read_text()
    assert "Similarity flow" in html and "P P*" in html
    assert (demo / "figures" / "similarity_flow.png").is_file()


# ------------------------------------------------------------------ the other commands on the demo
def test_info_describes_the_virtual_animal(capsys, demo):
    code, out, _ = run_cli(capsys, "info", str(demo / "virtual_animal.nwb"))
    assert code == 0
    assert "40 units" in out and "condition" in out and "stimulus_angle" in out


def test_compare_command_on_the_demo_run(capsys, demo, tmp_path):
    out_dir = tmp_path / "cmp"
    code, _, _ = run_cli(capsys, "compare", "--quiet", "--threads", "1", str(demo / "run"), str(demo / "virtual_animal.nwb"),
                         "--measures", "cka", "--stats", "permutation", "--every", "6", "--out", str(out_dir))
    assert code == 0
    with xr.open_dataset(out_dir / "compare.nc") as ds:
        assert list(ds["step"].values) == [0, 25, 150] and "p_value" in ds and "ci_low" not in ds
    assert "data:image/png;base64," in (out_dir / "report.html").read_text()


def test_analyze_command_resumes_into_the_same_file(capsys, demo, tmp_path):
    out_dir = tmp_path / "analysis"
    args = ["analyze", "--quiet", "--threads", "1", str(demo / "run"), "--every", "6", "--n-angles", "4", "--out", str(out_dir)]
    assert run_cli(capsys, *args)[0] == 0
    with xr.open_dataset(out_dir / "collapse.nc") as ds:
        first = ds.load()
    assert list(first["step"].values) == [0, 25, 150]
    assert run_cli(capsys, *args)[0] == 0
    with xr.open_dataset(out_dir / "collapse.nc") as ds:
        xr.testing.assert_identical(ds.load(), first)
    assert "effective rank" in (out_dir / "report.html").read_text().lower()


def test_the_module_entry_point_exits_with_the_code(tmp_path):
    repo = REPO_ROOT
    proc = subprocess.run([sys.executable, "-m", "neurokpflow.cli.main", "info", str(tmp_path / "x.nwb")],
                          capture_output=True, text=True, cwd=repo)
    assert proc.returncode == EXIT_MISSING
    assert proc.stderr.strip().count("\n") == 0 and "no such file" in proc.stderr


def test_analyze_a_task_mix_adds_the_subtask_alignment(capsys, tmp_path):
    run = tmp_path / "mix"
    assert run_cli(capsys, "train", "-q", "--threads", "1", "--task", "memory_pro", "memory_anti", "--dt", "0.1", "--hidden", "8",
                   "--steps", "4", "--checkpoint-every", "2", "--batch-size", "8", "--out", str(run))[0] == 0
    code, _, _ = run_cli(capsys, "analyze", "-q", "--threads", "1", str(run), "--n-angles", "2")
    assert code == 0
    with xr.open_dataset(run / "analysis" / "alignment.nc") as ds:
        assert list(ds["task_i"].values) == ["memory_pro", "memory_anti"]
        assert list(ds["step"].values) == [0, 2, 4]
        assert {"alignment", "hidden_alignment", "cumulative_alignment"} <= set(ds.data_vars)
    html = (run / "analysis" / "report.html").read_text()
    assert "Sub-task alignment" in html and (run / "analysis" / "figures" / "subtask_alignment.png").exists()


DATA = SHARED_DATA
M1 = DATA / "m1_center_out_chewie.nwb"


@pytest.mark.realdata
@pytest.mark.skipif(not M1.exists(), reason=f"real recording {M1.name} absent from {DATA} (set NEUROKPFLOW_DATA)")
def test_demo_with_the_m1_recording(capsys, tmp_path):
    code, _, err = run_cli(capsys, "demo", "--quick", "--quiet", "--nwb", str(M1), "--out", str(tmp_path / "a"))
    assert code == EXIT_UNUSABLE
    assert_one_line_error(err, "no trials column 'condition'", "'target'")
    out = tmp_path / "b"
    assert run_cli(capsys, "demo", "--quick", "--quiet", "--nwb", str(M1), "--condition", "target",
                   "--out", str(out))[0] == 0
    assert not (out / "virtual_animal.nwb").exists()
    with xr.open_dataset(out / "compare.nc") as ds:
        assert ds.attrs["n_conditions"] == 4 and ds.attrs["n_units_data"] == 71
    assert "m1_center_out_chewie.nwb" in (out / "report.html").read_text()
