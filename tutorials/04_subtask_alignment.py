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
# # 4. Sub-task alignment in multi-task training
#
# When one network learns several tasks, the gradient of each task's error also moves the hidden states of the
# other tasks.  KPFlow splits the first-order update of task i's states into contributions of every task's error,
# δz_{i←j} = −η P_i K_ij P_j* Err_j, where K_ij is the block of the parameter operator between the trials of tasks
# i and j.  `alignment[i, j] = cos(δz_{i←j}, δz_{i←i})` says whether task j's error pushes task i's states the same
# way as task i's own error (> 0: the tasks cooperate; < 0: they interfere).  Summed over training
# (`cumulative_alignment`) it predicts which tasks end up sharing structure — in the Memory/Delay × Pro/Anti mix,
# the Pro/Anti grouping — often before it shows in the hidden states (`hidden_alignment`).
#
# A few minutes on a CPU; `NEUROKPFLOW_TUTORIAL_SCALE=small` takes seconds.

# %%
import os
import shutil

import matplotlib.pyplot as plt
import numpy as np
import torch

from neurokpflow import analysis, models, tasks, training, viz

torch.set_num_threads(1)
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
HIDDEN, STEPS, EVERY, N_ANGLES = (16, 40, 20, 4) if SMALL else (96, 1500, 100, 8)
RUN = "runs/tutorial-04"
shutil.rmtree(RUN, ignore_errors=True)  # start afresh when the notebook is run again

# %% [markdown]
# ## Four tasks, one network

# %%
short = {"fixation": (0.3, 0.5), "stimulus": (0.3, 0.5), "response": (0.3, 0.5)}
names = ["memory_pro", "memory_anti", "delay_pro", "delay_anti"]
four = tasks.mix([tasks.make(n, dt=0.05, durations={**short, **({"delay": (0.4, 1.0)} if n.startswith("memory")
                                                                 else {})}) for n in names])
model = models.make("rnn", four.n_inputs, HIDDEN, four.n_outputs, alpha=0.5, seed=0)
result = training.train(model, four, steps=STEPS, out_dir=RUN, lr=3e-3, checkpoint_every=EVERY,
                        eval_grid={"n_angles": 8, "modalities": (1,)}, progress=not SMALL)
print(result.log["accuracy"].isel(eval_step=-1).to_series())

# %% [markdown]
# ## The interference matrix over training
#
# The evaluation batch holds every task's test grid; `subtask_alignment` splits it by `meta["task"]`.  Trials of
# different tasks have different lengths, so the batch is padded (the padding carries no loss).

# %%
batch = four.test_grid(n_angles=N_ANGLES, modalities=(1,))
untrained = models.make("rnn", four.n_inputs, HIDDEN, four.n_outputs, alpha=0.5, seed=0)
checkpoints = [(0, untrained)] + [(info["step"], m) for m, info in
                                  (training.load_checkpoint(p) for p in training.list_checkpoints(RUN))]
alignment = analysis.subtask_alignment(checkpoints, batch, out="alignment.nc", progress=not SMALL)
print(alignment)

# %%
viz.plot_task_matrices(alignment, "alignment")

# %%
viz.plot_task_matrices(alignment, "hidden_alignment")

# %% [markdown]
# Over training, the cumulative alignment of every ordered pair.  Pro/Anti pairs that share a family
# (memory_pro ← memory_anti, ...) can be compared with pairs that share the response rule
# (memory_pro ← delay_pro, ...).

# %%
viz.plot_task_trajectories(alignment)

# %%
final = alignment["cumulative_alignment"].isel(step=-1)
for i in names:
    row = ", ".join(f"{j}: {float(final.sel(task_i=i, task_j=j)):+.2f}" for j in names if j != i)
    print(f"{i:12s} <- {row}")

# %% [markdown]
# The decomposition itself, for one model: summing δz_{i←j} over j gives the full first-order update of task i.

# %%
parts = analysis.interference_decomposition(result.model, batch)
print(parts)
np.testing.assert_allclose(parts["delta_z"].sum("task_j"), parts["delta_z_total"], rtol=1e-8, atol=1e-12)
plt.show()
