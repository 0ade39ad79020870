"""Speed and memory of the KPFlow operators, as ratios measured side by side in one run.

Workload (issue targets): GRU, H=256, B=50, T=90, float32.  F = one no-grad forward pass of
the fused ``nn.GRU`` on the same batch.  Printed:

* P, P*, K, NTK (= P K P*) matvec time / F, operator construction / F;
* the same against the cell-loop forward and forward+backward of the model;
* per-probe cost of a batch of 16 probes vs a single matvec;
* the generic ``torch.func`` path (any cell) vs an autograd hidden-state NTK through the
  unrolled model (the generic path must not be slower);
* peak memory (resident set, measured in a fresh subprocess) at two batch sizes, and the
  bytes the operators hold, in units of one B·T·H tensor.

Usage:  python benchmarks/bench_operators.py [--device cuda] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp

from neurokpflow.kpflow import operators
from neurokpflow.models import GRUCell

I = 3


def timeit(fn, repeats, device):
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def make_workload(B, T, H, device, dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    gru = nn.GRU(I, H, batch_first=True).to(device, dtype)
    cell = GRUCell(I, H).to(device, dtype)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(gru, n + "_l0"))
    x = torch.randn(B, T, I, device=device, dtype=dtype)
    with torch.no_grad():
        hidden = gru(x)[0]
    return gru, cell, x, hidden


class Wrapped(nn.Module):
    """Hides the GRU cell from the hand-derived path: exercises the generic torch.func path."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x, h):
        return self.inner(x, h)


def held_bytes(*operators_):
    """Bytes of the tensors the given operators keep alive (shared storages counted once)."""
    seen, total = set(), 0

    def visit(obj):
        nonlocal total
        if isinstance(obj, torch.Tensor):
            key = (obj.untyped_storage().data_ptr(), obj.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += key[1]
        elif callable(obj) and getattr(obj, "__closure__", None):
            for c in obj.__closure__:
                try:
                    visit(c.cell_contents)
                except ValueError:
                    pass
        elif isinstance(obj, (list, tuple)):
            for o in obj:
                visit(o)
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("neurokpflow"):
            for o in vars(obj).values():
                visit(o)

    for op in operators_:
        visit(op._f)
        visit(op._fT)
    return total


def _rss_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def memory_child(B, T, H):
    """Run in a subprocess: resident-set growth from building the operators and applying NTK once."""
    device = torch.device("cpu")
    gru, cell, x, hidden = make_workload(B, T, H, device)
    q = torch.randn_like(hidden)
    base = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak-RSS high-water mark
        fh.write("5")
    ops = operators(cell, x, hidden)
    ops.NTK(q)
    ops.P.T(q)
    peak = _rss_kb("VmHWM")
    print(json.dumps({"peak_growth_mb": (peak - base) / 1024, "btH_mb": B * T * H * 4 / 2**20,
                      "held_mb": held_bytes(ops.P, ops.J_theta) / 2**20,
                      "held_P_mb": held_bytes(ops.P) / 2**20}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--B", type=int, default=50)
    ap.add_argument("--T", type=int, default=90)
    ap.add_argument("--H", type=int, default=256)
    ap.add_argument("--memory-child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(*args.memory_child)
    device = torch.device(args.device)
    B, T, H, r = args.B, args.T, args.H, args.repeats
    gru, cell, x, hidden = make_workload(B, T, H, device)
    print(f"workload: GRU H={H}, B={B}, T={T}, float32, device={device}, threads={torch.get_num_threads()}")

    with torch.no_grad():
        F = timeit(lambda: gru(x), r, device)

    def cell_loop():
        z = torch.zeros(B, H, device=device)
        for t in range(T):
            z = cell(x[:, t], z)
        return z

    with torch.no_grad():
        F_loop = timeit(cell_loop, r, device)

    def fwd_bwd():
        cell.zero_grad(set_to_none=True)
        cell_loop().square().sum().backward()

    F_fb = timeit(fwd_bwd, r, device)
    build = timeit(lambda: operators(cell, x, hidden), r, device)
    ops = operators(cell, x, hidden)
    q = torch.randn_like(hidden)
    rows = []
    for name, fn in [("P", lambda: ops.P(q)), ("P*", lambda: ops.P.T(q)), ("P_inv", lambda: ops.P_inv(q)),
                     ("K", lambda: ops.K(q)), ("NTK = P K P*", lambda: ops.NTK(q))]:
        rows.append((name, timeit(fn, r, device)))
    print(f"\nF (fused nn.GRU forward, no grad) = {F * 1e3:.1f} ms; cell-loop forward = {F_loop / F:.2f} F; "
          f"cell-loop forward+backward = {F_fb / F:.2f} F")
    print(f"{'operator':<16}{'/ F':>8}{'/ loop fwd':>12}{'/ fwd+bwd':>11}   target")
    targets = {"P": "<= 1.5 F", "P*": "<= 1.5 F", "K": "<= 3 F", "NTK = P K P*": "<= 5 F", "P_inv": ""}
    for name, t in rows:
        print(f"{name:<16}{t / F:>8.2f}{t / F_loop:>12.2f}{t / F_fb:>11.2f}   {targets[name]}")
    print(f"{'build':<16}{build / F:>8.2f}{build / F_loop:>12.2f}{build / F_fb:>11.2f}   <= 3 F")

    Q = torch.randn(16, *hidden.shape, device=device)
    print("\nbatch of 16 probes: per-probe time / single-matvec time (target <= 1)")
    for name, op, single in [("P", ops.P, rows[0][1]), ("K", ops.K, rows[3][1]), ("NTK", ops.NTK, rows[4][1])]:
        for chunk in (None, 4):
            op.chunk_size = chunk
            t16 = timeit(lambda: op(Q), max(1, r // 2), device)
            print(f"  {name:<4} chunk={str(chunk):<5} {t16 / 16 / single:6.2f}")
            op.chunk_size = None

    generic = operators(Wrapped(cell), x, hidden)
    t_gen = timeit(lambda: generic.NTK(q), max(1, r // 2), device)
    params = {n: p.detach() for n, p in cell.named_parameters()}

    def unrolled(p):
        z, out = torch.zeros(B, H, device=device), []
        for t in range(T):
            z = functional_call(cell, p, (x[:, t], z))
            out.append(z)
        return torch.stack(out, 1)

    def autograd_ntk():
        _, back = vjp(unrolled, params)
        (g,) = back(q)
        return jvp(unrolled, (params,), (g,))[1]

    t_auto = timeit(autograd_ntk, max(1, r // 2), device)
    print(f"\ngeneric torch.func path: NTK matvec = {t_gen / F:.2f} F; autograd hidden NTK through the unrolled "
          f"model = {t_auto / F:.2f} F; ratio generic/autograd = {t_gen / t_auto:.2f} (target <= 1)")

    if device.type == "cpu":
        print("\npeak resident-set growth (fresh subprocess: build + one NTK and one P* application)")
        for b in (B // 2, B):
            out = subprocess.run([sys.executable, __file__, "--memory-child", str(b), str(T), str(H)],
                                 capture_output=True, text=True, check=True).stdout
            m = json.loads(out.strip().splitlines()[-1])
            print(f"  B={b:<4} peak growth {m['peak_growth_mb']:7.1f} MB = {m['peak_growth_mb'] / m['btH_mb']:5.1f} "
                  f"B·T·H tensors; held by P/P* {m['held_P_mb'] / m['btH_mb']:4.1f}, by all operators "
                  f"{m['held_mb'] / m['btH_mb']:4.1f} B·T·H tensors")
    else:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        o = operators(cell, x, hidden)
        o.NTK(q)
        peak = torch.cuda.max_memory_allocated() - base
        unit = B * T * H * 4
        print(f"\nCUDA peak allocation growth: {peak / 2**20:.1f} MB = {peak / unit:.1f} B·T·H tensors; held "
              f"{held_bytes(o.P, o.J_theta) / unit:.1f} B·T·H tensors")
    print("\n(reference implementation on the same workload, 2-core CPU, from the issue: P 7.6 F, P* 10.6 F, "
          "K 5.1 F, autograd NTK 7.8 F, composed P K P* 22 F, construction 218 F, 1.1 GB of Jacobians)")


if __name__ == "__main__":
    main()
