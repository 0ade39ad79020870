"""The ``compare`` step: a recording from NWB, the model's activity per checkpoint, and the scores.

How model and recording are paired is stated in :data:`PAIRING` (and in every report).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from .errors import EXIT_UNUSABLE, CLIError
from .._io import write_netcdf
from .runs import models_over_training

__all__ = ["load_recording", "model_activity", "compare_run", "score_table", "PAIRING"]

#: the pairing conventions between a model's test grid and a recording
PAIRING = (
    "conditions: the recording's condition labels in sorted order, label number k paired with the model's "
    "test-grid angle 2*pi*k/n (stimulus modality 1; for a task mix, the first task's trials); "
    "time: the model's step t covers the bin [t*dt, (t+1)*dt) from trial start (its state after consuming input t), "
    "labelled by the bin centre, and is resampled linearly onto the recording's bins inside its own time range; "
    "the recording keeps only the time bins covered by every trial (ragged trials are not padded).")


def _neural_variable(summary):
    """``(read_nwb options, variable name)`` for the neural data of a file: its Units table, or else
    its widest 2-D TimeSeries (e.g. binned counts stored as a series)."""
    if summary.units is not None:
        return {"units": True}, "spike_count"
    series = [s for s in summary.series if len(s.shape) == 2]
    if not series:
        raise CLIError(f"{summary.source} has neither a Units table nor a 2-D time series to compare with",
                       EXIT_UNUSABLE)
    widest = max(series, key=lambda s: s.shape[1])
    name = widest.path.rsplit("/", 1)[-1]
    return {"units": False, "series": {name: "unit"}}, name


class _Located(str):
    """A URL that answers ``.name`` like a path (its last segment), for messages."""

    @property
    def name(self):
        return self.rstrip("/").rsplit("/", 1)[-1]


def load_recording(path, *, condition="condition", align_to="start_time", window=None, bin_size=0.05,
                   smooth_sigma=0.05, min_trials_per_condition=2) -> xr.DataArray:
    """Trial-aligned neural activity of an NWB file (a path or an http(s)/s3 URL), ready for
    :func:`neurokpflow.compare.compare`.

    Returns a DataArray (trial, time, unit) with a per-trial ``condition`` coordinate (copied from
    the trials column ``condition``), restricted to the time bins every trial covers and smoothed in
    time with a Gaussian of SD ``smooth_sigma`` seconds (``None``: not smoothed).  Raises
    :class:`CLIError` (exit code 4) when the file has no trials table, no such column, a single
    condition, or fewer than ``min_trials_per_condition`` trials in some condition.
    """
    from ..data import describe_nwb, read_nwb, smooth
    from ..data.sources import is_remote

    path = _Located(path) if is_remote(path) else Path(path)
    summary = describe_nwb(path)
    trials = [t for t in summary.intervals if t.path.rstrip("/").endswith("trials")]
    if not trials:
        tables = [t.path for t in summary.intervals] or "none"
        raise CLIError(f"{path.name} has no trials table, so it has no conditions to compare with (interval tables: "
                       f"{tables})", EXIT_UNUSABLE)
    columns = [c for c in trials[0].columns if c not in ("start_time", "stop_time")]
    if condition not in columns:
        raise CLIError(f"{path.name} has no trials column {condition!r}; its trial columns are {columns}; name the "
                       f"one that labels conditions with --condition COLUMN", EXIT_UNUSABLE)
    options, variable = _neural_variable(summary)
    ds = read_nwb(path, align_to=align_to, window=None if window is None else tuple(window), bin_size=bin_size,
                  **options)
    activity = ds[variable]
    covered = ds["valid"].all("trial").values
    if not covered.any():
        raise CLIError(f"no time bin of {path.name} lies inside every trial; choose a shorter --window", EXIT_UNUSABLE)
    first, last = np.flatnonzero(covered)[[0, -1]]
    activity = activity.isel(time=slice(first, last + 1))
    labels = ds[condition].values
    if condition != "condition":
        activity = activity.drop_vars("condition", errors="ignore")
    activity = activity.assign_coords(condition=("trial", labels))
    values, counts = np.unique(labels, return_counts=True)
    if len(values) < 2:
        raise CLIError(f"column {condition!r} of {path.name} holds a single condition ({values.tolist()}); a "
                       "comparison needs several", EXIT_UNUSABLE)
    if counts.min() < min_trials_per_condition:
        raise CLIError(f"condition {values[counts.argmin()]!r} of {path.name} has {counts.min()} trial(s); every "
                       f"condition needs at least {min_trials_per_condition}", EXIT_UNUSABLE)
    if smooth_sigma:
        activity = smooth(activity, smooth_sigma)
    activity.attrs.update(source=str(path), variable=variable, condition_column=condition,
                          bin_size=float(ds.attrs.get("bin_size", bin_size)), alignment=str(align_to))
    return activity.rename("activity")


def model_activity(model, task, labels, *, batch=None) -> xr.DataArray:
    """Hidden activity (trial, time, unit) of ``model`` on the test grid whose angle ``k`` carries
    the ``k``-th sorted label of ``labels``; time = bin centres ``(t + ½)·dt``."""
    from .. import record
    from .analysis_steps import evaluation_batch

    labels = np.unique(labels)
    if batch is None:
        batch = evaluation_batch(task, len(labels))
        first = batch.tasks[0]
        batch = batch[np.flatnonzero(batch.meta["task"] == first)]
    hidden = record(model, batch)["hidden"]
    hidden = hidden.dropna("time", how="any")
    k = np.asarray(batch.meta["condition"])
    times = (np.arange(hidden.sizes["time"]) + 0.5) * batch.dt
    return hidden.assign_coords(condition=("trial", labels[k]), time=("time", times, {"units": "s"}))


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
                stats=("bootstrap", "permutation"), every=1, n_boot=200, n_perm=200, seed=0, progress=True):
    """Compare every checkpoint of ``run_dir`` (step 0 = untrained) with ``recording``.

    Writes ``out_dir/compare.nc`` (dims ``measure`` × ``step``) and adds the score table and figures
    to ``report``; returns the Dataset.
    """
    from ..compare import compare, plot_comparison

    pairs, task = models_over_training(run_dir, every=every)
    labels = recording["condition"].values
    activity = {step: model_activity(model, task, labels) for step, model in pairs}
    result = compare(activity, recording, measures=list(measures), stats=list(stats), time="resample",
                     n_boot=n_boot, n_perm=n_perm, seed=seed)
    result = result.rename({"checkpoint": "step"}) if "checkpoint" in result.dims else result
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
    from .figures import trajectories

    report.figure(trajectories(recording, activity[pairs[0][0]], activity[pairs[-1][0]], pairs[-1][0]),
                  "trajectories",
                  "Condition-averaged trajectories on the recording's first two principal components: the "
                  "recording, the untrained model and the trained model (each model aligned to the recording's "
                  "PCs by least squares).")
    return result
