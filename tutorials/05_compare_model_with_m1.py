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

import matplotlib.pyplot as plt
import numpy as np
import torch

import neurokpflow
from neurokpflow import analysis, compare, data, models, tasks, training, viz

torch.set_num_threads(1)
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
HIDDEN, STEPS, EVERY, N_RESAMPLES = (16, 60, 20, 30) if SMALL else (64, 600, 50, 200)
RUN = "runs/tutorial-05"
shutil.rmtree(RUN, ignore_errors=True)  # start afresh when the notebook is run again
print(data.dataset_path("m1_center_out"))  # local copy, or downloaded and converted on first use

# %% [markdown]
# ## The recording
#
# The first second of every trial (all trials last at least 1 s), smoothed with a 50 ms Gaussian.

# %%
m1 = data.load_dataset("m1_center_out", bin_size=0.05)
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
# `neurokpflow.record` gives the hidden states with the task's labels, time at bin centres (the package's one
# time convention, as the NWB reader uses).  We label conditions by target.

# %%
grid = task.test_grid(n_angles=4, modalities=(1,))
targets = np.unique(recording["target"].values)


def hidden_states(m):
    hidden = neurokpflow.record(m, grid)["hidden"]
    return hidden.assign_coords(target=("trial", targets[grid.meta["condition"]]))


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
# noise-free condition means instead (the noise-corrected Procrustes angle keeps a small bias, so its interval is
# the basic one around its bootstrap bias-corrected value, given in `ci_estimate`).

# %%
trained = over_training[max(over_training)]
scores = compare.compare(trained, recording, measures=["procrustes", "cka", "rsa"],
                         stats=["bootstrap", "permutation", "noise_ceiling"], condition="target",
                         n_boot=N_RESAMPLES, n_perm=N_RESAMPLES)
print(scores[["score", "ci_low", "ci_high", "null_mean", "p_value", "noise_ceiling"]].to_pandas().round(3).T)

# %%
viz.plot_comparison(scores)

# %% [markdown]
# ## Over training
#
# A mapping `{step: recording}` is compared checkpoint by checkpoint.

# %%
along = compare.compare(over_training, recording, measures=["procrustes", "cka"], stats=["bootstrap", "permutation"],
                        condition="target", n_boot=N_RESAMPLES, n_perm=N_RESAMPLES)
print(along["score"].to_pandas().round(3))
viz.plot_comparison(along)

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
viz.plot_comparison(per_time)

# %% [markdown]
# ## Why does training move the model toward M1?  Similarity flow
#
# One gradient step changes the hidden states by δz = −η P K P* Err (tutorial 3), so it changes the Procrustes
# similarity by ⟨∇_z S, δz⟩ to first order.  `analysis.similarity_flow` computes this at every checkpoint, for the
# step as gradient descent realises it (P K P*), for the direct step that ignores the parameters (P P*, K = I), and —
# this run used Adam — for Adam's next step read from the checkpoint's optimiser state (its gradient part, and the
# drift of its momentum from past batches).  `check=True` takes one real Adam step on a copy and measures the change.
# Positive = more similar (minus the change of the angle).  The model's representation is the condition mean of its
# test-grid trials at the recording's time bins, matched by value as `compare` does.

# %%
flow = analysis.similarity_flow(RUN, grid, recording, measure="procrustes", lr=3e-3, preconditioner="adam",
                                condition_labels=tuple(targets.tolist()), recording_condition="target", check=True)
columns = ["score", "predicted", "predicted_direct", "cosine", "cosine_direct", "predicted_adam_step_total",
           "measured", "relative_error"]
print(flow[columns].squeeze("task", drop=True).to_pandas().to_string(float_format="%.4g"))

# %% [markdown]
# `cosine` and `cosine_direct` are scale-free: how squarely each step points up the similarity gradient.  Where the
# direct step's cosine is larger than gradient descent's, K turns part of the learning signal away from the brain's
# geometry; where it is smaller, the parameters steer the step toward it.  The split by time bin shows *when in the
# trial* the step makes the model more M1-like (summed over conditions, at the last checkpoint):

# %%
last = int(flow["step"].values[-1])
per_time = flow["change"].sel(step=last).sum(("task", "condition"))
print(per_time.to_pandas().to_string(float_format="%.3g"))
viz.plot_similarity_flow(flow, "predicted_adam_step")

# %% [markdown]
# ### Which sub-task's gradient moves the model toward M1?
#
# With several tasks, the error splits as Err = Σ_i Err_i and so does the similarity change.  We train a second
# network on MemoryPro and MemoryAnti (respond opposite to the stimulus) and ask, at each checkpoint, how much each
# task's error moves the MemoryPro trials' representation toward the M1 recording (`representation_tasks`).  The
# `task` dimension names the task whose error causes the change.

# %%
anti = tasks.make("memory_anti", dt=0.05, durations={"fixation": (0.2, 0.2), "stimulus": (0.2, 0.2),
                                                     "delay": (0.3, 0.3), "response": (0.3, 0.3)})
pro_anti = tasks.mix([task, anti])
mix_model = models.make("rnn", pro_anti.n_inputs, HIDDEN, pro_anti.n_outputs, alpha=0.5, seed=0)
training.train(mix_model, pro_anti, steps=STEPS, out_dir=RUN + "-mix", lr=3e-3, checkpoint_every=EVERY,
               eval_grid={"n_angles": 8, "modalities": (1,)}, progress=not SMALL)
mix_grid = pro_anti.test_grid(n_angles=4, modalities=(1,))
mix_flow = analysis.similarity_flow(RUN + "-mix", mix_grid, recording, measure="procrustes", lr=3e-3,
                                    condition_labels=tuple(targets.tolist()), recording_condition="target",
                                    representation_tasks=("memory_pro",))
print("similarity gain of one GD step, by the task whose error causes it:")
print(mix_flow["predicted"].to_pandas().to_string(float_format="%.3g"))
print("cos(grad S, step), as realised (P K P*) and direct (P P*):")
print(mix_flow[["cosine", "cosine_direct"]].to_dataframe().to_string(float_format="%.3f"))
viz.plot_similarity_flow(mix_flow)

# %% [markdown]
# Under the direct step (K = I) MemoryAnti's error cannot move the MemoryPro trials at all (`cosine_direct` is 0):
# trials do not interact through P, so whatever MemoryAnti's gradient does to the pro representation it does through
# K — the parameters both tasks share.

# %%
plt.show()
