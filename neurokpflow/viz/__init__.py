"""Plots (matplotlib, Agg canvas): each function takes an analysis result (xarray) and returns a Figure.

Every function takes ``ax=`` (the Axes to draw on: one, or a list for multi-panel plots; None for a new
figure) and returns the Figure.  Titles and labels use human-readable names.

* :func:`plot_training_curves` — loss and test-grid accuracy of a training run;
* :func:`plot_effective_rank` — effective rank of K, P, P K P* vs training step, misdirection and loss;
* :func:`plot_activity_rank` — participation ratio of the hidden activity over training;
* :func:`plot_comparison` — the scores of :func:`neurokpflow.compare.compare` with intervals and nulls;
* :func:`plot_trajectories` — condition-averaged trajectories of a recording and a model, side by side;
* :func:`plot_eigenfunctions` — λ_i φ_i(t) of the unit-reduced K or P K P*, one line per trial;
* :func:`plot_task_matrices` — task × task matrices at chosen steps;
* :func:`plot_task_trajectories` — task-pair trajectories over training;
* :func:`plot_similarity_flow` — cumulative predicted vs measured similarity gain per sub-task;
* :func:`plot_fixed_points` — fixed / slow points by stability in the PCA space of trajectories;
* :func:`plot_task_variance` — normalised task (period) variance by unit cluster / motif, silhouette, shared motifs;
* :func:`plot_lesion_effects` — performance change of every task with each cluster lesioned;
* :class:`Report` — a self-contained HTML report (text, tables, embedded figures), written atomically;
* across a sweep (:func:`neurokpflow.open_sweep`): :func:`plot_sweep_effective_rank`,
  :func:`plot_sweep_similarity`, :func:`plot_sweep_task_matrix` (mean and spread over seeds).
"""
from .fixed_points import plot_fixed_points
from .comparison import plot_comparison, plot_trajectories
from .kpflow import (plot_activity_rank, plot_effective_rank, plot_eigenfunctions, plot_task_matrices,
                     plot_task_trajectories)
from .report import Report
from .training import plot_training_curves
from .similarity import plot_similarity_flow
from .sweep import plot_sweep_effective_rank, plot_sweep_similarity, plot_sweep_task_matrix, sweep_groups
from .task_variance import plot_lesion_effects, plot_task_variance

__all__ = ["plot_effective_rank", "plot_eigenfunctions", "plot_task_matrices", "plot_task_trajectories",
           "plot_similarity_flow", "plot_fixed_points", "plot_task_variance", "plot_lesion_effects",
           "plot_sweep_effective_rank", "plot_sweep_similarity", "plot_sweep_task_matrix", "sweep_groups",
           "plot_comparison", "plot_trajectories", "plot_training_curves", "plot_activity_rank", "Report"]
