"""Figures of the command-line reports, each drawn from a result Dataset of the run."""
from __future__ import annotations

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg", force=False)  # reports are written without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

OPERATOR_COLOURS = {"K": "tab:blue", "P": "tab:orange", "PKP*": "tab:green", "activity": "tab:gray"}


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


def effective_ranks(collapse, definition):
    """Effective rank of K, P, P K P* (one definition) and of the hidden activity vs training step."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps = collapse["step"].values
    for op in collapse["operator"].values:
        er = collapse["effective_rank"].sel(operator=op, definition=definition)
        se = collapse["effective_rank_stderr"].sel(operator=op, definition=definition)
        ax1.errorbar(steps, er, yerr=se, marker="o", ms=3, capsize=2, label=str(op),
                     color=OPERATOR_COLOURS.get(str(op)))
    ax1.set_xlabel("step")
    ax1.set_ylabel(f"effective rank ({definition})")
    ax1.set_yscale("log")
    ax1.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.legend(fontsize=8)
    ax1.set_title("operators (time-reduced)", fontsize=10)
    for centering, style in zip(collapse["centering"].values, ("-", "--")):
        er = collapse["activity_effective_rank"].sel(centering=centering)
        se = collapse["activity_effective_rank_stderr"].sel(centering=centering)
        ax2.errorbar(steps, er, yerr=se, ls=style, marker="o", ms=3, capsize=2, color="tab:gray",
                     label=f"hidden activity, {centering}")
    ax2.set_xlabel("step")
    ax2.set_ylabel("participation ratio (ER4)")
    ax2.legend(fontsize=8)
    ax2.set_title("hidden activity", fontsize=10)
    fig.tight_layout()
    return fig


def eigenfunctions(collapse, operator="PKP*"):
    """Top eigenfunction of the unit-reduced operator over time, one line per trial, first vs last step."""
    steps = collapse["step"].values
    chosen = [steps[0], steps[-1]]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.0), sharey=True)
    for ax, step in zip(axes, chosen):
        phi = collapse["eigenfunction"].sel(step=step, eig_operator=operator, mode=0)
        lam = float(collapse["eigenvalue"].sel(step=step, eig_operator=operator, mode=0))
        colours = plt.cm.twilight(np.linspace(0, 1, phi.sizes["trial"], endpoint=False))
        for trial, colour in zip(range(phi.sizes["trial"]), colours):
            ax.plot(phi["time"], phi.isel(trial=trial), color=colour, lw=1)
        ax.set_title(f"step {step}: top eigenfunction of {operator} (λ = {lam:.3g})", fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("φ₁(trial, time)")
    fig.tight_layout()
    return fig


def task_matrices(alignment, variable="alignment"):
    """Task × task matrices at the first and last checkpoint."""
    steps = alignment["step"].values
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    names = [str(t) for t in alignment["task_i"].values]
    for ax, step in zip(axes, (steps[0], steps[-1])):
        m = alignment[variable].sel(step=step).values
        im = ax.imshow(m, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_xlabel("task j (source of the error)")
        ax.set_title(f"{variable}, step {step}", fontsize=10)
    axes[0].set_ylabel("task i (states moved)")
    fig.colorbar(im, ax=axes, shrink=0.8)
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
