"""KPFlow analyses of training runs.

* :func:`collapse` — dynamic collapse over training: effective ranks of K, P, P K P* and of the
  hidden activity, misdirection KA(P K P*, P P*), reduced eigenfunctions, loss and accuracy per
  checkpoint (``step`` dimension), resumable into netCDF;
* :func:`subtask_alignment` — multi-task interference from the blocks K_ij of the parameter
  operator, δz_{i←j} = −η P_i K_ij P_j* Err_j, with dims ``(task_i, task_j[, step])``;
* :func:`interference_decomposition` — the decomposition δz_{i←j} itself, for one model;
* :func:`similarity_flow` — the first-order change of a model–recording similarity score under
  one gradient step, ⟨∇_z S, −η P K P* Err⟩, split by sub-task, condition and time, as realised
  (P K P*) and direct (P P*), optionally Adam-preconditioned, with a real-step check.
* :func:`convention_ranks` — effective ranks of K and P over training under named
  :class:`RankConvention` s (the package's ER1, the KPFlow reference figure's, anything between);
* :func:`find_fixed_points` / :func:`slow_points` — fixed and slow points of a cell for a constant
  input (or along an input interpolation), batched Levenberg–Marquardt (module ``fixed_points``).
* module ``task_variance`` — Yang 2019 task-variance clusters of units (:func:`cluster_units`) and their
  lesions (:func:`lesion_effects`), Driscoll 2024 motifs over task periods (:func:`motifs`), and the
  table beside sub-task interference and fixed points (``task_variance.motif_table``).
"""
from .dynamic_collapse import CollapseOptions, collapse
from .fixed_points import find_fixed_points, slow_points
from .rank_conventions import PACKAGE_RANK, PAPER_FIGURE_RANK, RankConvention, convention_ranks
from .similarity_flow import FlowError, FlowOptions, cumulative_flow, similarity_flow
from .subtask import SubtaskOptions, interference_decomposition, subtask_alignment
from .task_variance import VarianceOptions, cluster_units, lesion_effects, motifs

__all__ = ["collapse", "CollapseOptions", "subtask_alignment", "SubtaskOptions", "interference_decomposition", "similarity_flow", "cumulative_flow",
           "FlowOptions", "FlowError", "find_fixed_points", "slow_points", "convention_ranks", "RankConvention",
           "PACKAGE_RANK", "PAPER_FIGURE_RANK", "cluster_units", "motifs", "lesion_effects", "VarianceOptions"]
