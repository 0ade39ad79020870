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
# `neurokpflow.analysis.collapse`.
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
