# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. The KPFlow operators and dynamic collapse
#
# Under gradient descent with learning rate η the hidden trajectories of a recurrent network change, to first
# order, by δz = −η · P K P* · Err (Hazelden et al., 2025): the error Err is pulled back through the adjoint
# propagator P*, mapped by the parameter operator K = J_θ J_θ* (how a parameter change moves each step's update),
# and pushed forward through time by P.  Here we build these operators, matrix-free, for a small RNN on MemoryPro,
# look at their effective ranks and eigenfunctions, and follow them over training with
# `neurokpflow.analysis.collapse`.  The last section reproduces the paper's headline figure — P's effective rank
# collapsing while K's stays near 1 — under the reference code's own training protocol and rank definition.
#
# A few minutes on a CPU; `NEUROKPFLOW_TUTORIAL_SCALE=small` takes seconds.

# %%
import os
import shutil

import matplotlib.pyplot as plt
import torch

from neurokpflow import analysis, kpflow, models, tasks, training, viz

torch.set_num_threads(1)  # these networks are small: one thread is fastest
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
HIDDEN, STEPS, EVERY = (16, 60, 20) if SMALL else (64, 600, 50)
RUN = "runs/tutorial-03"
shutil.rmtree(RUN, ignore_errors=True)  # start afresh when the notebook is run again

# %% [markdown]
# ## A model and its operators
#
# MemoryPro at 50 ms steps with short epochs; a leaky tanh RNN with α = dt/τ = 0.5.

# %%
task = tasks.make("memory_pro", dt=0.05, durations={"fixation": (0.3, 0.5), "stimulus": (0.3, 0.5),
                                                    "delay": (0.4, 1.0), "response": (0.3, 0.5)})
model = models.make("rnn", task.n_inputs, HIDDEN, task.n_outputs, alpha=0.5, seed=0)
batch = task.test_grid(n_angles=8, modalities=(1,))
ops = kpflow.operators_from_model(model, batch, dtype=torch.float64)
print("trajectory space (trial, time, unit):", ops.shape)
print("parameters θ:", ops.param_names)

# %% [markdown]
# Each operator is a `LinearOperator`: apply it to a trajectory-shaped tensor, take its adjoint with `.T`, compose
# with `@`.  The adjoint identity ⟨P v, w⟩ = ⟨v, P* w⟩ holds to machine precision:

# %%
v = torch.randn(ops.shape, dtype=torch.float64)
w = torch.randn(ops.shape, dtype=torch.float64)
lhs = (ops.P(v) * w).sum()
rhs = (v * ops.P.T(w)).sum()
print(f"<Pv, w> = {lhs:.6f}   <v, P*w> = {rhs:.6f}")

# %% [markdown]
# ## Effective rank
#
# How many directions of trajectory space does each operator really use?  We reduce each operator onto time
# (averaging over trials and units, the paper's view) and compute an effective rank — here ER2, the participation
# ratio of the eigenvalues, (Σλ)² / Σλ².

# %%
for name in ("K", "P", "NTK"):
    op = getattr(ops, name)
    if name == "P":
        op = op @ op.T  # P is ranked through its Gram operator P P*
    er = kpflow.effective_rank(op, definition="ER2", keep=("time",), reduction="block_average", method="exact")
    print(f"ER2 of {name:>3} reduced onto time: {float(er.value):.2f}")

# %% [markdown]
# ## Training and dynamic collapse
#
# Train with checkpoints, then `analysis.collapse` recomputes the operators at every checkpoint (the untrained
# network is step 0) and returns one `xarray.Dataset` with a `step` dimension, saved to netCDF as it goes
# (an interrupted analysis resumes where it stopped).

# %%
training.train(model, task, steps=STEPS, out_dir=RUN, lr=3e-3, checkpoint_every=EVERY,
               eval_grid={"n_angles": 8, "modalities": (1,)}, progress=not SMALL)
untrained = models.make("rnn", task.n_inputs, HIDDEN, task.n_outputs, alpha=0.5, seed=0)
checkpoints = [(0, untrained)] + [(info["step"], m) for m, info in
                                  (training.load_checkpoint(p) for p in training.list_checkpoints(RUN))]
result = analysis.collapse(checkpoints, batch, task=task, out="collapse.nc", progress=not SMALL,
                           n_bootstrap=10 if SMALL else 50)
print(result["effective_rank"].sel(definition="ER1").to_pandas().round(2))
print(result[["misdirection", "loss"]].to_pandas().round(3))

# %%
viz.plot_effective_rank(result, "ER1")

# %% [markdown]
# The top eigenfunctions of the time-reduced P K P* show *when* in the trial gradient descent can move the
# hidden states (one line per stimulus angle); compare the trained network with the untrained one.

# %%
viz.plot_eigenfunctions(result, "PKP*", step=int(result.step[-1]))

# %%
viz.plot_eigenfunctions(result, "PKP*", step=0)
plt.show()

# %% [markdown]
# ## The paper's collapse: reference protocol, reference rank
#
# The paper's figure trains torch's tanh `nn.RNN` (no leak, its default initialisation with the recurrent weight
# scaled by g) on the KPFlow Memory-Pro task with a fixed set of noisy trials, Adam and a gradient-norm clip of
# 1e-4, and ranks K and P with its own definition: the time-reduced K K* and P P* (block average over trials and
# units, four noise-free trials), eigenvalues **squared again** and normalised over the top 20 / 60 only.
# `training.REFERENCE` is that protocol and `analysis.PAPER_FIGURE_RANK` that definition
# (docs/reproducing-kpflow.md).  At tutorial size: T = 30, H = 32, a full batch of 256 trials, lr 3e-3.

# %%
from neurokpflow.analysis import PACKAGE_RANK, PAPER_FIGURE_RANK

REF_STEPS, REF_EVERY = (150, 50) if SMALL else (400, 25)
proto = training.REFERENCE.replace(dataset_size=256, batch_size=256, lr=3e-3, period=10, target_loss=None,
                                   checkpoint_every=REF_EVERY)
mp = proto.task()
build = lambda: models.make("rnn", mp.n_inputs, 32, mp.n_outputs, seed=0, **proto.model_options(g=1.0))  # noqa: E731
shutil.rmtree(RUN + "-reference", ignore_errors=True)
training.train(build(), mp, REF_STEPS, RUN + "-reference", progress=False, **proto.train_options())
ranks = analysis.convention_ranks([(0, build())] + training.list_checkpoints(RUN + "-reference"),
                                  mp.test_grid(n_angles=4), [PAPER_FIGURE_RANK, PACKAGE_RANK], task=mp)
print(ranks.effective_rank.to_dataframe().unstack(["convention", "operator"]).round(2))
print(ranks.loss.to_pandas().round(3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for conv in ranks.convention.values:
    for ax, op in zip(axes, ("P", "K")):
        ax.plot(ranks.step, ranks.effective_rank.sel(convention=conv, operator=op), marker="o", label=conv)
        ax.set_title(f"{op} effective rank")
        ax.set_xlabel("training step")
axes[0].legend()

# %% [markdown]
# P's rank drops from ≈ 28 (of 30 time steps) to ≈ 1 while K's stays below 2 once the loss leaves the plateau
# of the untrained network (≈ 0.11, "output the fixation only"): learning to hold the stimulus makes one direction
# of the propagator dominate P P*, and the reference's squaring of the eigenvalues (σ(P)⁴) turns that
# dominance into a rank near 1; the package's ER1 (σ(P)², all eigenvalues) falls too, less far and less steadily.
