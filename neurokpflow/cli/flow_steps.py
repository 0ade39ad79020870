"""The similarity-flow step: which gradient moves the model toward the recording, and how much K turns aside."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .._io import write_netcdf
from ..training.runs import run_checkpoints

__all__ = ["flow_run", "flow_summary"]


def flow_run(run_dir, recording, out_dir, report, *, lr, every=1, measure="procrustes", progress=False):
    """:func:`neurokpflow.analysis.similarity_flow` over the checkpoints of an Adam run.

    The model's trials are the test grid that ``compare`` uses (same pairing: the recording's sorted
    condition labels for angle indices, bin centres, linear resampling onto the recording's bins).
    Writes ``out_dir/similarity_flow.nc``, adds a section to ``report`` and returns the Dataset.
    """
    from .. import tasks
    from ..analysis import similarity_flow
    from ..training import load_checkpoint
    from ..viz import plot_similarity_flow
    from .analysis_steps import evaluation_batch

    paths = run_checkpoints(run_dir)
    chosen = paths[::every] if paths[::every][-1] == paths[-1] else paths[::every] + [paths[-1]]
    _, info = load_checkpoint(chosen[0])
    task = tasks.from_spec(info["task_spec"])
    labels = np.unique(recording["condition"].values)
    batch = evaluation_batch(task, len(labels))
    flow = similarity_flow(chosen, batch, recording, measure=measure, lr=lr, preconditioner="adam",
                           condition_labels=tuple(labels.tolist()), time="resample", check=True, progress=progress)
    write_netcdf(flow, Path(out_dir) / "similarity_flow.nc")
    rows = []
    for step in flow["step"].values:
        for name in flow["task"].values:
            r = flow.sel(step=step, task=name)
            rows.append([int(step), str(name), float(r["score"]), f"{float(r['predicted']):.3g}",
                         f"{float(r['predicted_direct']):.3g}", f"{float(r['cosine']):.3f}",
                         f"{float(r['cosine_direct']):.3f}", f"{float(r['predicted_adam']):.3g}",
                         f"{float(r['predicted_adam_step_total']):.3g}", f"{float(r['measured']):.3g}"])
    report.section(
        "Similarity flow: what one gradient step does to the similarity",
        f"At each checkpoint, the first-order change of the Procrustes similarity to the recording under one step "
        f"at learning rate {lr:g} on the test-grid loss: δS = ⟨∇_z S, δz⟩ with δz = −η P K P* Err as realised by "
        "gradient descent, δz = −η P P* Err for direct (functional) gradient descent (K = I), and with Adam's "
        "frozen diagonal preconditioner at that checkpoint (K → J D J*; an approximation: Adam's momentum and "
        "its update of v are left out), and for Adam's actual next step (the gradient part with v updated, plus "
        "the drift of its momentum from past batches, which belongs to no task).  Positive = more similar (minus the change of the angle).  The cosine "
        "cos(∇_z S, δz) is scale-free: how squarely the step points up the similarity gradient.  'measured' is "
        "one real Adam step with the checkpoint's optimiser state, taken on a copy.")
    report.table(["step", "error of task", "Procrustes angle", "δS, GD (P K P*)", "δS, direct (P P*)", "cos, GD", "cos, direct",
                  "δS, Adam-preconditioned (frozen D)", "δS, Adam's next step (with momentum)",
                  "δS, measured Adam step"], rows)
    report.figure(plot_similarity_flow(flow), "similarity_flow",
                  "Predicted similarity gain accumulated over training (Adam-preconditioned; per-step predictions "
                  "interpolated between checkpoints) next to the similarity the checkpoints actually reached. The "
                  "run trained on random batches, so the two agree in direction and order of magnitude, not exactly.")
    return flow


def flow_summary(flow) -> dict:
    """The headline numbers of a similarity-flow result at its first and last checkpoint."""
    def at(step):
        r = flow.sel(step=step)
        per_task = {str(t): {"predicted_gd": float(r["predicted"].sel(task=t)),
                             "predicted_direct": float(r["predicted_direct"].sel(task=t)),
                             "cosine_gd": float(r["cosine"].sel(task=t)),
                             "cosine_direct": float(r["cosine_direct"].sel(task=t)),
                             "predicted_adam": float(r["predicted_adam"].sel(task=t))} for t in flow["task"].values}
        return {"step": int(step), "procrustes_angle": float(r["score"]), "per_task": per_task,
                "predicted_adam_total": float(r["predicted_adam"].sum()),
                "predicted_adam_step": float(r["predicted_adam_step_total"]),
                "predicted_adam_momentum": float(r["predicted_adam_momentum"]), "measured_adam": float(r["measured"]),
                "relative_error_adam": float(r["relative_error"])}

    steps = flow["step"].values
    return {"lr": float(flow.attrs["lr"]), "sign": flow.attrs["sign"], "first": at(steps[0]), "last": at(steps[-1])}
