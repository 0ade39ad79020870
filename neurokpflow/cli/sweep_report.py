"""``neurokpflow report RESULTS/``: the standard figures across a sweep, in one HTML file.

Thin layer over :func:`neurokpflow.open_sweep` and the sweep figures of :mod:`neurokpflow.viz`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..viz.report import Report

__all__ = ["write_sweep_report"]


def _axes_table(ds):
    spec = json.loads(ds.attrs.get("sweep", "{}"))
    rows = []
    for field in ("task", "cell", "hidden", "g", "alpha", "optimizer", "lr", "batch_size", "steps",
                  "checkpoint_every", "seed"):
        if field in ds.coords:
            values = list(dict.fromkeys(ds[field].values.tolist()))
            rows.append([field, ", ".join(map(str, values))])
    return spec, rows


def _final_scores(ds, groups):
    rows = []
    last = int(ds.compare_step.values[-1])
    for session in ds.session.values:
        for measure in ds.measure.values:
            for label, runs in groups:
                v = ds.score.sel(session=session, measure=measure, compare_step=last, run=runs).values
                v = v[np.isfinite(v)]
                if v.size:
                    rows.append([str(session), str(measure), label, int(v.size), float(v.mean()),
                                 float(v.std(ddof=1)) if v.size > 1 else "n/a"])
    return last, rows


def write_sweep_report(results, out=None) -> Path:
    """Write ``out`` (default ``RESULTS/report.html``, figures in ``RESULTS/figures``) for the sweep
    in ``results``: runs and failures, effective ranks over training per group, similarity to each
    recording over training with the spread over seeds, and the sub-task alignment matrix averaged
    over seeds -- each part when the sweep computed it.  Returns the path."""
    from .. import viz
    from ..sweep import open_sweep

    results = Path(results)
    ds = open_sweep(results)
    out = results / "report.html" if out is None else Path(out)
    spec, axes = _axes_table(ds)
    report = Report(f"Sweep {spec.get('name', '')}".strip(), figures_dir=out.parent / "figures")
    status = ds["status"].values.tolist()
    report.section("Runs", f"{ds.sizes['run']} runs; {status.count('done')} done, {status.count('failed')} failed.  "
                   "Runs that differ only in their seed form a group; figures show the group mean (line) and the "
                   "min-max range over its seeds (band); failed runs are left out of the figures.")
    report.table(["grid axis", "values"], axes)
    failed = [[str(r), str(e)] for r, s, e in zip(ds.run.values, status, ds["error"].values) if s != "done"]
    if failed:
        report.table(["run", "error"], failed, caption="failed runs")
    groups = viz.sweep_groups(ds)
    done = []
    if "effective_rank" in ds:
        definition = str(ds.definition.values[0])
        report.section("Effective ranks over training",
                       f"Effective rank ({definition}) of K, P and P K P* at the collapse checkpoints, per group.")
        report.figure(viz.plot_sweep_effective_rank(ds, definition), "sweep_effective_ranks",
                      f"Effective rank ({definition}) over training; mean over seeds, band = min-max over seeds.")
        done.append("collapse")
    if "score" in ds:
        report.section("Similarity to the recordings over training",
                       "Scores of each run's hidden activity against each recording (session) at the compare "
                       "checkpoints (step 0 = untrained), per group.  Conventions: similarity = larger is more "
                       "similar; angle/distance = smaller is more similar.")
        report.figure(viz.plot_sweep_similarity(ds), "sweep_similarity",
                      "Score over training per measure (rows) and session (columns); mean over seeds, band = "
                      "min-max over seeds.")
        last, rows = _final_scores(ds, groups)
        report.table(["session", "measure", "group", "seeds", "mean", "SD over seeds"], rows,
                     caption=f"scores at step {last}")
        done.append("comparison")
    if "alignment" in ds:
        report.section("Sub-task alignment",
                       "alignment[i, j] = cos(δz_{i←j}, δz_{i←i}) at the last sub-task checkpoint, averaged over "
                       "the seeds of each group.")
        report.figure(viz.plot_sweep_task_matrix(ds, "alignment"), "sweep_subtask_alignment",
                      "Sub-task alignment matrix averaged over seeds, one panel per group.")
        done.append("sub-task alignment")
    if not done:
        report.paragraph("The sweep computed no analysis ([compute] collapse_at, compare_at and subtask_at are all "
                         "empty), so there are no figures beyond this summary.")
    return report.write(out)
