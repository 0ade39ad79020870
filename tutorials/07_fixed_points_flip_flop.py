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
# # 7. Fixed points of a trained 3-bit flip-flop
#
# Sussillo & Barak (2013) opened up a network trained on the 3-bit flip-flop: each of its 2³ = 8 memories
# is a stable fixed point of the input-free dynamics, and saddles sit between their basins.  We train a
# GRU on the task, search its fixed points from the states it visits on test trials, classify them by the
# eigenvalues of the Jacobian of the one-step map and check that picture.
#
# About half a minute on one CPU core.  `NEUROKPFLOW_TUTORIAL_SCALE=small` trains only a few steps (the
# test suite's setting; the counts below are then those of an untrained network).

# %%
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import torch

from neurokpflow import models, tasks, training, viz
from neurokpflow.analysis import fixed_points as fp

torch.set_num_threads(1)  # small network: more CPU threads only add overhead
SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
STEPS = 20 if SMALL else 600

# %% [markdown]
# ## The task
#
# Each of the 3 input channels carries sparse ±1 pulses; the matching output must hold the sign of the
# last pulse.  By default a bit's target is 0 until its first pulse, which teaches the network a ninth,
# "nothing stored yet" state per bit.  `initial_pulse=True` pulses every channel at t = 0, so every target
# is ±1 from the start and the ideal network has exactly the 8 memory states.

# %%
task = tasks.make("flip_flop", initial_pulse=True)
grid = task.test_grid(n_trials=256)
x, y = grid.inputs.numpy(), grid.targets.numpy()
print(task)
print("first step, trial 0:", x[0, 0], " targets never 0:", bool(np.all(np.abs(y) == 1)))

# %% [markdown]
# ## Training
#
# A 32-unit GRU, Adam with learning rate 0.01, 600 steps of 64 fresh trials
# (`benchmarks/bench_fixed_points_flipflop.py` repeats this recipe for several seeds).

# %%
model = models.make("gru", 3, 32, 3, seed=0)
with tempfile.TemporaryDirectory() as run:
    result = training.train(model, task, STEPS, run, lr=1e-2, batch_size=64, seed=0,
                            checkpoint_every=STEPS, progress=not SMALL)
print(f"final training loss {result.log['loss'].values[-1]:.4f}")

# %% [markdown]
# The search runs in float64 (so that `q = ½‖F(h) − h‖²` can reach 1e-20).  The states of the test
# trials are its starting points.

# %%
model = model.double().eval()
with torch.no_grad():
    outputs, states = model(grid.inputs.double())
print("test-grid accuracy:", task.score(outputs, grid).mean())

# %% [markdown]
# ## Fixed points for zero input
#
# 512 states drawn from the trajectories, plus Gaussian noise of SD 0.1 (without noise nearly every
# start rolls into an attractor and the saddles are easily missed), are each driven to `q < 1e-20` by
# the batched Levenberg–Marquardt search, then merged when closer than 1e-3.  A point of the discrete
# map is *stable* when every eigenvalue of its Jacobian has modulus below 1, a *saddle* when some but not
# all are above 1.

# %%
points = fp.find_fixed_points(model, torch.zeros(3), states, fp.FixedPointOptions(n_initial=512, noise=0.1))
labels = points["stability"].values
print(f"{points.attrs['n_converged']}/{points.attrs['n_initial']} starts converged; "
      f"{points.sizes['point']} distinct points:", dict(zip(*np.unique(labels, return_counts=True))))
stable = points["output"].values[labels == "stable"]
moduli = np.abs(points["eigenvalues"].values)
for out, top in zip(stable, moduli[labels == "stable", 0]):
    print(f"stable point: readout {np.round(out, 2)}  vertex {np.sign(out).astype(int)}  largest |λ| {top:.5f}")
print("distinct vertices:", len({tuple(v) for v in np.sign(stable).astype(int)}),
      " largest distance to its vertex:", np.linalg.norm(stable - np.sign(stable), axis=1).max(initial=0).round(3))
for out, n_up in zip(points["output"].values[labels == "saddle"], points["n_unstable"].values[labels == "saddle"]):
    print(f"saddle: readout {np.round(out, 2)}, {n_up} unstable direction(s)")

# %% [markdown]
# With the full run (seed 0, accuracy 1.0 on the 256 test trials) the search finds exactly 8 stable
# points, one per vertex of {−1, +1}³, with readouts within 0.2 of their vertex, and 2 saddles with a
# single unstable direction each, whose readouts lie between two neighbouring vertices (one component
# near 0: −0.02 and 0.22).  The largest eigenvalue modulus of every memory is between 0.9979 and 0.9997:
# the memories decay only very slowly, and a trajectory takes thousands of steps to settle.  Such points
# sit at the end of long, curved, nearly flat valleys of `q`; the search's geodesic acceleration
# (`FixedPointOptions.acceleration`, on by default) follows them.  The comparison below turns it off: in
# the full run, 410 of the 512 starts converge within 100 steps without it, 510 with it.

# %%
plain = fp.find_fixed_points(model, torch.zeros(3), states,
                             fp.FixedPointOptions(n_initial=512, noise=0.1, acceleration=0, max_iter=100))
accelerated = fp.find_fixed_points(model, torch.zeros(3), states,
                                   fp.FixedPointOptions(n_initial=512, noise=0.1, max_iter=100))
for name, ds in [("plain LM", plain), ("with geodesic acceleration", accelerated)]:
    print(f"{name:28s}: {ds.attrs['n_converged']}/512 converged within 100 steps, "
          f"{(ds['stability'].values == 'stable').sum()} stable points")

# %% [markdown]
# ## Picture
#
# The trajectories of the test trials and the fixed points on the first principal components of the
# states: the 8 stable points are the corners the trajectories jump between.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 4), layout="constrained")
viz.plot_fixed_points(points, states[:32], ax=axes[0], dims=(0, 1))
viz.plot_fixed_points(points, states[:32], ax=axes[1], dims=(0, 2))
plt.show()
