"""Training benchmark (CPU by default; ``--device cuda`` for a GPU).

1. GRU (H=128) on MemoryPro (Driscoll I/O, dt = 100 ms): steps and wall time to reach the
   target test-grid accuracy (18° criterion); the run must end at >= 90 %.
2. GRU (H=128) on the 4-task mix Memory/Delay × Pro/Anti: >= 80 % on every task.
3. Trainer overhead: steps/s of ``training.train`` vs a plain hand-written PyTorch loop on the
   same model, task and batches, measured side by side in alternating blocks.

    python benchmarks/train_memorypro.py            # full run
    python benchmarks/train_memorypro.py --quick    # shorter budgets
    python benchmarks/train_memorypro.py --device cuda --skip mix
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neurokpflow import models, tasks, training


def fit(task, steps, out_dir, args, target):
    model = models.make("gru", task.n_inputs, args.hidden, task.n_outputs, seed=args.seed)
    start = time.perf_counter()
    result = training.train(model, task, steps=steps, out_dir=out_dir, batch_size=args.batch_size, lr=args.lr,
                            checkpoint_every=args.eval_every, eval_grid={"n_angles": 32},
                            target_accuracy=target, device=args.device, progress=args.progress, seed=args.seed)
    wall = time.perf_counter() - start
    accuracy = dict(zip(result.log.task.values.tolist(), result.log.accuracy.values[-1].tolist()))
    return result, wall, accuracy


def plain_loop(model, task, n_steps, batch_size, seed, first_step, device="cpu"):
    """The reference: sample, forward, masked MSE, backward, Adam step — nothing else."""
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    for step in range(first_step, first_step + n_steps):
        batch = task.sample(batch_size, seed=np.random.SeedSequence([seed, step, 0]))
        inputs, targets, mask = (t.to(device) for t in (batch.inputs, batch.targets, batch.mask))
        outputs, _ = model(inputs, full_state=False)
        loss = (((outputs - targets) * mask) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return n_steps / (time.perf_counter() - start)


def overhead(task, args, root):
    """Median steps/s of both loops over alternating blocks in ABBA order (cancels load drift)."""
    warm = models.make("gru", task.n_inputs, args.hidden, task.n_outputs, seed=args.seed)
    plain_loop(warm, task, 5, args.batch_size, args.seed, 0, args.device)  # warm-up (allocator, kernels) outside the timing
    rates = {"plain": [], "trainer": []}
    cpu = {"plain": [], "trainer": []}
    for block in range(args.blocks):
        order = ("plain", "trainer") if block % 2 == 0 else ("trainer", "plain")
        for which in order:
            model = models.make("gru", task.n_inputs, args.hidden, task.n_outputs, seed=args.seed)
            cpu_start = time.process_time()
            if which == "plain":
                rates["plain"].append(plain_loop(model, task, args.overhead_steps, args.batch_size, args.seed, 0,
                                                args.device))
                cpu["plain"].append(args.overhead_steps / (time.process_time() - cpu_start))
                continue
            start = time.perf_counter()
            training.train(model, task, steps=args.overhead_steps, out_dir=root / f"overhead{block}",
                           batch_size=args.batch_size, checkpoint_every=args.overhead_steps,
                           log_every=args.overhead_steps, eval_grid={"n_angles": 32}, device=args.device, progress=False,
                           seed=args.seed)
            rates["trainer"].append(args.overhead_steps / (time.perf_counter() - start))
            cpu["trainer"].append(args.overhead_steps / (time.process_time() - cpu_start))
    med = lambda d: (statistics.median(d["plain"]), statistics.median(d["trainer"]))
    return med(rates), med(cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller step budgets")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dt", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--single-steps", type=int, default=3000)
    parser.add_argument("--mix-steps", type=int, default=8000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--overhead-steps", type=int, default=50)
    parser.add_argument("--blocks", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--progress", action="store_true", help="show the trainer's progress bars")
    parser.add_argument("--skip", nargs="*", default=[], choices=["single", "mix", "overhead"])
    args = parser.parse_args()
    if args.quick:
        args.single_steps, args.mix_steps, args.overhead_steps, args.blocks = 1000, 3000, 40, 2
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, GRU H={args.hidden}, dt={args.dt} s, "
          f"batch {args.batch_size}, Adam lr {args.lr}")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        memory_pro = tasks.make("memory_pro", dt=args.dt)
        if "single" not in args.skip:
            result, wall, acc = fit(memory_pro, args.single_steps, root / "single", args, target=0.95)
            good = acc["memory_pro"] >= 0.90
            ok &= good
            print(f"[memory_pro] steps {result.step}  wall {wall:.1f} s  test-grid accuracy "
                  f"{acc['memory_pro']:.3f} (18° criterion, 64 trials)  stop: {result.stop_reason}  "
                  f"{'PASS' if good else 'FAIL'} (>= 0.90)")
        if "mix" not in args.skip:
            four = tasks.mix([tasks.make(n, dt=args.dt) for n in ("memory_pro", "memory_anti", "delay_pro", "delay_anti")])
            result, wall, acc = fit(four, args.mix_steps, root / "mix", args, target=0.9)
            good = min(acc.values()) >= 0.80
            ok &= good
            per_task = ", ".join(f"{k} {v:.3f}" for k, v in acc.items())
            print(f"[4-task mix] steps {result.step}  wall {wall:.1f} s  accuracy {per_task}  "
                  f"stop: {result.stop_reason}  {'PASS' if good else 'FAIL'} (>= 0.80 each)")
        if "overhead" not in args.skip:
            (plain, trainer), (plain_cpu, trainer_cpu) = overhead(memory_pro, args, root)
            ratio = trainer / plain
            print(f"[overhead] per CPU second: plain {plain_cpu:.2f} steps, trainer {trainer_cpu:.2f} steps, "
                  f"ratio {trainer_cpu / plain_cpu:.3f} (less sensitive to other load on the machine)")
            print(f"[overhead] plain loop {plain:.2f} steps/s, trainer {trainer:.2f} steps/s "
                  f"(median of {args.blocks} ABBA-alternating blocks of {args.overhead_steps} steps; the trainer "
                  f"includes one evaluation and one checkpoint)  ratio {ratio:.3f}  "
                  f"{'PASS' if ratio >= 0.9 else 'FAIL'} (>= 0.90)")
            ok &= ratio >= 0.9
    print("ALL PASS" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
