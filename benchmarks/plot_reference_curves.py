"""Figure of the reference code's own run: P and K effective ranks over training, two rank definitions.

Reads the recorded curves (``docs/data/reference_code_H256_g1.json``, written by the study in
``docs/reproducing-kpflow.md`` §3.1) and draws, against the training iteration:

* P's effective rank under the reference figure's definition (95 % of the *squared* eigenvalues of the
  time-reduced P P*, top 60) and under the package's ER1 (95 % of the eigenvalues, all of them);
* the same two for K (top 20 for the reference definition);
* the evaluation loss and accuracy of the reference's analysis set.

Usage::

    python benchmarks/plot_reference_curves.py docs/data/reference_code_H256_g1.json docs/img/collapse_reference_code.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot(curves: dict, out: Path) -> Path:
    steps = curves["steps"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    for ax, op in zip(axes[:2], ("P", "K")):
        ax.plot(steps, curves[op], "k.-", label="reference figure's rank (λ², top-k)")
        ax.plot(steps, curves[f"{op}_package_ER1"], ".-", color="tab:orange", label="package ER1 (λ, all)")
        ax.set(title=f"{op}: effective rank", xlabel="training iteration", ylabel="effective rank")
        ax.legend(fontsize=8)
    ax = axes[2]
    ax.semilogy(steps, curves["loss"], "k.-", label="evaluation loss")
    ax.set(title="evaluation", xlabel="training iteration", ylabel="MSE")
    acc = ax.twinx()
    acc.plot(steps, curves["accuracy"], ".-", color="tab:green", label="accuracy")
    acc.set(ylabel="accuracy", ylim=(-0.05, 1.05))
    ax.legend(loc="lower left", fontsize=8)
    acc.legend(loc="center right", fontsize=8)
    fig.suptitle(curves.get("label", "reference code") + " — Memory-Pro, tanh RNN, T = 90, g = 1", fontsize=10)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", type=Path, help="JSON with steps, P, K, P_package_ER1, K_package_ER1, loss, accuracy")
    parser.add_argument("out", type=Path, help="PNG to write")
    args = parser.parse_args(argv)
    curves = json.loads(args.curves.read_text())
    missing = {"steps", "P", "K", "P_package_ER1", "K_package_ER1", "loss", "accuracy"} - set(curves)
    if missing:
        raise SystemExit(f"{args.curves} lacks the key(s) {sorted(missing)}")
    print(plot(curves, args.out))


if __name__ == "__main__":
    main()
