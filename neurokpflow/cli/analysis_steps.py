"""The ``analyze`` step: KPFlow collapse (and sub-task alignment for mixes) over a run's checkpoints."""
from __future__ import annotations

import json
from pathlib import Path

from ..training.runs import models_over_training
from ..viz import plot_activity_rank

from ..models.recording import evaluation_batch

__all__ = ["analyze_run", "evaluation_batch", "collapse_table", "HEADLINE_DEFINITION"]

#: the effective-rank definition quoted in reports (the variance-threshold rank of the KPFlow paper)
HEADLINE_DEFINITION = "ER1"


def collapse_table(collapse, definition=HEADLINE_DEFINITION):
    """Rows ``[step, loss, accuracy %, ER(K), ER(P), ER(PKP*), activity ER, misdirection]`` (strings
    ``value ± stderr`` where an error bar exists)."""
    def pm(value, err):
        return f"{float(value):.3g} ± {float(err):.2g}" if float(err) > 0 else f"{float(value):.3g}"

    rows = []
    for step in collapse["step"].values:
        c = collapse.sel(step=step)
        acc = (f"{100 * float(c['accuracy'].mean()):.1f}" if "accuracy" in c else "n/a")
        ranks = [pm(c["effective_rank"].sel(operator=op, definition=definition),
                    c["effective_rank_stderr"].sel(operator=op, definition=definition))
                 for op in ("K", "P", "PKP*")]
        activity = pm(c["activity_effective_rank"].sel(centering="centred"),
                      c["activity_effective_rank_stderr"].sel(centering="centred"))
        rows.append([int(step), float(c["loss"]), acc, *ranks, activity,
                     pm(c["misdirection"], c["misdirection_stderr"])])
    return rows


COLLAPSE_HEADER = ["step", "loss", "accuracy (%)", "ER K", "ER P", "ER PKP*", "activity ER4 (centred)",
                   "misdirection KA(PKP*, PP*)"]


def analyze_run(run_dir, out_dir, report, *, every=1, n_angles=8, progress=True, collapse_options=None):
    """Collapse (and, for task mixes, sub-task alignment) over the checkpoints of ``run_dir``.

    Writes ``out_dir/collapse.nc`` (and ``alignment.nc``) — resumable: checkpoints already in those
    files are not recomputed — and adds the tables and figures to ``report``.  Returns
    ``{"collapse": Dataset, "alignment": Dataset or None}``.
    """
    from .. import viz
    from ..analysis import collapse, subtask_alignment

    pairs, task = models_over_training(run_dir, every=every)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    batch = evaluation_batch(task, n_angles)
    result = collapse(pairs, batch, task=task, out=out_dir / "collapse.nc", progress=progress,
                      **(collapse_options or {}))
    definition = HEADLINE_DEFINITION if HEADLINE_DEFINITION in result["definition"].values \
        else str(result["definition"].values[0])
    definition_name = json.loads(result.attrs.get("definitions", "{}")).get(definition, "")
    report.section(
        "Dynamic collapse over training",
        f"KPFlow operators along the noise-free trajectories of {batch.n_trials} test-grid trials, at "
        f"{len(pairs)} checkpoints (step 0 = the untrained network).  K = J_θ J_θ* (parameter operator), "
        "P = the linearised propagator, P K P* = the hidden-state NTK; each reduced onto time (block average) "
        f"and ranked with {definition} ({definition_name}; see `neurokpflow.kpflow.effective_rank`).  Error bars "
        "are standard errors of the randomized estimators (0 = exact) and, for the activity, bootstrap over trials.")
    report.table(COLLAPSE_HEADER, collapse_table(result, definition))
    report.figure(viz.plot_effective_rank(result, definition), "effective_ranks",
                  "Effective ranks of K, P and P K P* over training (log scale, ± 2 standard errors), with the "
                  "misdirection alignment and the evaluation loss.")
    report.figure(plot_activity_rank(result), "activity_rank",
                  "Participation ratio of the hidden activity over training (± bootstrap standard error).")
    for step, when in ((int(result["step"].values[0]), "untrained"), (int(result["step"].values[-1]), "trained")):
        report.figure(viz.plot_eigenfunctions(result, "PKP*", step), f"eigenfunctions_step_{step}",
                      f"Top eigenfunctions λ φ(t) of the unit-reduced P K P* at step {step} ({when}), one line "
                      "per stimulus angle.")
    alignment = None
    if len(task.task_names) > 1:
        alignment = subtask_alignment(pairs, batch, out=out_dir / "alignment.nc", progress=progress)
        report.section(
            "Sub-task alignment",
            "alignment[i, j] = cos(δz_{i←j}, δz_{i←i}): how the error of task j moves the states of task i, "
            "relative to task i's own update (first-order gradient-descent step, K_ij blocks).  "
            "hidden_alignment is the cosine between task-averaged hidden activity.")
        report.figure(viz.plot_task_matrices(alignment, "alignment"), "subtask_alignment",
                      "Interference alignment between tasks, first vs last checkpoint.")
        report.figure(viz.plot_task_matrices(alignment, "hidden_alignment"), "hidden_alignment",
                      "Hidden-state alignment between tasks, first vs last checkpoint.")
        report.figure(viz.plot_task_trajectories(alignment), "cumulative_alignment",
                      "Cumulative interference alignment of every task pair over training.")
    return {"collapse": result, "alignment": alignment}
