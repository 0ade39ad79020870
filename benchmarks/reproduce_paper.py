"""Reproduce the KPFlow paper's two findings at CPU size (default) or paper size (``--paper``).

1. Dynamic collapse (Memory-Pro, tanh RNN over an initial-scale sweep g): effective ranks of K,
   P and P K P* over training (ER1, 95 % variance, time-reduced block average), misdirection
   KA(P K P*, P P*) at initialisation vs g, and whether K stays below P (K is the bottleneck).
2. Sub-task alignment (4-task Memory/Delay × Pro/Anti context mix, GRUs over seeds): the
   hidden-state alignment matrix over training, when Pro/Anti pairs separate from Delay/Memory
   pairs, and the cumulative decomposed-δz alignment (normalisation inferred, kpflow-math §10).

Writes figures (PNG), the analysis results (netCDF, resumable) and ``summary.md`` — a table
of the numbers found next to the values the authors reported (kpflow-math §13.17).

Usage (from the repository root):
    python benchmarks/reproduce_paper.py [--out results/reproduce] [--quick | --paper]

Sizes (H hidden units, training steps, checkpoints, seeds):
    --quick  : a smoke run of a few minutes (H=32, 300 steps, Memory-Pro g ∈ {1, 2}, 1 GRU seed)
    default  : H=64, Memory-Pro 800 steps × g ∈ {0.5, 1, 2}, 4-task mix 1500 steps × 2 seeds
    --paper  : H=256, Memory-Pro 10 000 steps (stop at loss 1e-3) × 10 g log-spaced in [1e-5, 5],
               4-task mix 5000 steps × 20 seeds, batch 200, gradient-norm clip 1e-4
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from neurokpflow import models, tasks, training
from neurokpflow.analysis import collapse, subtask_alignment
from neurokpflow.kpflow.ranks import threshold_rank
from neurokpflow.viz import plot_effective_rank, plot_eigenfunctions, plot_task_matrices, plot_task_trajectories

SIZES = {
    "quick": dict(hidden=32, mp_steps=300, gains=[1.0, 2.0], mp_trials=8, checkpoints=6,
                  mix_steps=300, seeds=[0], mix_angles=4, batch=64, clip=None, target_loss=None),
    "default": dict(hidden=64, mp_steps=800, gains=[0.5, 1.0, 2.0], mp_trials=16, checkpoints=10,
                    mix_steps=1500, seeds=[0, 1], mix_angles=8, batch=64, clip=None, target_loss=None),
    "paper": dict(hidden=256, mp_steps=10_000, gains=list(np.geomspace(1e-5, 5, 10)), mp_trials=50,
                  checkpoints=50, mix_steps=5000, seeds=list(range(20)), mix_angles=16, batch=200, clip=1e-4,
                  target_loss=1e-3),
}
PRO_ANTI = [("kpflow_memory_pro", "kpflow_memory_anti"), ("kpflow_delay_pro", "kpflow_delay_anti")]
DELAY_MEMORY = [("kpflow_memory_pro", "kpflow_delay_pro"), ("kpflow_memory_anti", "kpflow_delay_anti")]


def train_run(model, task, steps, out_dir, size):
    """Train (or resume a finished/interrupted run) and return its run directory."""
    every = max(steps // size["checkpoints"], 1)
    opts = dict(checkpoint_every=every, batch_size=size["batch"], lr=1e-3, clip_grad_norm=size["clip"],
                target_loss=size["target_loss"], progress=False, device="cpu", seed=0)
    if training.list_checkpoints(out_dir):
        training.resume(out_dir, progress=False, device="cpu")
    else:
        training.train(model, task, steps=steps, out_dir=out_dir, **opts)
    return out_dir


def with_initial(initial_model, run):
    """The run's checkpoints preceded by the untrained model as step 0 (the trainer saves none there)."""
    return [(0, initial_model)] + training.list_checkpoints(run)


def memory_pro(size, out):
    task = tasks.make("kpflow_memory_pro")
    grid = task.test_grid(n_angles=size["mp_trials"])
    results = {}
    for g in size["gains"]:
        run = out / f"memory_pro_g{g:.3g}"
        build = lambda: models.make("rnn", task.n_inputs, size["hidden"], task.n_outputs,  # noqa: E731
                                    activation="tanh", alpha=1.0, form="rate", g=float(g), seed=0)
        t0 = time.perf_counter()
        train_run(build(), task, size["mp_steps"], run, size)
        t1 = time.perf_counter()
        ds = collapse(with_initial(build(), run), grid, task=task, n_modes=3, out=run / "collapse.nc", progress=True)
        print(f"memory-pro g={g:.3g}: train {t1 - t0:.0f} s, collapse {time.perf_counter() - t1:.0f} s, "
              f"final accuracy {float(ds.accuracy.isel(step=-1).mean()):.2f}", flush=True)
        results[g] = ds
        plot_effective_rank(ds, "ER1").savefig(out / f"collapse_rank_g{g:.3g}.png", dpi=120)
        for step in (int(ds.step[0]), int(ds.step[-1])):
            plot_eigenfunctions(ds, "K", step=step).savefig(out / f"K_eigenfunctions_g{g:.3g}_step{step}.png", dpi=120)
    return results


def multitask(size, out):
    task = tasks.make("kpflow_multitask")
    grid = task.test_grid(n_angles=size["mix_angles"])
    results = []
    for seed in size["seeds"]:
        run = out / f"multitask_seed{seed}"
        build = lambda: models.make("gru", task.n_inputs, size["hidden"], task.n_outputs, seed=seed)  # noqa: E731
        t0 = time.perf_counter()
        train_run(build(), task, size["mix_steps"], run, size)
        t1 = time.perf_counter()
        ds = subtask_alignment(with_initial(build(), run), grid, out=run / "alignment.nc", progress=True)
        log = training.load_checkpoint(training.list_checkpoints(run)[-1])[1]
        print(f"4-task seed {seed}: train {t1 - t0:.0f} s, alignment {time.perf_counter() - t1:.0f} s "
              f"(last step {log['step']})", flush=True)
        results.append(ds)
        if seed == size["seeds"][0]:
            plot_task_matrices(ds, "hidden_alignment", steps=[int(s) for s in ds.step.values[[0, len(ds.step) // 2, -1]]],
                               vmin=0).savefig(out / "hidden_alignment.png", dpi=120)
            plot_task_matrices(ds, "alignment").savefig(out / "dz_alignment.png", dpi=120)
            plot_task_trajectories(ds).savefig(out / "cumulative_alignment.png", dpi=120)
    return results


def pair_mean(da, pairs):
    return float(np.mean([(da.sel(task_i=a, task_j=b) + da.sel(task_i=b, task_j=a)) / 2 for a, b in pairs]))


def first_separation(ds):
    """First checkpoint from which the Pro/Anti hidden alignment stays above the Delay/Memory one."""
    gap = np.array([pair_mean(ds.hidden_alignment.sel(step=s), PRO_ANTI)
                    - pair_mean(ds.hidden_alignment.sel(step=s), DELAY_MEMORY) for s in ds.step.values])
    above = gap > 0
    for k in range(len(above)):
        if above[k:].all():
            return int(ds.step.values[k])
    return None


def summary(size_name, size, mp, mt, seconds) -> str:
    g1 = min(mp, key=lambda g: abs(g - 1.0))
    d = mp[g1]
    er = d.effective_rank.sel(definition="ER1")
    rows = []
    add = lambda q, found, reported: rows.append(f"| {q} | {found} | {reported} |")  # noqa: E731
    add(f"P effective rank (ER1), g={g1:.3g}: first → last checkpoint",
        f"{float(er.sel(operator='P').isel(step=0)):.1f} → {float(er.sel(operator='P').isel(step=-1)):.1f}",
        "≈ 37–40 for ~7 checkpoints, then ≈ 1–3")
    add(f"K effective rank (ER1), g={g1:.3g}: first → last",
        f"{float(er.sel(operator='K').isel(step=0)):.2f} → {float(er.sel(operator='K').isel(step=-1)):.2f}",
        "≈ 1 before training, ≈ 3 after (K stays ≈ 1 over GD)")
    add(f"P K P* effective rank (ER1), g={g1:.3g}: first → last",
        f"{float(er.sel(operator='PKP*').isel(step=0)):.2f} → {float(er.sel(operator='PKP*').isel(step=-1)):.2f}",
        "≈ 1 eigenfunction at initialisation")
    paper_er1 = lambda op, k, i: threshold_rank(  # noqa: E731
        np.sort(d.reduced_spectrum.sel(operator=op).isel(step=i).values)[::-1][:k] ** 2)
    add(f"paper-era ER1 (top-k eigenvalues squared, k=60 for P / 20 for K), g={g1:.3g}: P first → last; K first → last",
        f"P {paper_er1('P', 60, 0):.1f} → {paper_er1('P', 60, -1):.1f}; K {paper_er1('K', 20, 0):.2f} → "
        f"{paper_er1('K', 20, -1):.2f}", "P ≈ 37–40 → 1–3; K ≈ 1 → 3")
    bottleneck = all(bool((ds.effective_rank.sel(definition="ER1", operator="P")
                           >= ds.effective_rank.sel(definition="ER1", operator="K")).all()) for ds in mp.values())
    add("P's ER1 ≥ K's at every checkpoint and g (K is the bottleneck)", "yes" if bottleneck else "no",
        "yes, across cells, nonlinearities and g")
    add("K's ER1 at initialisation vs g", ", ".join(
        f"g={g:.3g}: {float(ds.effective_rank.sel(definition='ER1', operator='K').isel(step=0)):.2f}"
        for g, ds in mp.items()), "rises with g")
    add("misdirection KA(PKP*, PP*) at initialisation vs g", ", ".join(
        f"g={g:.3g}: {float(ds.misdirection.isel(step=0)):.3f}" for g, ds in mp.items()), "plotted vs g (values not given)")
    add("Memory-Pro final accuracy vs g", ", ".join(
        f"g={g:.3g}: {float(ds.accuracy.isel(step=-1).mean()):.2f}" for g, ds in mp.items()),
        "larger g learns faster")
    last = [ds.isel(step=-1) for ds in mt]
    pa = [pair_mean(d.hidden_alignment, PRO_ANTI) for d in last]
    dm = [pair_mean(d.hidden_alignment, DELAY_MEMORY) for d in last]
    add("hidden alignment at the end, Pro/Anti pairs (mean over seeds)", f"{np.mean(pa):.2f}", "≈ 0.95–1.0")
    add("hidden alignment at the end, Delay/Memory pairs", f"{np.mean(dm):.2f}", "≈ 0.2–0.6 (mean ≈ 0.5)")
    sep = [first_separation(ds) for ds in mt]
    add("step from which Pro/Anti hidden alignment stays above Delay/Memory", ", ".join(map(str, sep)),
        "≈ 1100–1200 of 5000")
    cpa = [pair_mean(d.cumulative_alignment, PRO_ANTI) for d in last]
    cdm = [pair_mean(d.cumulative_alignment, DELAY_MEMORY) for d in last]
    n_ck = len(mt[0].step)
    add(f"cumulative δz alignment at the end (sum over {n_ck} checkpoints; inferred normalisation), Pro/Anti vs "
        "Delay/Memory", f"{np.mean(cpa):.1f} vs {np.mean(cdm):.1f}", "≈ 380–400 vs ≈ 0–270 (mean ≈ 190) at 5000")
    early = [pair_mean(ds.alignment.isel(step=0), PRO_ANTI) - pair_mean(ds.alignment.isel(step=0), DELAY_MEMORY)
             for ds in mt]
    add("δz alignment favours Pro/Anti at the first checkpoint (Pro/Anti − Delay/Memory)",
        ", ".join(f"{e:+.3f}" for e in early), "favours Pro/Anti from the start")
    header = (f"# KPFlow reproduction ({size_name} size)\n\n"
              f"H={size['hidden']}, Memory-Pro {size['mp_steps']} steps × g {[round(float(g), 3) for g in size['gains']]}, "
              f"4-task mix {size['mix_steps']} steps × {len(size['seeds'])} seed(s); total {seconds / 60:.1f} min on CPU.\n\n"
              "| quantity | found | reported (kpflow-math §13.17, read from the poster) |\n|---|---|---|\n")
    notes = (
        "\n## Why the numbers can differ\n\n"
        "- Size: the default run is CPU-sized (H=64, fewer steps, fewer seeds and test trials) against the paper's "
        "H=256, 50 trials, 20 seeds; the qualitative claims are what can be compared.\n"
        "- Time index: neurokpflow evaluates J and J_θ at (z(t−1), x(t)); the paper-era code used (z(t), x(t)), "
        "which changes P K P* by 11–25 % (kpflow-math §12.2).\n"
        "- ER1 here is normalised over *all* eigenvalues of the time-reduced Gram operator (eigenvalues λ of P P*, "
        "not squared again); the paper-era code normalised over the top 20 (K) / 60 (P) and thresholded σ⁴.\n"
        "- The cumulative δz alignment's normalisation is not recoverable from the sources; ours sums "
        "cos(δz_{i←j}, δz_{i←i}) over checkpoints, so its scale (≤ number of checkpoints) is not comparable with the "
        "paper's ≈ 400 — only the ordering Pro/Anti vs Delay/Memory is.\n"
        "- Hidden-state alignment pools by the trial mean of each task (flattened over time and units); the "
        "paper's pooling is not given.\n"
        "- Training follows the trainer's fresh-noise batches (the reference used a fixed noisy set of 5000 trials) "
        "and Adam without the paper's 1e-4 gradient-norm clip except with --paper.\n")
    return header + "\n".join(rows) + "\n" + notes


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/reproduce_paper", help="output folder (resumable)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--paper", action="store_true", help="paper-sized run (hours; a GPU helps)")
    group.add_argument("--quick", action="store_true", help="a few-minute smoke run")
    args = parser.parse_args()
    size_name = "paper" if args.paper else "quick" if args.quick else "default"
    size = SIZES[size_name]
    out = Path(args.out) / size_name
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    t0 = time.perf_counter()
    mp = memory_pro(size, out)
    mt = multitask(size, out)
    text = summary(size_name, size, mp, mt, time.perf_counter() - t0)
    (out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
