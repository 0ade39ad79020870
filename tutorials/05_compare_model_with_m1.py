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
# # 5. Comparing a model with the M1 recording, with statistics
#
# Does an RNN trained on a delayed-reach task organise its activity like monkey motor cortex during center-out
# reaches?  We train a network on MemoryPro with the recording's four directions, record its hidden states at
# every checkpoint, and compare them with the M1 population (tutorial 1) by condition and time, under several
# measures — each with a bootstrap confidence interval, a permutation null and the recording's noise ceiling.
#
# Matching is by coordinate values, never by position: the model's conditions are the stimulus angles 2πk/4,
# relabelled with the recording's target labels 0–3 in sorted order (an assumption about the target order that a
# real study must check), and times are bin centres in seconds from trial start.
#
# A few minutes on a CPU; `NEUROKPFLOW_TUTORIAL_SCALE=small` takes seconds.

# %%
import os
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import neurokpflow
from neurokpflow import compare, data, models, tasks, training

torch.set_num_threads(1)
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
HIDDEN, STEPS, EVERY, N_RESAMPLES = (16, 60, 20, 30) if SMALL else (64, 600, 50, 200)
DATA = Path(os.environ.get("NEUROKPFLOW_DATA", "../shared/data"))
RUN = "runs/tutorial-05"
shutil.rmtree(RUN, ignore_errors=True)  # start afresh when the notebook is run again
print(DATA / "m1_center_out_chewie.nwb")

# %% [markdown]
# ## The recording
#
# The first second of every trial (all trials last at least 1 s), smoothed with a 50 ms Gaussian.

# %%
m1 = data.load_dataset("m1_center_out", data_dir=DATA, bin_size=0.05)
recording = data.smooth(m1["spike_count"].sel(time=slice(0, 1.0)), sigma=0.05)
print(recording.sizes, "targets:", np.unique(recording["target"].values))

# %% [markdown]
# ## A model on a 1-second delayed reach
#
# MemoryPro with epochs summing to 1 s at 50 ms steps, so that model and recording share the time grid.

# %%
task = tasks.make("memory_pro", dt=0.05, durations={"fixation": (0.2, 0.2), "stimulus": (0.2, 0.2),
                                                    "delay": (0.3, 0.3), "response": (0.3, 0.3)})
model = models.make("rnn", task.n_inputs, HIDDEN, task.n_outputs, alpha=0.5, seed=0)
run = training.train(model, task, steps=STEPS, out_dir=RUN, lr=3e-3, checkpoint_every=EVERY,
                     eval_grid={"n_angles": 8, "modalities": (1,)}, progress=not SMALL)
print("accuracy:", float(run.log["accuracy"].isel(eval_step=-1, task=0)))

# %% [markdown]
# `neurokpflow.record` gives the hidden states with the task's labels.  We label time by bin centre and
# conditions by target.

# %%
grid = task.test_grid(n_angles=4, modalities=(1,))
targets = np.unique(recording["target"].values)


def hidden_states(m):
    hidden = neurokpflow.record(m, grid)["hidden"]
    return hidden.assign_coords(time=(hidden["time"] + grid.dt / 2),
                                target=("trial", targets[grid.meta["condition"]]))


untrained = models.make("rnn", task.n_inputs, HIDDEN, task.n_outputs, alpha=0.5, seed=0)
over_training = {0: hidden_states(untrained)}
for path in training.list_checkpoints(RUN):
    m, info = training.load_checkpoint(path)
    over_training[info["step"]] = hidden_states(m)

# %% [markdown]
# ## One comparison, several measures, with statistics
#
# `compare` returns one Dataset: a score per measure (each states its convention: angle, distance or similarity),
# a bootstrap CI over conditions (BCa by default; the method is in `ci_method`), a permutation null (shuffling the
# recording's condition labels) and the recording's split-half noise ceiling. For recordings with repeated trials,
# `compare.CKA(cross_validated=True)` and `compare.Procrustes(cross_validated=True)` estimate the similarity of the
# noise-free condition means instead.

# %%
trained = over_training[max(over_training)]
scores = compare.compare(trained, recording, measures=["procrustes", "cka", "rsa"],
                         stats=["bootstrap", "permutation", "noise_ceiling"], condition="target",
                         n_boot=N_RESAMPLES, n_perm=N_RESAMPLES)
print(scores[["score", "ci_low", "ci_high", "null_mean", "p_value", "noise_ceiling"]].to_pandas().round(3).T)

# %%
compare.plot_comparison(scores)

# %% [markdown]
# ## Over training
#
# A mapping `{step: recording}` is compared checkpoint by checkpoint.

# %%
along = compare.compare(over_training, recording, measures=["procrustes", "cka"], stats=["bootstrap", "permutation"],
                        condition="target", n_boot=N_RESAMPLES, n_perm=N_RESAMPLES)
print(along["score"].to_pandas().round(3))
compare.plot_comparison(along)

# %% [markdown]
# ## When in the trial do they agree?
#
# `resolution="time"` gives a score per time bin: the Procrustes angle across the four conditions (a small
# sample, hence wide intervals).  Before the stimulus the model's states do not depend on the condition, so the
# measure is undefined there (`compare` raises a `DegenerateInputError` rather than returning NaN); we start at
# the stimulus onset.

# %%
stimulus_on = 0.2
per_time = compare.compare(trained.sel(time=slice(stimulus_on, None)), recording.sel(time=slice(stimulus_on, None)),
                           measures=["procrustes"], stats=["bootstrap"], condition="target", resolution="time",
                           n_boot=N_RESAMPLES)
compare.plot_comparison(per_time)
plt.show()
