"""Fixed-point finding: batched Levenberg-Marquardt vs a one-state-at-a-time Adam loop, in one run.

Workload: a 256-unit GRU (``models.make("gru", 3, 256, 2, g=2.0, seed=1)``) in float64, constant input
u = 0, 4096 initial states drawn from 8 trajectories of 100 steps (random inputs) plus noise of SD 0.05.
Target: q(h) = ½‖F(h, u) − h‖² < 1e-10 for every state.

* batched: :func:`neurokpflow.analysis.fixed_points.minimize_q` on all 4096 states (chunks of 512);
* loop: for each state on its own, ``torch.optim.Adam`` (lr 1e-2) on q until q < 1e-10 or
  ``--adam-iters`` steps.  Only ``--sample`` states are run; the loop time for 4096 states is their mean
  time × 4096 (stated in the output).  States that do not reach the target within the step cap make
  the extrapolation a lower bound.

    nice -n 10 python benchmarks/bench_fixed_points.py [--threads 2] [--sample 16] [--adam-iters 20000]

Runs on CUDA when available (``--device``).

One run with the finder's geodesic acceleration (default since it was added; 2-core CPU, 2 threads, shared
for part of the run with a 2-thread training job): batched 98.0 s, all 4096 states at q < 1e-10 in at most 5
steps (mean 4.0); Adam loop 6.01 s/state (16/16 sampled states reached the target, 197 steps on average) ->
24620 s extrapolated; speed-up 251.2x.  (Before the acceleration, on a machine at load ~7 with ``nice -n 10``:
batched 309.7 s, Adam 12.68 s/state, 167.7x.)
"""
import argparse
import time

import torch

from neurokpflow import models
from neurokpflow.analysis import fixed_points as fp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--states", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--sample", type=int, default=16)
    ap.add_argument("--adam-iters", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    tol = 1e-10
    model = models.make("gru", 3, args.hidden, 2, g=2.0, seed=1, dtype="float64").to(dev)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 100, 3, generator=gen, dtype=torch.float64).to(dev)
    with torch.no_grad():
        _, states = model(x)
    init = fp.initial_states(states, args.states, 0.05, seed=0).to(dev)
    u = torch.zeros(3, dtype=torch.float64, device=dev)
    print(f"device {dev}, threads {args.threads}, GRU H={args.hidden}, float64, {args.states} initial states, "
          f"target q < {tol:g}")

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    sync()
    t0 = time.perf_counter()
    z, q, iters = fp.minimize_q(model, u, init, fp.FixedPointOptions(tol_q=tol, chunk_size=512, max_iter=100))
    sync()
    t_batched = time.perf_counter() - t0
    reached = int((q < tol).sum())
    uniq = len(fp.unique_points(z[q < tol], q[q < tol], 1e-3))
    print(f"batched LM : {t_batched:9.2f} s  {reached}/{args.states} reached q < {tol:g}  "
          f"(max q {q.max().item():.2e}, steps max {int(iters.max())} mean {iters.float().mean():.1f}, "
          f"{uniq} unique points at 1e-3)")

    cell = model.cell
    per_state, hit, steps = [], 0, []
    for i in range(args.sample):
        h = init[i].clone().requires_grad_(True)
        opt = torch.optim.Adam([h], lr=1e-2)
        sync()
        t0 = time.perf_counter()
        for k in range(args.adam_iters):
            opt.zero_grad()
            g = cell(u[None], h[None])[0] - h
            loss = 0.5 * (g * g).sum()
            if loss.item() < tol:
                hit += 1
                break
            loss.backward()
            opt.step()
        sync()
        per_state.append(time.perf_counter() - t0)
        steps.append(k)
    mean = sum(per_state) / len(per_state)
    t_loop = mean * args.states
    bound = "" if hit == args.sample else " (lower bound: some states hit the step cap)"
    print(f"Adam loop  : {t_loop:9.2f} s  extrapolated = {mean:.3f} s/state (mean of {args.sample} states) "
          f"x {args.states}; {hit}/{args.sample} reached q < {tol:g} within {args.adam_iters} steps, "
          f"steps mean {sum(steps) / len(steps):.0f}{bound}")
    print(f"speed-up   : {t_loop / t_batched:9.1f}x")


if __name__ == "__main__":
    main()
