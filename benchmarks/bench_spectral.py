"""Spectral toolkit on the KPFlow operators, measured side by side in one run.

Workload (issue targets): GRU, H=256, B=50, T=90, float32, CPU.  F = one no-grad forward pass
of the fused ``nn.GRU`` on the batch.  Times are in seconds and in units of F:

* top-10 eigenpairs of the hidden-state NTK P K P* with ``eigsh``'s defaults (single-vector
  thick-restart Lanczos, float32 basis, float64 projected matrix, explicit final residuals),
  and the eigenvalues' largest relative deviation from a tighter solve (target: <= 6.5 s,
  deviation <= 1e-6);
* misdirection KA(P K P*, P P*) with a 30-probe shared sketch, construction included (<= 4 s);
* trace, Frobenius norm and ER3 (participation ratio) of P K P* to 1 % relative standard
  deviation.  Ours: the budget from a pilot (Hutchinson's relative error ≈ sqrt(2/(m·PR)));
  the trace as ``E‖J_θ* P* s‖²`` on the factor P J_θ (half an NTK application per probe);
  spread checked over 5 seeds.  Baseline: textbook Hutch++ (the reference package's method)
  on our own fast operators, its budget extrapolated from a pilot's reported error and run
  once; the reference's own per-application overheads (autograd NTK, CPU probes) are not
  included, so the printed ratio is a lower bound of the speed-up over it (target >= 5x);
* exact (zero-variance) trace, diagonal and partial traces of K from the closed form (<= 3 F);
* (``--memory``) peak resident memory of a 48-probe Hutchinson trace of P K P* applied 16 probes
  at a time vs all at once, next to one chunk of probes and a forward pass with its graph.

Usage:  python benchmarks/bench_spectral.py [--B 50 --T 90 --H 256] [--repeats 3] [--threads 2] [--memory]
"""
from __future__ import annotations

import argparse
import math
import os
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
    ap.add_argument("--memory", action="store_true", help="also measure the estimators' peak memory")
    ap.add_argument("--cap", type=int, default=450,
                    help="largest Hutch++ budget run (its sketch holds budget/3 operator-sized vectors)")
    ap.add_argument("--peak-child", nargs=2, type=int, metavar=("CHUNK", "PROBES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak_child:
        args.chunk, args.probes = args.peak_child
        return _peak_growth_child(args)
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
    tight = eigsh(ops.NTK, 10, seed=1, tol=1e-6, max_basis=80)
    dev = float(((res.values - tight.values).abs() / tight.values.abs()).max())
    ok = t_eig <= 6.5 and dev <= 1e-6
    print(f"eigsh(NTK, 10)                           {t_eig / F:8.1f} F = {t_eig:5.2f} s  ({res.n_matvecs} applications, "
          f"max rel. residual {float(res.residuals.max() / res.values.abs().max()):.1e}, eigenvalues vs tighter "
          f"solve {dev:.1e})  {verdict(ok)} (<= 6.5 s, <= 1e-6)")

    # ---- misdirection, construction included
    def misdirection():
        o = operators(cell, x, hidden, chunk_size=16)
        return alignment(o.NTK, o.P @ o.P.T, 30, seed=0)

    t_ka, ka = best_of(misdirection, args.repeats)
    print(f"KA(PKP*, PP*), 30-probe sketch, built    {t_ka / F:8.1f} F = {t_ka:5.2f} s  (KA = {ka.value:.4f} ± "
          f"{ka.stderr:.1e})  {verdict(t_ka <= 4.0)} (<= 4 s)")

    # ---- trace / Frobenius / ER3 to the target relative standard deviation
    rsd = args.rsd
    pilot = effective_rank(ops.NTK, definition="ER3", budget=8, seed=123)
    factor = ops.P @ ops.J_theta                        # NTK = factor factor*
    m = max(4, math.ceil(2 / (rsd ** 2 * pilot.value)))
    print(f"pilot participation ratio of NTK = {pilot.value:.1f} -> Hutchinson budget m = {m} for {rsd:.0%} rsd")

    def budget_for(run, start, target, cap=None):
        """The smallest budget on a x1.25 grid from ``start`` whose reported relative standard error
        reaches ``target`` (``start`` keeps >= 8 residual probes, so the reported error is usable);
        only that run is timed.  Past ``cap`` (Hutch++ keeps its sketch, budget/3 vectors of the
        operator's size, in memory) the run at the cap is timed and the budget and time needed are
        extrapolated with error ∝ 1/sqrt(budget) (marked "~"; Hutchinson's law, optimistic for Hutch++)."""
        budget = start
        while True:
            if cap is not None and budget > cap:
                t, est = best_of(lambda: run(cap), 1)
                factor = max((est.relative_stderr / target) ** 2, 1.0)
                return f"~{math.ceil(cap * factor)}", t * factor, est
            est = run(budget)
            if est.relative_stderr <= target:
                t, est = best_of(lambda: run(budget), 1)
                return budget, t, est
            budget = math.ceil(budget * 1.25)

    def report(name, t_ours, ours_text, t_base, base_text):
        ratio = t_base / t_ours
        print(f"{name:<40s} ours {t_ours / F:7.1f} F ({ours_text}); textbook Hutch++ {t_base / F:7.1f} F "
              f"({base_text})  -> {ratio:.1f}x  {verdict(ratio >= 5)} (>= 5x)")

    m, t_tr, tr = budget_for(lambda b: trace(factor, b, "vjp", seed=0), max(8, m // 2), rsd)
    spread = torch.tensor([float(trace(factor, m, "vjp", seed=s)) for s in range(1, 6)])
    b_pp, t_pp, pp = budget_for(lambda b: trace(ops.NTK, b, "hutch++", seed=0), 24, rsd, cap=args.cap)
    report("trace(NTK)", t_tr, f"E|J* P* s|^2, m={m}, rsd over 5 seeds {float(spread.std() / spread.mean()):.2%}, "
           f"reported {tr.relative_stderr:.2%}", t_pp, f"budget {b_pp}, reported {pp.relative_stderr:.2%}")

    m_f, t_fro, fro = budget_for(lambda b: frobenius_norm(ops.NTK, b, seed=0), 8, rsd)
    fro_spread = torch.tensor([float(frobenius_norm(ops.NTK, m_f, seed=s)) for s in range(1, 4)])
    b_fpp, t_fpp, fpp = budget_for(lambda b: frobenius_norm(ops.NTK, b, "hutch++", seed=0), 24, rsd,
                                   cap=args.cap)
    report("frobenius_norm(NTK)", t_fro, f"Hutchinson m={m_f}, rsd over 3 seeds "
           f"{float(fro_spread.std() / fro_spread.mean()):.2%}, reported {fro.relative_stderr:.2%}",
           t_fpp, f"budget {b_fpp} samples x 2 applications, reported {fpp.relative_stderr:.2%}")

    m_e, t_er, er = budget_for(lambda b: effective_rank(ops.NTK, definition="ER3", budget=b, seed=0), 8, rsd)
    # the baseline PR = tr(A)^2 / tr(A^2) from two Hutch++ traces; delta method: rsd^2 = 4 rsd_a^2 + rsd_b^2
    b_a, t_a, _ = budget_for(lambda b: trace(ops.NTK, b, "hutch++", seed=0), 24, rsd / (2 * math.sqrt(2)),
                             cap=args.cap)
    b_b, t_b, _ = budget_for(lambda b: trace(ops.NTK.T @ ops.NTK, b, "hutch++", seed=0), 24, rsd / math.sqrt(2),
                             cap=args.cap)
    report("effective_rank ER3(NTK)", t_er, f"m={m_e}, ER3 = {er.value:.1f} ± {er.stderr:.2f}", t_a + t_b,
           f"tr A budget {b_a} + tr A^2 budget {b_b} x 2")

    # ---- exact K quantities for the unit-separable GRU
    def exact_K():
        K = unit_separable_K(cell, x, hidden)
        return K.trace(), K.diagonal(), partial_trace(K, "unit"), partial_trace(K, ("trial", "time"))

    t_K, (trK, _, _, _) = best_of(exact_K, args.repeats)
    t_est, est = best_of(lambda: trace(ops.K, 30, "hutchinson", seed=0), 1)
    print(f"exact tr/diag/partial traces of K        {t_K / F:8.1f} F   (tr K = {trK.value:.6g}; "
          f"30-probe Hutchinson: {est.value:.6g} ± {est.stderr:.2g} in {t_est / F:.1f} F)  {verdict(t_K <= 3 * F)} (<= 3 F)")

    if args.memory:
        memory(args, gru, x)


def verdict(ok):
    return "PASS" if ok else "FAIL"


def graph_bytes(gru, x):
    """Bytes the autograd graph of one forward pass keeps (sum of its saved tensors)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = gru(x)[0]
    del out
    return total[0]


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_growth_child(args):
    """In a fresh process: peak resident memory during one Hutchinson trace above the level before it.

    The peak is the kernel's high-water mark of this process's memory (VmHWM), reset just before
    the trace (``ru_maxrss`` would not do: after fork/exec it carries the parent's peak)."""
    torch.set_num_threads(args.threads)
    gru, cell, x, hidden = workload(args.B, args.T, args.H)
    ops = operators(cell, x, hidden, chunk_size=16)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                     # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    trace(ops.NTK, args.probes, "hutchinson", seed=0, chunk_size=args.chunk)
    print(max(_status_kb("VmHWM") - before, 0))


def memory(args, gru, x):
    import subprocess
    import sys
    B, T, H = args.B, args.T, args.H
    MB = 2 ** 20
    chunk_bytes = 16 * B * T * H * 4
    graph = graph_bytes(gru, x)

    def growth(chunk, probes):
        cmd = [sys.executable, __file__, "--B", str(B), "--T", str(T), "--H", str(H), "--threads", str(args.threads),
               "--peak-child", str(chunk), str(probes)]
        return int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])

    g16, g48, gall = growth(16, 16), growth(16, 48), growth(48, 48)
    print(f"peak memory growth (fresh process each) of a Hutchinson trace of NTK in chunks of 16: 16 probes "
          f"{g16 / MB:.0f} MB, 48 probes {g48 / MB:.0f} MB; 48 probes at once {gall / MB:.0f} MB.  One chunk of 16 "
          f"probes x B*T*H = {chunk_bytes / MB:.0f} MB; the autograd graph of one forward = {graph / MB:.0f} MB")
    print(f"  chunked peak = {g48 / chunk_bytes:.1f} chunks; 16 -> 48 probes adds {(g48 - g16) / MB:.0f} MB  "
          f"{verdict(g48 <= g16 + chunk_bytes / 2)} (bounded by the chunk: < half a chunk more for 3x the probes); "
          f"literal target <= graph + 1 chunk "
          f"= {(graph + chunk_bytes) / MB:.0f} MB: {verdict(g48 <= graph + chunk_bytes)}")


if __name__ == "__main__":
    main()
