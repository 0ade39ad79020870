"""The ``compare`` step: a recording from NWB, the model's activity per checkpoint, and the scores.

How model and recording are paired is stated in :data:`PAIRING` (and in every report).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import write_netcdf
from ..data.recordings import load_recording
from ..models.recording import model_activity
from ..training.runs import models_over_training

__all__ = ["load_recording", "model_activity", "compare_run", "score_table", "PAIRING"]

#: the pairing conventions between a model's test grid and a recording
PAIRING = (
    "conditions: the recording's condition labels in sorted order, label number k paired with the model's "
    "test-grid angle 2*pi*k/n (stimulus modality 1; for a task mix, the first task's trials); "
    "time: the model's step t covers the bin [t*dt, (t+1)*dt) from trial start (its state after consuming input t), "
    "labelled by the bin centre, and is resampled linearly onto the recording's bins inside its own time range; "
    "the recording keeps only the time bins covered by every trial (ragged trials are not padded).")


def score_table(result, step_dim="step"):
    """Rows ``[step, measure, convention, score, CI, null mean, p]`` of a compare() result over steps."""
    rows = []
    for step in result[step_dim].values:
        for measure in result["measure"].values:
            r = result.sel({step_dim: step, "measure": measure})
            ci = (f"[{float(r['ci_low']):.3f}, {float(r['ci_high']):.3f}]" if "ci_low" in r else "n/a")
            if "ci_estimate" in r and float(r["ci_estimate"]) != float(r["score"]):
                ci += f" around the bias-corrected {float(r['ci_estimate']):.3f}"
            null = f"{float(r['null_mean']):.3f}" if "null_mean" in r else "n/a"
            p = f"{float(r['p_value']):.3f}" if "p_value" in r else "n/a"
            rows.append([int(step), str(measure), str(r["convention"].values), float(r["score"]), ci, null, p])
    return rows


def _ci_methods(result) -> str:
    """One phrase per estimator naming its interval method and what was resampled."""
    if "ci_method" not in result:
        return "none"
    methods = {str(v) for v in np.atleast_1d(result["ci_method"].values)}
    return "; ".join(f"{m.replace('bca', 'BCa bootstrap')}" for m in sorted(methods))


def compare_run(run_dir, recording, out_dir, report, *, measures=("procrustes", "cka"),
                stats=("bootstrap", "permutation"), every=1, **options):
    """Compare every checkpoint of ``run_dir`` (step 0 = untrained) with ``recording``.

    ``options``: fields of :class:`neurokpflow.compare.StatsOptions` (``n_boot``, ``n_perm``, ``seed``, ...)
    and ``progress`` (accepted for symmetry with the other steps; comparisons show no bar).

    Writes ``out_dir/compare.nc`` (dims ``measure`` × ``step``) and adds the score table and figures
    to ``report``; returns the Dataset.
    """
    from ..compare import compare
    from ..viz import plot_comparison

    pairs, task = models_over_training(run_dir, every=every)
    labels = recording["condition"].values
    activity = {step: model_activity(model, task, labels) for step, model in pairs}
    options.pop("progress", None)
    result = compare(activity, recording, measures=list(measures), stats=list(stats), time="resample", **options)
    result.attrs.update(recording=str(recording.attrs.get("source", "")), run=str(run_dir),
                        pairing=PAIRING)
    out_dir = Path(out_dir)
    write_netcdf(result, out_dir / "compare.nc")
    n_cond = len(np.unique(labels))
    report.section(
        "Model vs recording over training",
        f"Hidden activity of the model at {len(pairs)} checkpoints (step 0 = untrained) against "
        f"{recording.attrs.get('variable', 'the activity')} of {Path(str(recording.attrs.get('source', ''))).name} "
        f"({recording.sizes['trial']} trials, {n_cond} conditions from column "
        f"`{recording.attrs.get('condition_column', 'condition')}`, {recording.sizes['unit']} units, "
        f"{recording.sizes['time']} bins of {recording.attrs.get('bin_size', '?')} s), both averaged by condition.  "
        f"CI: {_ci_methods(result)}; null: permutation of the recording's condition labels (p one-sided, "
        "(k + 1) / (n + 1)).  Estimators marked noise=cv4 are noise-corrected: they estimate the similarity of "
        "the noise-free condition means from cross products of independent trial folds.  Conventions: "
        "angle/distance = smaller is more similar, similarity = larger is more similar.")
    report.paragraph("Pairing: " + PAIRING)
    report.table(["step", "measure", "convention", "score", "95 % CI", "null mean", "p"], score_table(result))
    if "noise_ceiling" in result:
        report.table(["measure", "noise ceiling (split-half, Spearman-Brown)"],
                     [[str(m), float(v)] for m, v in zip(result["measure"].values, result["noise_ceiling"].values)])
    report.figure(plot_comparison(result), "comparison_over_training",
                  f"Scores over training with the 95 % CI band ({_ci_methods(result)}) and the permutation-null mean.")
    from ..viz import plot_trajectories as trajectories

    report.figure(trajectories(recording, activity[pairs[0][0]], activity[pairs[-1][0]], pairs[-1][0]),
                  "trajectories",
                  "Condition-averaged trajectories on the recording's first two principal components: the "
                  "recording, the untrained model and the trained model (each model aligned to the recording's "
                  "PCs by least squares).")
    return result
