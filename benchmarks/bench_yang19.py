"""Training benchmark: one network on all 20 Yang 2019 tasks (``tasks.make("yang19")``) at CPU size.

Trains until the mean over tasks of Yang's performance measure (fixation kept, ring response within
36°, read at each trial's last step; :func:`neurokpflow.tasks.score_ring_response_within`) reaches
``--target`` on fresh random trials, or until ``--max-minutes`` have passed.  It prints the learning
curve (mean and worst task at every evaluation) and, at the end, the per-task performance on a
fresh evaluation set and on the original ``mode="test"`` grids, then the task-variance clusters of
the trained network (Yang's analysis: :func:`neurokpflow.analysis.task_variance.cluster_units`) and
the effect of lesioning each cluster.

The evaluation sets are random trials from the training distributions (``mode="random"``, input noise on,
recurrent noise off) but with the epoch timings drawn per trial rather than once per task and batch (so
that one evaluation covers many timings), ``--eval-trials`` per task in expectation, fixed across
evaluations; the final evaluation uses 256 fresh trials per task.
The curve is also appended to ``OUT/curve.csv``; a run stopped early continues with ``--resume``.

Measured on a shared 2-core CPU (one thread, seed 0): the GRU of 128 units reached the 90 % criterion at
step 5,750 (17.8 min; 0.920 on 256 fresh trials per task, 0.945 on the test grids), with 2 task-variance
clusters (Go-like and Anti-like; silhouette 0.264 at k = 2, at most 0.209 elsewhere).  A Yang-style rectified
network (``--kind rnn --hidden 256``: softplus, α = 1 at dt = τ = 100 ms) reached it at step 11,500 (43 min;
0.910 fresh, 0.939 grid) and formed 14 clusters, as in Yang 2019 (silhouette 0.256 at k = 14).  The weakest
tasks are the context decisions (0.65-0.70 on fresh trials for both networks).

    python benchmarks/bench_yang19.py                         # GRU 128, dt = 100 ms, until 90 %
    python benchmarks/bench_yang19.py --max-minutes 60 --out runs/yang19
    python benchmarks/bench_yang19.py --out runs/yang19 --resume --max-minutes 30
    python benchmarks/bench_yang19.py --out runs/yang19 --analyse-only
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from neurokpflow import models, tasks, training

EVAL_SEED, FINAL_SEED = 10_001, 20_002


def evaluate(model, task, batch):
    """Yang's performance per task (dict) on ``batch``, recurrent noise off."""
    with torch.no_grad():
        outputs, _ = model(batch.inputs, full_state=False)
    return task.accuracy(outputs, batch)


def short(name):
    return name.split(".", 1)[-1]


def eval_task(task):
    """The same suite with epoch timings drawn per trial (evaluation only)."""
    return tasks.mix([tasks.make(t.name, **{**t.options, "sample_timing": "per_trial"}) for t in task.tasks])


def train(args, task, out):
    curve_file = out / "curve.csv"
    eval_batch = eval_task(task).sample(args.eval_trials * len(task.tasks), seed=EVAL_SEED)
    start = time.perf_counter()
    state = {"last": None}

    def callback(step, loss, model):
        if step % args.eval_every:
            return False
        acc = evaluate(model, task, eval_batch)
        mean, worst = float(np.mean(list(acc.values()))), min(acc, key=acc.get)
        elapsed = time.perf_counter() - start
        line = f"{step},{elapsed:.1f},{float(loss):.5f},{mean:.4f},{short(worst)},{acc[worst]:.4f}"
        print(f"step {step:6d}  {elapsed / 60:6.1f} min  loss {float(loss):.4f}  mean perf {mean:.3f}  "
              f"worst {short(worst)} {acc[worst]:.3f}", flush=True)
        with open(curve_file, "a") as f:
            f.write(line + "\n")
        state["last"] = (step, mean)
        return mean >= args.target or elapsed > 60 * args.max_minutes

    if args.resume:
        result = training.resume(out, steps=args.steps, callback=callback, progress=False, device="cpu")
    else:
        model = models.make(args.kind, task.n_inputs, args.hidden, task.n_outputs, seed=args.seed,
                            **({"alpha": min(1.0, args.dt / 0.1), "activation": "softplus"} if args.kind == "rnn" else {}))
        out.mkdir(parents=True, exist_ok=True)
        with open(curve_file, "w") as f:
            f.write("step,elapsed_s,train_loss,mean_perf,worst_task,worst_perf\n")
        print(f"{args.kind.upper()} with {args.hidden} units on {len(task.tasks)} tasks "
              f"({task.n_inputs} inputs, {task.n_outputs} outputs), dt = {args.dt * 1000:.0f} ms, batch "
              f"{args.batch_size}, Adam lr {args.lr}; {model.cell.weight_hh.numel() + model.cell.weight_ih.numel()} "
              "recurrent + input weights", flush=True)
        result = training.train(model, task, steps=args.steps, out_dir=out, batch_size=args.batch_size, lr=args.lr,
                                clip_grad_norm=1.0, checkpoint_every=args.eval_every * 4, eval_every=args.steps,
                                callback=callback, progress=False, device="cpu", seed=args.seed)
    print(f"stopped at step {result.step} ({result.stop_reason}) after {(time.perf_counter() - start) / 60:.1f} "
          "min in this session", flush=True)
    return result.model


def final_report(model, task):
    fresh = eval_task(task).sample(256 * len(task.tasks), seed=FINAL_SEED)
    acc = evaluate(model, task, fresh)
    grid = task.test_grid()
    acc_grid = evaluate(model, task, grid)
    print("\nperformance per task (Yang's measure): fresh random trials | mode='test' grid")
    for name in task.task_names:
        print(f"  {short(name):16s} {acc[name]:.3f} | {acc_grid[name]:.3f}")
    print(f"  {'MEAN':16s} {np.mean(list(acc.values())):.3f} | {np.mean(list(acc_grid.values())):.3f}", flush=True)
    return grid


def clusters_report(model, task, grid):
    from neurokpflow.analysis import task_variance as tv

    activity = models.record(model, grid)
    clusters = tv.cluster_units(activity)
    k = clusters.attrs["n_clusters"]
    print(f"\ntask-variance clusters (Yang 2019): {clusters.sizes['unit']} active units of "
          f"{activity.sizes['unit']} (total variance > {clusters.attrs['active_threshold']:g}), {k} clusters "
          f"chosen by silhouette ({clusters.attrs['method']})")
    best = clusters["silhouette"].sortby(clusters["silhouette"], ascending=False)[:5]
    print("  silhouette by k (best 5): " + ", ".join(f"k={int(k)} {float(v):.3f}" for k, v in zip(best["k"], best)))
    nv = clusters["normalized_variance"]
    for c in range(k):
        members = nv.where(clusters["cluster"] == c, drop=True)
        mean = members.mean("unit")
        top = [short(t) for t in mean.sortby(mean, ascending=False)["task"].values[:4]]
        print(f"  cluster {c:2d}: {members.sizes['unit']:3d} units; highest normalised variance in "
              + ", ".join(f"{t} ({float(mean.sel(task='yang19.' + t)):.2f})" for t in top))
    lesions = tv.lesion_effects(model, task, eval_task(task).sample(64 * len(task.tasks), seed=FINAL_SEED + 1),
                                clusters)
    change = lesions["performance_change"]
    print("\nlargest performance drop per lesioned cluster")
    for lesion in change["lesion"].values:
        row = change.sel(lesion=lesion)
        worst = row.sortby(row)["task"].values[:3]
        print(f"  {lesion:12s} " + ", ".join(f"{short(t)} {float(row.sel(task=t)):+.2f}" for t in worst))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", default="gru", choices=("gru", "rnn", "lstm"))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--dt", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--steps", type=int, default=200_000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-trials", type=int, default=64)
    p.add_argument("--target", type=float, default=0.90)
    p.add_argument("--max-minutes", type=float, default=90.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench-yang19")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--analyse-only", action="store_true", help="skip training; analyse the last checkpoint of --out")
    args = p.parse_args()
    torch.set_num_threads(1)
    task = tasks.make("yang19", dt=args.dt)
    out = Path(args.out)
    if args.analyse_only:
        model, info = training.load_checkpoint(training.list_checkpoints(out)[-1])
        print(f"checkpoint at step {info['step']}")
    else:
        model = train(args, task, out)
    model.eval()
    grid = final_report(model, task)
    clusters_report(model, task, grid)


if __name__ == "__main__":
    main()
