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
# # 2. Training a multi-task RNN
#
# We build the four Memory/Delay × Pro/Anti tasks of Driscoll, Shenoy & Sussillo (2024), mix them into one
# task with a rule input per task, train a leaky tanh RNN with checkpoints, resume it, and record its
# hidden states in the same `xarray` layout that the NWB loaders produce.
#
# Runs on a CPU in a few minutes.  `NEUROKPFLOW_TUTORIAL_SCALE=small` shrinks it to seconds (used by the
# test suite).

# %%
import os
import shutil

import matplotlib.pyplot as plt
import numpy as np
import torch

import neurokpflow
from neurokpflow import models, tasks, training

torch.set_num_threads(1)  # small networks: more CPU threads only add overhead
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
STEPS = 40 if SMALL else 1500
HIDDEN = 32 if SMALL else 128
RUN = "runs/tutorial-02"
shutil.rmtree(RUN, ignore_errors=True)  # start afresh when the notebook is run again

# %% [markdown]
# ## Tasks
#
# `tasks.make(name, **options)` builds a seeded, immutable task.  Short epochs and `dt = 50 ms` keep the
# trials at 1–2.5 s (`durations` overrides the documented ranges, in seconds).  `tasks.mix` appends one
# rule input per task.

# %%
durations = {"fixation": (0.3, 0.5), "stimulus": (0.3, 0.5), "response": (0.3, 0.5)}
names = ["memory_pro", "memory_anti", "delay_pro", "delay_anti"]
four = tasks.mix([tasks.make(n, dt=0.05, durations={**durations, **({"delay": (0.4, 1.0)} if n.startswith("memory") else {})})
                  for n in names])
print(four)
print("inputs:", four.input_names)
print("outputs:", four.output_names)

# %%
batch = four.sample(8, seed=0)
print(batch)
trial = 0
fig, axes = plt.subplots(3, 1, figsize=(7, 6), sharex=True)
axes[0].plot(batch.times, batch.inputs[trial].numpy())
axes[0].set_ylabel("inputs")
axes[1].plot(batch.times, batch.targets[trial].numpy())
axes[1].set_ylabel("targets")
axes[2].plot(batch.times, batch.mask[trial].numpy())
axes[2].set_ylabel("loss mask")
axes[2].set_xlabel("time (s)")
axes[0].set_title(f"trial {trial}: {batch.meta['task'][trial]}")
plt.show()

# %% [markdown]
# ## Model and training
#
# `models.make(kind, n_in, n_hidden, n_out, ...)`: a leaky rate RNN with `alpha = dt / tau = 0.5`.
# `training.train` writes `checkpoints/step_*.pt` every `checkpoint_every` steps and a netCDF log.

# %%
model = models.make("rnn", four.n_inputs, HIDDEN, four.n_outputs, alpha=0.5, seed=0)
result = training.train(model, four, steps=STEPS // 2, out_dir=RUN, lr=3e-3, checkpoint_every=max(10, STEPS // 30),
                        eval_grid={"n_angles": 8}, progress=not SMALL)
print(result.stop_reason, "at step", result.step)

# %% [markdown]
# A run can be continued exactly where it stopped (bit-identical on the CPU to an uninterrupted run):

# %%
result = training.resume(RUN, steps=STEPS, progress=not SMALL)
log = result.log
log["accuracy"].plot.line(x="eval_step", hue="task")
plt.ylabel("test-grid accuracy")
plt.show()
print(log["accuracy"].isel(eval_step=-1).to_series())

# %% [markdown]
# ## Recording hidden states
#
# `neurokpflow.record(model, batch)` returns a Dataset with dims `("trial", "time", "unit")`, time in
# seconds and one coordinate per trial label (task, condition, angles, epoch boundaries).

# %%
grid = four.test_grid(n_angles=8, modalities=(1,))
recording = neurokpflow.record(result.model, grid)
print(recording)

# %% [markdown]
# The delay-period states of the four tasks, projected on their first two principal components:

# %%
hidden = recording["hidden"]
end_of_stimulus = hidden.isel(time=hidden.sizes["time"] // 2)
X = end_of_stimulus.values - end_of_stimulus.values.mean(0)
_, _, vt = np.linalg.svd(X, full_matrices=False)
pcs = X @ vt[:2].T
for name in names:
    sel = recording["task"].values == name
    plt.scatter(pcs[sel, 0], pcs[sel, 1], label=name)
plt.legend()
plt.xlabel("PC 1")
plt.ylabel("PC 2")
plt.title("hidden state at mid-trial, by task")
plt.show()
