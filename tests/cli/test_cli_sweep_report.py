"""`neurokpflow report RESULTS/` and the sweep figures: group means and spreads over seeds."""
import numpy as np
import pytest

from neurokpflow import viz
from neurokpflow.cli.main import main
from neurokpflow.sweep import Sweep, open_sweep, run_sweep

TINY = {"hidden": 8, "steps": 4, "checkpoint_every": 2, "batch_size": 8}


@pytest.fixture(scope="module")
def results(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("sweep")
    sweep = Sweep(grid={**TINY, "task": ["memory_pro", "memory_anti"], "g": [0.8, 1.2], "seed": [0, 1]},
                  compute={"collapse_at": [4], "subtask_at": [4], "compare_at": [0, 4]},
                  recordings={"chewie": {"path": str(shared_data_dir / "m1_center_out_chewie.nwb"),
                                         "condition": "target"}})
    run_sweep(sweep, out, scheduler="inline", progress=False)
    return out


def test_groups_are_the_varying_axes_except_seed(results):
    ds = open_sweep(results)
    groups = viz.sweep_groups(ds)
    assert [label for label, _ in groups] == ["g=0.8", "g=1.2"]
    for label, runs in groups:
        assert sorted(ds.seed.sel(run=runs).values.tolist()) == [0, 1]
        assert set(ds.g.sel(run=runs).values.tolist()) == {float(label[2:])}
    assert [label for label, _ in viz.sweep_groups(ds, by=["seed"])] == ["seed=0", "seed=1"]


def test_figures_show_the_mean_over_seeds(results):
    ds = open_sweep(results)
    groups = dict(viz.sweep_groups(ds))
    fig = viz.plot_sweep_effective_rank(ds, "ER1")
    line = fig.axes[0].lines[0]  # operator K, group g=0.8
    expected = ds.effective_rank.sel(operator="K", definition="ER1", run=groups["g=0.8"]).mean("run")
    np.testing.assert_allclose(line.get_ydata(), expected.values)
    fig = viz.plot_sweep_similarity(ds)
    expected = ds.score.sel(measure="cka", session="chewie", run=groups["g=1.2"]).mean("run")
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), expected.values)
    fig = viz.plot_sweep_task_matrix(ds, "alignment")
    expected = ds.alignment.sel(subtask_step=4, run=groups["g=1.2"]).mean("run")
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), expected.values)
    with pytest.raises(ValueError, match="measure"):
        viz.plot_sweep_similarity(ds, measures=["rsa"])
    with pytest.raises(ValueError, match="run dimension"):
        viz.sweep_groups(ds.isel(run=0))


def test_cli_report(results, tmp_path, capsys):
    assert main(["report", str(results)]) == 0
    html = (results / "report.html").read_text()
    for heading in ("Effective ranks over training", "Similarity to the recordings over training",
                    "Sub-task alignment"):
        assert heading in html
    assert {p.name for p in (results / "figures").iterdir()} == {
        "sweep_effective_ranks.png", "sweep_similarity.png", "sweep_subtask_alignment.png"}
    # a sweep with a failed run and no analyses: the failure is listed, no figures
    failing = Sweep(grid={**TINY, "task": "memory_pro", "optimizer": "sgd", "lr": [1e-3, 1e12]})
    run_sweep(failing, tmp_path / "failing", scheduler="inline", progress=False)
    assert main(["report", str(tmp_path / "failing"), "--out", str(tmp_path / "r.html")]) == 0
    html = (tmp_path / "r.html").read_text()
    assert "1 done, 1 failed" in html and "diverged" in html and "<img" not in html
    capsys.readouterr()
    assert main(["report", str(tmp_path)]) == 3
    assert "holds no sweep.zarr" in capsys.readouterr().err
