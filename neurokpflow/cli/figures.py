"""Figures of the command-line reports, each drawn from a result Dataset of the run."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def training_curves(log):
    """Training loss per step and test-grid accuracy per evaluation (the trainer's ``log.nc``)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.semilogy(log["step"], log["loss"], lw=0.8)
    ax1.set_xlabel("step")
    ax1.set_ylabel("training loss (masked MSE)")
    for task in log["task"].values:
        ax2.plot(log["eval_step"], 100 * log["accuracy"].sel(task=task), marker="o", ms=3, label=str(task))
    ax2.set_xlabel("step")
    ax2.set_ylabel("test-grid accuracy (%)")
    ax2.set_ylim(-3, 103)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def activity_rank(collapse):
    """Participation ratio (ER4) of the hidden activity over training, centred and uncentred."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for centering, style in zip(collapse["centering"].values, ("-", "--")):
        er = collapse["activity_effective_rank"].sel(centering=centering)
        se = collapse["activity_effective_rank_stderr"].sel(centering=centering)
        ax.errorbar(collapse["step"].values, er, yerr=se, ls=style, marker="o", ms=3, capsize=2, color="tab:gray",
                    label=str(centering))
    ax.set_xlabel("training step")
    ax.set_ylabel("participation ratio (ER4)")
    ax.set_title("hidden activity", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _condition_means(activity):
    """(condition, time, unit) means of a (trial, time, unit) DataArray with a per-trial ``condition``."""
    return activity.groupby("condition").mean("trial").transpose("condition", "time", ...)


def _top_pcs(means, k=2):
    X = means.values
    flat = X.reshape(-1, X.shape[-1])
    flat = flat - flat.mean(0)
    _, s, vt = np.linalg.svd(flat, full_matrices=False)
    explained = (s[:k] ** 2).sum() / (s ** 2).sum()
    return (flat @ vt[:k].T).reshape(X.shape[0], X.shape[1], k), explained


def trajectories(recording, untrained, trained, trained_step):
    """Condition-averaged trajectories of the recording, the untrained and the trained model, each in
    its own top-2 principal-component plane (no fitted mapping between them); colour = condition."""
    panels = [("recording", recording), ("model, untrained (step 0)", untrained),
              (f"model, trained (step {trained_step})", trained)]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, (title, activity) in zip(axes, panels):
        means = _condition_means(activity)
        pcs, explained = _top_pcs(means)
        colours = plt.cm.twilight(np.linspace(0, 1, pcs.shape[0], endpoint=False))
        for c in range(pcs.shape[0]):
            ax.plot(pcs[c, :, 0], pcs[c, :, 1], color=colours[c], lw=1.2)
            ax.plot(pcs[c, -1, 0], pcs[c, -1, 1], "o", color=colours[c], ms=3)
        ax.set_title(f"{title}\n(PC1-2: {100 * explained:.0f} % of variance)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("PC 1")
    axes[0].set_ylabel("PC 2")
    fig.tight_layout()
    return fig
