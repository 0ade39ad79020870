"""Spectral toolkit on the KPFlow operators, as ratios to F measured side by side in one run.

Workload (issue targets): GRU, H=256, B=50, T=90, float32, CPU.  F = one no-grad forward pass
of the fused ``nn.GRU`` on the batch.  Printed (times are best of ``--repeats``, in units of F):

* top-10 eigenpairs of the hidden-state NTK P K P* (block Lanczos, float32 matvecs, float64
  recurrences) and the relative deviation of the eigenvalues from a tighter solve;
* misdirection KA(P K P*, P P*) with a 30-probe shared sketch, construction included;
* trace, Frobenius norm and ER3 of P K P* to 1 % relative standard deviation: the budget is
  chosen from a pilot participation ratio (Hutchinson's relative error ≈ sqrt(2/(m·PR))), and
  the spread is checked over seeds; Hutch++ at the same budget is timed for comparison;
* exact (zero-variance) trace, diagonal and partial traces of K from the closed form.

Usage:  python benchmarks/bench_spectral.py [--B 50 --T 90 --H 256] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from neurokpflow.kpflow import (alignment, effective_rank, eigsh, frobenius_norm, operators, partial_trace,
                                trace, unit_separable_K)
from neurokpflow.models import GRUCell

I = 3


def best_of(fn, repeats):
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def workload(B, T, H, seed=0):
    torch.manual_seed(seed)
    gru = nn.GRU(I, H, batch_first=True)
    cell = GRUCell(I, H)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(gru, n + "_l0"))
    x = torch.randn(B, T, I)
    with torch.no_grad():
        hidden = gru(x)[0]
    return gru, cell, x, hidden


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=50)
    ap.add_argument("--T", type=int, default=90)
    ap.add_argument("--H", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rsd", type=float, default=0.01, help="target relative standard deviation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gru, cell, x, hidden = workload(args.B, args.T, args.H)

    def forward():
        with torch.no_grad():
            return gru(x)

    F, _ = best_of(forward, max(args.repeats, 10))
    print(f"GRU H={args.H} B={args.B} T={args.T}, float32, {args.threads} threads; F = {1e3 * F:.1f} ms")

    ops = operators(cell, x, hidden, chunk_size=16)
    t_build, _ = best_of(lambda: operators(cell, x, hidden, chunk_size=16), args.repeats)
    print(f"operators(...) construction              {t_build / F:8.1f} F")

    # ---- top-10 eigenpairs of the NTK
    t_eig, res = best_of(lambda: eigsh(ops.NTK, 10, seed=0), 1)
    tight = eigsh(ops.NTK, 10, seed=1, tol=1e-6, max_basis=60)
    dev = float(((res.values - tight.values).abs() / tight.values.abs()).max())
    print(f"eigsh(NTK, 10)                           {t_eig / F:8.1f} F   ({res.n_matvecs} matvecs, "
          f"max rel. residual {float(res.residuals.max() / res.values.abs().max()):.1e}, "
          f"eigenvalues vs tighter solve {dev:.1e})")

    # ---- misdirection, construction included
    def misdirection():
        o = operators(cell, x, hidden, chunk_size=16)
        return alignment(o.NTK, o.P @ o.P.T, 30, seed=0)

    t_ka, ka = best_of(misdirection, args.repeats)
    print(f"KA(PKP*, PP*), 30-probe sketch, built    {t_ka / F:8.1f} F   (KA = {ka.value:.4f} ± {ka.stderr:.1e})")

    # ---- trace / Frobenius / ER3 to the target relative standard deviation
    pilot = effective_rank(ops.NTK, definition="ER3", budget=8, seed=123)
    m = max(4, math.ceil(2 / (args.rsd ** 2 * pilot.value)))
    print(f"pilot participation ratio of NTK = {pilot.value:.1f} -> Hutchinson budget m = {m}")
    t_tr, _ = best_of(lambda: trace(ops.NTK, m, "hutchinson", seed=0), 1)
    spread = torch.tensor([float(trace(ops.NTK, m, "hutchinson", seed=s)) for s in range(5)])
    t_pp, _ = best_of(lambda: trace(ops.NTK, max(m, 4), "hutch++", seed=0), 1)
    t_fro, fro = best_of(lambda: frobenius_norm(ops.NTK, m, seed=0), 1)
    t_er, er = best_of(lambda: effective_rank(ops.NTK, definition="ER3", budget=m, seed=0), 1)
    print(f"trace(NTK), Hutchinson m={m:<4d}            {t_tr / F:8.1f} F   (rsd over 5 seeds "
          f"{float(spread.std() / spread.mean()):.2%})")
    print(f"trace(NTK), Hutch++ same budget          {t_pp / F:8.1f} F")
    print(f"frobenius_norm(NTK), m={m:<4d}             {t_fro / F:8.1f} F   (rel. stderr {fro.relative_stderr:.2%})")
    print(f"effective_rank ER3(NTK), m={m:<4d}         {t_er / F:8.1f} F   (ER3 = {er.value:.2f} ± {er.stderr:.2f})")

    # ---- exact K quantities for the unit-separable GRU
    def exact_K():
        K = unit_separable_K(cell, x, hidden)
        return K.trace(), K.diagonal(), partial_trace(K, "unit"), partial_trace(K, ("trial", "time"))

    t_K, (trK, _, _, _) = best_of(exact_K, args.repeats)
    t_est, est = best_of(lambda: trace(ops.K, 30, "hutchinson", seed=0), 1)
    print(f"exact tr/diag/partial traces of K        {t_K / F:8.1f} F   (tr K = {trK.value:.6g}; "
          f"30-probe Hutchinson: {est.value:.6g} ± {est.stderr:.2g} in {t_est / F:.1f} F)")


if __name__ == "__main__":
    main()
