"""Which factor decides the KPFlow paper's "dynamic collapse of P"?  One factor at a time.

Trains the paper's tanh RNN on Memory-Pro under the reference protocol and under variants that
each change one training factor to the package's value (data set, clip, initialisation, stopping
loss, batch size), then ranks K and P at every checkpoint under the package's ER1, the reference
figure's definition and the one-factor variants between the two definitions
(:mod:`neurokpflow.analysis.rank_conventions`).

Usage (from the repository root; every run is resumable, results go to --out):
    python benchmarks/collapse_attribution.py [--out results/attribution] [--hidden 64] [--steps 2000]
        [--period 30] [--only reference no_clip ...] [--figures docs/img]

Reduced sizes (against the reference's H=256, 10 000 steps): --hidden (default 64), --steps
(default 2000), four evaluation trials as in the reference figure.  Prints one table per
training variant: the first / last / minimum P rank and the K range under each rank convention,
the final loss and accuracy, and the step where P first falls below half its start.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from neurokpflow import models, training
from neurokpflow.analysis import rank_conventions as rc

#: training variants: one factor changed from the reference protocol to the package's value
TRAINING_VARIANTS = {
    "reference": {},
    "fresh_data": {"dataset_size": None},
    "no_clip": {"clip_grad_norm": None},
    "normal_init": {"init": "normal"},
    "batch_64": {"batch_size": 64},
    "package": {"dataset_size": None, "batch_size": 64, "clip_grad_norm": None, "init": "normal",
                "target_loss": None, "log_every": 10},
    # which part of the initialisation: the recurrent scale alone (torch init at spectral radius ≈ 1, normal
    # init at the torch init's radius ≈ 0.577)
    "torch_init_g1.73": {"g": 3 ** 0.5},
    "normal_init_g0.577": {"init": "normal", "g": 3 ** -0.5},
}


def conventions():
    """The package's ER1, the reference figure's, and every one-factor step between them (both ways),
    plus the two reductions the reference figure did not use."""
    out = [rc.PACKAGE_RANK, rc.PAPER_FIGURE_RANK]
    out += rc.one_factor_variants(rc.PAPER_FIGURE_RANK, rc.PACKAGE_RANK)
    out += rc.one_factor_variants(rc.PACKAGE_RANK, rc.PAPER_FIGURE_RANK)
    out += [rc.PAPER_FIGURE_RANK.replace(name="paper_figure, keep=(trial, time)", keep=("trial", "time")),
            rc.PAPER_FIGURE_RANK.replace(name="paper_figure, reduction=partial_trace", reduction="partial_trace")]
    return out


def half_step(steps, values):
    """First step at which ``values`` falls below half its first value (None if never)."""
    below = np.nonzero(np.asarray(values) < values[0] / 2)[0]
    return int(steps[below[0]]) if below.size else None


def train_variant(name, changes, args, out):
    changes = dict(changes)
    g = changes.pop("g", args.g)
    proto = training.REFERENCE.replace(name=name, max_steps=args.steps, period=args.period,
                                       checkpoint_every=args.checkpoint_every, **changes)
    task = proto.task()
    build = lambda: models.make("rnn", task.n_inputs, args.hidden, task.n_outputs, seed=0,  # noqa: E731
                                **proto.model_options(g))
    run = out / name
    t0 = time.perf_counter()
    if training.list_checkpoints(run):
        training.resume(run, progress=False, device="cpu")
    else:
        training.train(build(), task, proto.max_steps, run, progress=False, device="cpu", **proto.train_options())
    return task, build, run, time.perf_counter() - t0


def rank_run(task, build, run, conv, args):
    path = run / "ranks.nc"
    if path.exists():
        return xr.load_dataset(path)
    cks = [(0, build())] + training.list_checkpoints(run)
    ds = rc.convention_ranks(cks, task.test_grid(n_angles=args.trials), conv, task=task, progress=False)
    tmp = path.with_suffix(".tmp.nc")
    ds.to_netcdf(tmp)
    tmp.replace(path)
    return ds


def table(name, ds, seconds):
    steps = ds.step.values
    lines = [f"\n## {name}: final loss {float(ds.loss[-1]):.4g}, accuracy {float(ds.accuracy[-1]):.2f}, "
             f"last step {int(steps[-1])} ({seconds:.0f} s)",
             "| rank convention | P first | P last | P min | step P < half start | K min–max |", "|---|---|---|---|---|---|"]
    for c in ds.convention.values:
        P = ds.effective_rank.sel(convention=c, operator="P").values
        K = ds.effective_rank.sel(convention=c, operator="K").values
        lines.append(f"| {c} | {P[0]:.2f} | {P[-1]:.2f} | {P.min():.2f} | {half_step(steps, P)} | "
                     f"{K.min():.2f}–{K.max():.2f} |")
    return "\n".join(lines)


def figures(results, out_dir, label):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = ["package", "paper_figure", "paper_figure, squared=False", "paper_figure, top_k=None",
             "paper_figure, time_index=package"]
    ref = results["reference"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in shown:
        if c in ref.convention.values:
            axes[0].plot(ref.step, ref.effective_rank.sel(convention=c, operator="P"), marker=".", label=c)
            axes[1].plot(ref.step, ref.effective_rank.sel(convention=c, operator="K"), marker=".", label=c)
    axes[0].set_title(f"P (through P P*), reference protocol, {label}", fontsize=9)
    axes[1].set_title(f"K, reference protocol, {label}", fontsize=9)
    for ax in axes:
        ax.set_xlabel("training step")
        ax.set_ylabel("effective rank")
    ax2 = axes[0].twinx()
    ax2.semilogy(ref.step, ref.loss, color="k", ls=":", label="loss")
    ax2.set_ylabel("loss (dotted)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "collapse_rank_definitions.png", dpi=110)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ds in results.items():
        ax.plot(ds.step, ds.effective_rank.sel(convention="paper_figure", operator="P"), marker=".", label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("P effective rank (reference figure's definition)")
    ax.set_title(f"one training factor changed at a time, {label}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "collapse_training_factors.png", dpi=110)
    plt.close("all")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/attribution")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--period", type=int, default=30, help="steps per Memory-Pro period (T = 3·period)")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--trials", type=int, default=4, help="evaluation trials (the reference figure used 4)")
    parser.add_argument("--g", type=float, default=1.0)
    parser.add_argument("--only", nargs="*", default=list(TRAINING_VARIANTS), choices=list(TRAINING_VARIANTS))
    parser.add_argument("--figures", default=None, help="folder for the PNG figures (e.g. docs/img)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out) / f"H{args.hidden}_T{3 * args.period}_g{args.g:g}"
    out.mkdir(parents=True, exist_ok=True)
    conv = conventions()
    results, text = {}, [f"# Collapse attribution: tanh RNN H={args.hidden}, T={3 * args.period}, g={args.g:g}, "
                         f"{args.steps} steps max, {args.trials} evaluation trials"]
    for name in args.only:
        task, build, run, seconds = train_variant(name, TRAINING_VARIANTS[name], args, out)
        ds = rank_run(task, build, run, conv, args)
        results[name] = ds
        text.append(table(name, ds, seconds))
        print(text[-1], flush=True)
    (out / "summary.md").write_text("\n".join(text) + "\n")
    (out / "summary.json").write_text(json.dumps({n: {
        "steps": ds.step.values.tolist(), "loss": ds.loss.values.tolist(), "accuracy": ds.accuracy.values.tolist(),
        "P": {c: ds.effective_rank.sel(convention=c, operator="P").values.tolist() for c in ds.convention.values},
        "K": {c: ds.effective_rank.sel(convention=c, operator="K").values.tolist() for c in ds.convention.values}}
        for n, ds in results.items()}, indent=1))
    if args.figures and "reference" in results:
        figures(results, Path(args.figures), f"tanh RNN H={args.hidden}, T={3 * args.period}")


if __name__ == "__main__":
    main()
