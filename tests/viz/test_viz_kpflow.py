"""Plots of the KPFlow analyses: they draw what the result holds and reject what it lacks."""
import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.figure import Figure

from neurokpflow import models, tasks
from neurokpflow.analysis import collapse, subtask_alignment
from neurokpflow.viz import plot_effective_rank, plot_eigenfunctions, plot_task_matrices, plot_task_trajectories

MIX = tasks.make("kpflow_multitask", T_context=1, T_stim=1, T_memory=1, T_response=1)


@pytest.fixture(scope="module")
def results():
    pairs = [(s, models.make("gru", MIX.n_inputs, 3, MIX.n_outputs, seed=s)) for s in (0, 5, 9)]
    grid = MIX.test_grid(n_angles=2)
    return (collapse(pairs, grid, n_modes=2, progress=False, dtype=torch.float32),
            subtask_alignment(pairs, grid, progress=False))


def test_effective_rank_plot(results, tmp_path):
    col, _ = results
    fig = plot_effective_rank(col, "ER3")
    assert isinstance(fig, Figure)
    rank_ax = fig.axes[0]
    assert [line.get_label() for line in rank_ax.lines] == ["K", "P", "P K P*"]
    np.testing.assert_allclose(rank_ax.lines[1].get_ydata(), col.effective_rank.sel(operator="P", definition="ER3"))
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), col.misdirection)
    fig.savefig(tmp_path / "rank.png")
    assert (tmp_path / "rank.png").stat().st_size > 0
    with pytest.raises(ValueError, match="definition='ER9'"):
        plot_effective_rank(col, "ER9")


def test_eigenfunction_plot(results):
    col, _ = results
    fig = plot_eigenfunctions(col, "PKP*", step=5)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == col.sizes["trial"]
    r = col.sel(step=5, eig_operator="PKP*", mode=1)
    np.testing.assert_allclose(fig.axes[1].lines[3].get_ydata(), float(r.eigenvalue) * r.eigenfunction.values[3],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="step=7"):
        plot_eigenfunctions(col, step=7)


def test_task_plots(results):
    col, align = results
    fig = plot_task_matrices(align, "hidden_alignment", steps=[0, 9])
    assert len(fig.axes) == 3  # two panels and a colour bar
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), align.hidden_alignment.sel(step=9))
    fig = plot_task_trajectories(align)
    n = align.sizes["task_i"]
    assert len(fig.axes[0].lines) == n * (n - 1)
    with pytest.raises(ValueError, match="lacks"):
        plot_task_matrices(col)
    with pytest.raises(ValueError, match="no step dimension"):
        plot_task_trajectories(align.isel(step=0))
    with pytest.raises(TypeError, match="xarray.Dataset"):
        plot_task_matrices(xr.DataArray([1.0]))
