"""Spectral toolkit on the KPFlow operators, measured side by side in one run.

Workload (issue targets): GRU, H=256, B=50, T=90, float32, CPU.  F = one no-grad forward pass
of the fused ``nn.GRU`` on the batch.  Times are in seconds and in units of F:

* top-10 eigenpairs of the hidden-state NTK P K P* with ``eigsh``'s defaults (single-vector
  thick-restart Lanczos on the Gram factor's side L* L, L = P J_theta, float32 basis, float64
  projected matrix, explicit final residuals in the NTK's own space), next to the old path (the
  NTK's own space), other block sizes and ARPACK on the reference method's NTK, with the
  eigenvalues' largest relative deviation from a tighter solve (targets: <= 2.5 s, >= 10x the
  reference, deviation <= 1e-6), and the floor that the matrix products alone set: each product
  of one NTK application timed on its own, times the solver's application count;
* misdirection KA(P K P*, P P*) with a 30-probe shared sketch, construction included (<= 4 s);
* trace, Frobenius norm and ER3 (participation ratio) of P K P* to 1 % relative standard
  deviation.  Ours: the trace as ``Σ_b ‖J_θ* P* s_b‖²`` over the trials ``b`` on the factor
  P J_θ (one adjoint pass per probe, less than half an NTK application; the trial split
  removes the cross-trial variance), from 4 probes up (a usable error bar); the Frobenius norm
  from pairs of per-trial adjoint images (``method="trial_pairs"``: independent signs for every
  pair of trials), from 3 probes up; ER3 by Hutchinson with shared probes; spreads checked
  over seeds.  Baselines, each at the smallest budget (x1.25 grid) whose
  reported error reaches the target:
  - textbook Hutch++ on our own fast operators (the algorithm alone);
  - the reference package's method (target >= 5x): its Hutch++ (``nsamp // 3`` sketch columns
    and residual probes drawn as int64 on the CPU in a [dim, k] layout, ``3 / nsamp`` weight,
    the budget rounded up to a multiple of 3 where that weight is unbiased and the estimator is
    textbook Hutch++'s, so the same budget gives the same accuracy) on its autograd hidden-state
    NTK (one ``vjp`` through the recorded unrolled forward and one ``jvp`` of the forward per
    probe, ``vmap``-ed over the probes), re-implemented here on the same cell, as the package
    itself is not installable here.  Its Frobenius norm is Hutch++ on A A*, its effective
    rank here the participation ratio from two such traces;
* exact (zero-variance) trace, diagonal and partial traces of K from the closed form (<= 3 F);
* (``--memory``) peak resident memory of a 48-probe Hutchinson trace of P K P* applied 16 probes
  at a time vs all at once, next to one chunk of probes and a forward pass with its graph.

Usage:  python benchmarks/bench_spectral.py [--B 50 --T 90 --H 256] [--repeats 3] [--threads 2] [--memory]
        python benchmarks/bench_spectral.py --device cuda     (F is then the cuDNN forward)
"""
from __future__ import annotations

import argparse
import math
import os
import time

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap

from neurokpflow.kpflow import (alignment, effective_rank, eigsh, frobenius_norm, operators, partial_trace,
                                sketch, trace, unit_separable_K)
from neurokpflow.models import GRUCell

I = 3


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def best_of(fn, repeats):
    out, best = None, float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        out = fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best, out


def workload(B, T, H, seed=0, device="cpu"):
    torch.manual_seed(seed)
    gru = nn.GRU(I, H, batch_first=True)
    cell = GRUCell(I, H)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(gru, n + "_l0"))
    x = torch.randn(B, T, I)
    gru, cell, x = gru.to(device), cell.to(device), x.to(device)
    with torch.no_grad():
        hidden = gru(x)[0]
    return gru, cell, x, hidden


class ReferenceMethod:
    """The reference package's hidden-state NTK and Hutch++, re-implemented on the same cell.

    NTK: the unrolled forward ``θ -> z[B, T, H]`` is recorded once (``vjp``); each probe costs a
    backward through that graph and a forward-mode pass of the forward (``jvp``), ``vmap``-ed
    over the probes (at most ``chunk`` at once, which only bounds memory: 16 and 48 probes cost
    the same per probe).  Hutch++: ``k = nsamp // 3`` sketch columns and ``k`` residual probes,
    ±1 drawn as int64 on the CPU in a [dim, k] layout, then moved; ``Q = qr(A S)``;
    ``tr(Qᵀ A Q) + (3 / nsamp) tr(Gᵀ A G)`` for the projected G (unbiased for a multiple of 3).
    """

    def __init__(self, cell, x, chunk=64):
        B, T, _ = x.shape
        H = cell.hidden_size
        params = {n: p.detach() for n, p in cell.named_parameters()}

        def unrolled(p):
            z, out = torch.zeros(B, H, device=x.device, dtype=x.dtype), []
            for t in range(T):
                z = functional_call(cell, p, (x[:, t], z))
                out.append(z)
            return torch.stack(out, 1)

        _, back = vjp(unrolled, params)

        def ntk(q):
            return jvp(unrolled, (params,), (back(q)[0],))[1]

        self._ntk, self.shape, self.chunk, self.device = vmap(ntk), (B, T, H), chunk, x.device

    def ntk(self, Q):
        """[n, B, T, H] -> [n, B, T, H]."""
        return torch.cat([self._ntk(Q[i:i + self.chunk]) for i in range(0, Q.shape[0], self.chunk)])

    def ntk_squared(self, Q):
        return self.ntk(self.ntk(Q))

    def hutchpp(self, apply, nsamp, seed=0):
        d = math.prod(self.shape)
        k = nsamp // 3
        g = torch.Generator().manual_seed(seed)
        S = (torch.randint(2, size=(d, k), generator=g).float() * 2 - 1).to(self.device)
        G = (torch.randint(2, size=(d, k), generator=g).float() * 2 - 1).to(self.device)

        def call(X):                                  # columns [d, n] -> columns [d, n]
            return apply(X.T.reshape(-1, *self.shape)).reshape(X.shape[1], d).T

        Q, _ = torch.linalg.qr(call(S))
        prod = G - Q @ (Q.T @ G)
        return float(torch.trace(call(Q).T @ Q) + (3.0 / nsamp) * torch.trace(call(prod).T @ prod))


#: eigsh's settings before block solves were measured: single-vector Lanczos in a 40-vector basis, in the
#: operator's own space (before eigsh iterated on L* L for a Gram operator A = L L*)
OLD_EIGSH = {"block_size": 1, "max_basis": 40, "use_gram_factor": False}


def gemm_floor(B, T, H, I, repeats):
    """Seconds that the matrix products alone of one GRU NTK application take: the recurrences' per-step
    products of P and P* ([B, H] x [H, 3H] and [B, 3H] x [3H, H], T - 1 each) and the two products of
    J_theta and of J_theta* over all B*T rows (recurrent and input weights), each timed on its own
    (best of ``repeats``).  Everything else an application does (gates, sums, copies) is excluded, so
    no implementation of these operators on this machine can apply them faster."""
    g = torch.Generator().manual_seed(0)

    def mm_time(m, kk, n, count):
        a, b = torch.randn(m, kk, generator=g).to(DEVICE), torch.randn(kk, n, generator=g).to(DEVICE)
        t, _ = best_of(lambda: [a @ b for _ in range(count)], max(repeats, 3))   # the first call warms MKL up
        return t

    rows = B * T
    return (mm_time(B, H, 3 * H, T - 1) + mm_time(B, 3 * H, H, T - 1)
            + mm_time(rows, H + 1, 3 * H, 1) + mm_time(3 * H, rows, H + 1, 1)
            + mm_time(rows, I + 1, 3 * H, 1) + mm_time(3 * H, rows, I + 1, 1))


def arpack_reference(cell, x, k, tol):
    """The reference package's eigensolver: scipy's ARPACK (``eigsh``) on its autograd NTK, one
    vector per application, float32.  Returns (eigenvalues descending, applications)."""
    import numpy as np
    from scipy.sparse.linalg import LinearOperator as SciOp, eigsh as arpack
    ref = ReferenceMethod(cell, x)
    shape, n = ref.shape, math.prod(ref.shape)
    count = [0]

    def mv(v):
        count[0] += 1
        q = torch.as_tensor(np.asarray(v, dtype=np.float32).reshape(1, *shape), device=x.device)
        return ref.ntk(q).reshape(-1).cpu().numpy()

    vals = arpack(SciOp((n, n), matvec=mv, dtype=np.float32), k=k, which="LA", tol=tol,
                  v0=np.random.default_rng(0).standard_normal(n).astype(np.float32), return_eigenvectors=False)
    return np.sort(vals)[::-1].astype(np.float64).copy(), count[0]


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
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--confirm", type=int, default=3,
                    help="fresh seeds whose reported errors are pooled before a budget is accepted")
    ap.add_argument("--skip-reference", action="store_true", help="leave out the reference-method baselines")
    ap.add_argument("--eig-blocks", type=int, nargs="*", default=[4, 8, 16],
                    help="block sizes of eigsh measured next to the default (the measurement behind it)")
    ap.add_argument("--only", choices=["eigsh"], help="stop after the eigensolver and alignment part")
    ap.add_argument("--large", action="store_true",
                    help="run the largest workloads (H=256 B=500; H=1024 B=50; T=1000) one at a time in fresh "
                         "processes: eigsh(NTK, 10) and the shared sketch of NTK and PP*, with peak memory")
    ap.add_argument("--large-chunk", type=int, default=8, help="probes per application in --large")
    ap.add_argument("--large-child", nargs=3, type=int, metavar=("B", "T", "H"), help=argparse.SUPPRESS)
    ap.add_argument("--peak-child", nargs=2, type=int, metavar=("CHUNK", "PROBES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peak_child:
        args.chunk, args.probes = args.peak_child
        return _peak_growth_child(args)
    if args.large_child:
        return _large_child(args, *args.large_child)
    if args.large:
        return large(args)
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    gru, cell, x, hidden = workload(args.B, args.T, args.H, device=DEVICE)

    def forward():
        with torch.no_grad():
            return gru(x)

    F, _ = best_of(forward, max(args.repeats, 10))
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else f"CPU, {args.threads} threads"
    load = "" if DEVICE.type != "cpu" else " | load average %.1f %.1f %.1f on %d cores" % (*os.getloadavg(),
                                                                                       os.cpu_count())
    print(f"GRU H={args.H} B={args.B} T={args.T}, float32, {where}; F = {1e3 * F:.2f} ms{load}")

    ops = operators(cell, x, hidden, chunk_size=16)
    t_build, _ = best_of(lambda: operators(cell, x, hidden, chunk_size=16), args.repeats)
    print(f"operators(...) construction              {t_build / F:8.1f} F")

    # ---- single applications (unchanged operators; issue figures on an idle machine: P 0.83, P* 0.86,
    # K 1.55, NTK 3.37 F) and a batch of 16 probes per probe
    q1, q16 = torch.randn(1, *hidden.shape, device=DEVICE), torch.randn(16, *hidden.shape, device=DEVICE)
    cells = []
    for name, op in (("P", ops.P), ("P*", ops.P.T), ("K", ops.K), ("NTK", ops.NTK)):
        t1, _ = best_of(lambda: op(q1), args.repeats)
        t16, _ = best_of(lambda: op(q16), max(1, args.repeats // 2))
        cells.append(f"{name} {t1 / F:.2f} F ({t16 / 16 / F:.2f} F per probe in 16)")
    print("single probe: " + ", ".join(cells))

    # ---- top-10 eigenpairs of the NTK: today's default, the old single-vector path, ARPACK on the
    # reference method's NTK, all against one tight solve
    tight = eigsh(ops.NTK, 10, seed=1, tol=1e-6, max_basis=80)

    def dev(r):
        return float(((r.values - tight.values).abs() / tight.values.abs()).max())

    def eig_line(name, t, r, base=None):
        rel = float(r.residuals.max() / r.values.abs().max())
        extra = "" if base is None else f"  old/this {base / t:4.2f}x"
        print(f"  {name:<34}{t / F:8.1f} F = {t:5.2f} s  ({r.n_matvecs:4d} applications, blocks of "
              f"{r.meta['block_size']:2d}, basis {r.meta['max_basis']:3d}, max rel. residual {rel:.1e}, "
              f"vs tight {dev(r):.1e}){extra}")

    print("eigsh(NTK, 10)")
    t_old, r_old = best_of(lambda: eigsh(ops.NTK, 10, seed=0, **OLD_EIGSH), 1)
    eig_line("old path (single vector, basis 40)", t_old, r_old)
    t_eig, res = best_of(lambda: eigsh(ops.NTK, 10, seed=0), 1)
    eig_line("default (on L* L, basis in R^M)", t_eig, res, t_old)
    floor = gemm_floor(args.B, args.T, args.H, I, args.repeats)
    t_ntk, _ = best_of(lambda: ops.NTK(q1), args.repeats)
    print(f"  matrix products alone of one NTK application: {floor / F:.2f} F = {1e3 * floor:.1f} ms (the NTK "
          f"itself: {t_ntk / F:.2f} F); the default's {res.n_matvecs} applications at that floor, with no "
          f"other work at all: {res.n_matvecs * floor:.2f} s")
    for b in args.eig_blocks:
        t_b, r_b = best_of(lambda: eigsh(ops.NTK, 10, seed=0, block_size=b), 1)
        eig_line(f"block_size={b}", t_b, r_b, t_old)
    if not args.skip_reference:
        t_arp, (arp_vals, arp_n) = best_of(lambda: arpack_reference(cell, x, 10, 1e-5), 1)
        arp_dev = float(((torch.as_tensor(arp_vals) - tight.values).abs() / tight.values.abs()).max())
        print(f"  {'reference method, ARPACK':<34}{t_arp / F:8.1f} F = {t_arp:5.2f} s  ({arp_n:4d} applications of "
              f"its autograd NTK, one vector each, vs tight {arp_dev:.1e})  reference/default {t_arp / t_eig:4.1f}x "
              f"{verdict(t_arp / t_eig >= 10)} (>= 10x)")
    print(f"  default: {verdict(t_eig <= 2.5)} (<= 2.5 s), {verdict(dev(res) <= 1e-6)} (eigenvalues within 1e-6 "
          f"of the tight solve)")

    # ---- misdirection, construction included: the old orthonormal sketch and the shared sketch
    def misdirection(method):
        o = operators(cell, x, hidden, chunk_size=16)
        return alignment(o.NTK, o.P @ o.P.T, 30, method, seed=0)

    t_ka_old, ka_old = best_of(lambda: misdirection("sketch"), args.repeats)
    t_ka, ka = best_of(lambda: misdirection("hutchinson"), args.repeats)
    print(f"KA(PKP*, PP*), 30 probes, built\n  orthonormal sketch ('sketch')     {t_ka_old / F:8.1f} F = "
          f"{t_ka_old:5.2f} s  (KA = {ka_old.value:.4f} ± {ka_old.stderr:.1e})\n"
          f"  shared sketch (default use)       {t_ka / F:8.1f} F = {t_ka:5.2f} s  (KA = {ka.value:.4f} ± "
          f"{ka.stderr:.1e})  old/this {t_ka_old / t_ka:4.2f}x  {verdict(t_ka <= 2.0)} (<= 2 s)")

    def separate():
        return (alignment(ops.NTK, ops.P @ ops.P.T, 30, "hutchinson", seed=0),
                trace(ops.NTK, 30, "hutchinson", seed=0), frobenius_norm(ops.NTK, 30, "hutchinson", seed=0),
                effective_rank(ops.NTK, definition="ER3", budget=30, seed=0))

    def shared():
        sk = sketch(ops.NTK, 30, B=ops.P @ ops.P.T, seed=0)
        return sk.alignment(), sk.trace(), sk.frobenius_norm(), sk.effective_rank()

    t_sep, sep = best_of(separate, 1)
    t_sh, sh = best_of(shared, 1)
    same = all(a.value == b.value for a, b in zip(sep, sh))
    print(f"KA + trace + Frobenius + ER3 of NTK, 30 probes: separate calls {t_sep / F:.1f} F, one shared sketch "
          f"{t_sh / F:.1f} F -> {t_sep / t_sh:.2f}x, identical values: {same}")

    if args.only == "eigsh":
        return print_load()
    # ---- trace / Frobenius / ER3 to the target relative standard deviation
    rsd = args.rsd
    pilot = effective_rank(ops.NTK, definition="ER3", budget=8, seed=123)
    factor = ops.P @ ops.J_theta                        # NTK = factor factor*
    m = max(4, math.ceil(2 / (rsd ** 2 * pilot.value)))
    print(f"pilot participation ratio of NTK = {pilot.value:.1f} -> plain Hutchinson would need m = {m} probes for {rsd:.0%} rsd")

    def budget_for(run, start, target, cap=None, dim=None):
        """The smallest budget on a x1.25 grid from ``start`` at which ``run(budget, seed)`` reaches
        the ``target`` relative standard error: seed 0's reported error first, then the error pooled
        over ``--confirm`` fresh seeds (root mean square of their reported errors; seed 0's is left
        out, since it was selected for being below the target).  A single reported error from few
        residual samples is noisy, and taking the first grid point where it dips below the target
        would flatter whichever estimator has the noisiest error bar.  Only seed 0's run at that
        budget is timed.  Past ``cap`` (Hutch++ keeps its sketch, budget/3 vectors of the
        operator's size, in memory) the run at the cap is timed, and the budget and time needed
        are extrapolated with error ∝ 1/sqrt(budget), at most to the dimension ``dim`` where
        Hutch++ is exact (marked "~"; Hutch++'s error falls at least that fast, so this can only
        overstate its budget).  Returns (budget, seconds, seed 0's estimate, pooled error)."""
        def pooled(b):
            errs = [run(b, s).relative_stderr for s in range(1, args.confirm + 1)]
            return math.sqrt(sum(e * e for e in errs) / len(errs))

        budget = start
        while True:
            if cap is not None and budget > cap:
                t, est = best_of(lambda: run(cap, 0), 1)
                err = pooled(cap)
                factor = (err / target) ** 2
                if factor <= 1:
                    return cap, t, est, err
                needed = math.ceil(cap * factor) if dim is None else min(math.ceil(cap * factor), dim)
                return f"~{needed}", t * needed / cap, est, err
            est = run(budget, 0)
            if est.relative_stderr <= target:
                err = pooled(budget)
                if err <= target:
                    t, est = best_of(lambda: run(budget, 0), 1)
                    return budget, t, est, err
            budget = math.ceil(budget * 1.25)

    ref = None if args.skip_reference else ReferenceMethod(cell, x)
    if ref is not None:                      # first calls (vmap tracing, allocator) outside the timings
        warm = torch.randn(2, *hidden.shape, device=DEVICE)
        ref.ntk_squared(warm)
        ref.hutchpp(ref.ntk, 6)
        sync()

    def multiple_of_3(b):
        return 3 * math.ceil(b / 3)

    def reference_time(budget, run):
        """Time of the reference method at a budget found for textbook Hutch++ (``"~N"``: the
        budget was extrapolated past the cap; the run at the cap is timed and scaled)."""
        if ref is None:
            return math.nan, "skipped"
        if isinstance(budget, str):
            n = multiple_of_3(args.cap)
            t, value = best_of(lambda: run(n), 1)
            scale = int(budget[1:]) / n
            return t * scale, f"~{multiple_of_3(int(budget[1:]))} samples (timed at {n}, scaled)"
        n = multiple_of_3(budget)
        t, value = best_of(lambda: run(n), 1)
        return t, f"{n} samples, value {value:.5g}"

    def report(name, t_ours, ours_text, t_base, base_text, t_ref, ref_text):
        print(f"{name}\n  ours                       {t_ours / F:8.1f} F = {t_ours:6.2f} s  ({ours_text})\n"
              f"  textbook Hutch++, our ops  {t_base / F:8.1f} F = {t_base:6.2f} s  ({base_text})  -> "
              f"{t_base / t_ours:.1f}x\n"
              f"  reference method           {t_ref / F:8.1f} F = {t_ref:6.2f} s  ({ref_text})  -> "
              f"{t_ref / t_ours:.1f}x  {'' if ref is None else verdict(t_ref / t_ours >= 5)} (>= 5x)")

    m, t_tr, tr, e_tr = budget_for(lambda b, s: trace(factor, b, "vjp", seed=s), 4, rsd)
    spread = torch.tensor([float(trace(factor, m, "vjp", seed=s)) for s in range(1, 9)])
    b_pp, t_pp, pp, e_pp = budget_for(lambda b, s: trace(ops.NTK, b, "hutch++", seed=s), 24, rsd, cap=args.cap,
                                      dim=ops.NTK.size_in)
    t_ref, ref_text = reference_time(b_pp, lambda n: ref.hutchpp(ref.ntk, n))
    report("trace(NTK)", t_tr, f"sum_b |J* P* s_b|^2 ({tr.meta['blocks']} split), m={m}, rsd over 8 seeds "
           f"{float(spread.std() / spread.mean()):.2%}, reported {e_tr:.2%}", t_pp,
           f"budget {b_pp}, reported {e_pp:.2%}", t_ref, ref_text)

    m_f, t_fro, fro, e_fro = budget_for(lambda b, s: frobenius_norm(ops.NTK, b, "trial_pairs", seed=s), 3, rsd)
    fro_spread = torch.tensor([float(frobenius_norm(ops.NTK, m_f, "trial_pairs", seed=s)) for s in range(1, 9)])
    b_fpp, t_fpp, fpp, e_fpp = budget_for(lambda b, s: frobenius_norm(ops.NTK, b, "hutch++", seed=s), 24, rsd,
                                          cap=args.cap, dim=ops.NTK.size_in)
    t_fref, fref_text = reference_time(b_fpp, lambda n: ref.hutchpp(ref.ntk_squared, n))
    report("frobenius_norm(NTK)", t_fro, f"trial pairs, {m_f} adjoint passes, rsd over 8 seeds "
           f"{float(fro_spread.std() / fro_spread.mean()):.2%}, reported {e_fro:.2%}",
           t_fpp, f"budget {b_fpp} samples x 2 applications, reported {e_fpp:.2%}",
           t_fref, "Hutch++ on A A*, " + fref_text)

    m_e, t_er, er, e_er = budget_for(lambda b, s: effective_rank(ops.NTK, definition="ER3", budget=b, seed=s), 8,
                                     rsd)
    # the baselines' PR = tr(A)^2 / tr(A^2) from two Hutch++ traces; delta method: rsd^2 = 4 rsd_a^2 + rsd_b^2
    b_a, t_a, _, _ = budget_for(lambda b, s: trace(ops.NTK, b, "hutch++", seed=s), 24, rsd / (2 * math.sqrt(2)),
                                cap=args.cap, dim=ops.NTK.size_in)
    b_b, t_b, _, _ = budget_for(lambda b, s: trace(ops.NTK.T @ ops.NTK, b, "hutch++", seed=s), 24,
                                rsd / math.sqrt(2), cap=args.cap, dim=ops.NTK.size_in)
    t_ra, ra_text = reference_time(b_a, lambda n: ref.hutchpp(ref.ntk, n))
    t_rb, rb_text = reference_time(b_b, lambda n: ref.hutchpp(ref.ntk_squared, n))
    report("effective_rank ER3(NTK)", t_er, f"m={m_e}, ER3 = {er.value:.1f} ± {er.stderr:.2f}, reported "
           f"{e_er:.2%}", t_a + t_b, f"tr A budget {b_a} + tr A^2 budget {b_b} x 2", t_ra + t_rb,
           f"tr A {ra_text}; tr A^2 {rb_text}")
    if ref is not None:
        q = torch.randn(1, *hidden.shape, device=DEVICE)
        t_one, _ = best_of(lambda: ops.NTK(q[0]), args.repeats)
        t_ref_one, out = best_of(lambda: ref.ntk(q), args.repeats)
        Q16 = torch.randn(16, *hidden.shape, device=DEVICE)
        t16, _ = best_of(lambda: ops.NTK(Q16), 2)
        t_ref16, _ = best_of(lambda: ref.ntk(Q16), 2)
        agree = float((out[0] - ops.NTK(q[0])).norm() / out[0].norm())
        print(f"per NTK application, one probe / 16 probes: ours {t_one / F:.2f} / {t16 / 16 / F:.2f} F, reference "
              f"method {t_ref_one / F:.2f} / {t_ref16 / 16 / F:.2f} F (relative difference of the images "
              f"{agree:.1e})")

    # ---- exact K quantities for the unit-separable GRU
    def exact_K():
        K = unit_separable_K(cell, x, hidden)
        return K.trace(), K.diagonal(), partial_trace(K, "unit"), partial_trace(K, ("trial", "time"))

    t_K, (trK, _, _, _) = best_of(exact_K, args.repeats)
    t_est, est = best_of(lambda: trace(ops.K, 30, "hutchinson", seed=0), 1)
    print(f"exact tr/diag/partial traces of K        {t_K / F:8.1f} F   (tr K = {trK.value:.6g}; "
          f"30-probe Hutchinson: {est.value:.6g} ± {est.stderr:.2g} in {t_est / F:.1f} F)  {verdict(t_K <= 3 * F)} (<= 3 F)")

    print_load()
    if args.memory:
        if DEVICE.type != "cpu":
            print("--memory measures the process's resident memory: CPU only")
        else:
            memory(args, gru, x)


def print_load():
    if DEVICE.type == "cpu":
        print("load average at the end: %.1f %.1f %.1f on %d cores" % (*os.getloadavg(), os.cpu_count()))


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


LARGE = [(500, 90, 256), (50, 90, 1024), (50, 1000, 256)]


def _large_child(args, B, T, H):
    """One large workload in this (fresh) process: build, eigsh(NTK, 10), a 30-probe shared sketch of
    NTK and PP*; times and the peak resident memory of the whole process (VmHWM)."""
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    gru, cell, x, hidden = workload(B, T, H)
    ops = operators(cell, x, hidden, chunk_size=args.large_chunk)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = eigsh(ops.NTK, 10, seed=0)
    t_eig = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = sketch(ops.NTK, 30, B=ops.P @ ops.P.T, seed=0)
    ka, er = sk.alignment(), sk.effective_rank()
    t_sk = time.perf_counter() - t0
    vec_mb = B * T * H * 4 / 2 ** 20
    print(f"H={H:<5d} B={B:<4d} T={T:<5d} ({vec_mb:.0f} MB per state vector): build {t_build:6.1f} s, eigsh(NTK, 10) "
          f"{t_eig:6.1f} s ({r.n_matvecs} applications, converged {r.converged}, max rel. residual "
          f"{float(r.residuals.max() / r.values.abs().max()):.1e}, chunking {r.meta}), 30-probe shared sketch "
          f"{t_sk:6.1f} s (KA(NTK, PP*) = {ka.value:.4f} ± {ka.stderr:.1e}, ER3 = {er.value:.1f}; "
          f"{sk.meta['chunk_size']} probes per application); peak memory {_status_kb('VmHWM') / 2 ** 30:.2f} GiB",
          flush=True)


def large(args):
    import subprocess
    import sys
    print("largest workloads, one at a time, each in a fresh process (%d threads, load average %.1f %.1f %.1f)"
          % (args.threads, *os.getloadavg()), flush=True)
    for B, T, H in LARGE:
        cmd = [sys.executable, __file__, "--threads", str(args.threads), "--large-chunk", str(args.large_chunk),
               "--large-child", str(B), str(T), str(H)]
        subprocess.run(cmd, check=True)
    print_load()


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
