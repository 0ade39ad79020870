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
# # 1. From an NWB file to labelled xarray data
#
# The recording is real: monkey C's primary motor cortex during center-out reaches to 4 targets (71 units,
# 50 ms bins; Dyer et al. 2017), stored as `m1_center_out_chewie.nwb`.  We list what the file holds, read
# trial-aligned spike counts into an `xarray.Dataset`, average by target, smooth, split trials in halves for
# a reliability estimate, project on principal components, and save the result as netCDF.
#
# `data.dataset_path` finds the file in `$NEUROKPFLOW_DATA` (or `../shared/data`, or the download cache); on a
# machine without it, it downloads the source file published with the paper (KordingLab/DAD on GitHub, checked
# against its pinned SHA-256) and converts it to NWB once (needs `pip install neurokpflow[download]`).  The file
# is small, so the tutorial runs in seconds; `NEUROKPFLOW_TUTORIAL_SCALE=small` only plots fewer units.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

from neurokpflow import data

SMALL = os.environ.get("NEUROKPFLOW_TUTORIAL_SCALE") == "small"
FILE = data.dataset_path("m1_center_out")

# %% [markdown]
# ## What is in the file?

# %%
print(data.describe_nwb(FILE))

# %% [markdown]
# The spikes are stored as binned counts (a TimeSeries, one column per unit), not as a Units table.  `read_nwb`
# puts any series on a trial-aligned grid; the mapping `{"binned_spike_counts": "unit"}` names its column
# dimension.  Time is in seconds from `start_time` (bin centres); trials shorter than the window are padded with
# NaN and flagged in `valid`.

# %%
ds = data.read_nwb(FILE, align_to="start_time", bin_size=0.05, series={"binned_spike_counts": "unit"})
counts = ds["binned_spike_counts"]
print(ds)
print("trial lengths (s):", np.round((ds.stop_time - ds.start_time).values[:8], 2), "...")
print("fraction of valid bins:", float(ds["valid"].mean()))

# %% [markdown]
# The registry knows this file too and returns the same counts as `spike_count`:

# %%
print(data.list_datasets())
m1 = data.load_dataset("m1_center_out", bin_size=0.05)
np.testing.assert_array_equal(m1["spike_count"].values, counts.values)

# %% [markdown]
# ## Condition averages
#
# `trial_average(da, by="target")` gives `(target, time, unit)`; NaN padding is ignored.  We keep the first second,
# which every trial covers, and smooth with a 50 ms Gaussian.

# %%
rates = data.counts_to_rates(counts.sel(time=slice(0, 1.0)))
psth = data.smooth(data.trial_average(rates, by="target"), sigma=0.05)
print(psth.sizes, "trials per target:", psth["n_trials"].values)
units = [0, 10] if SMALL else [0, 10, 20, 30]
fig, axes = plt.subplots(1, len(units), figsize=(3 * len(units), 2.8), sharey=True)
for ax, unit in zip(axes, units):
    psth.sel(unit=unit).plot.line(x="time", hue="target", ax=ax, add_legend=unit == 0)
    ax.set_title(f"unit {unit}")
plt.show()

# %% [markdown]
# ## Split-half reliability
#
# Two disjoint halves of the trials, stratified by target, give two independent PSTH estimates; their correlation
# per unit (Spearman–Brown corrected to the full trial count) says how much of the PSTH is signal.

# %%
first, second = data.split_halves(rates, seed=0, by="target")
a = data.smooth(data.trial_average(first, by="target"), 0.05)
b = data.smooth(data.trial_average(second, by="target"), 0.05)
r = xr.corr(a, b, dim=["target", "time"])
reliability = 2 * r / (1 + r)
print(f"median split-half reliability over units: {float(reliability.median()):.2f}")

# %% [markdown]
# ## Population trajectories
#
# `pca_project` fits principal components on the condition averages; single trials can be projected on the same
# axes with `fit_on=`.

# %%
pcs = data.pca_project(psth, n_components=2)
print("explained variance:", np.round(pcs["explained_variance_ratio"].values, 2))
for target in pcs["target"].values:
    trace = pcs.sel(target=target)
    plt.plot(trace.sel(component=0), trace.sel(component=1), label=f"target {target}")
plt.xlabel("PC 1")
plt.ylabel("PC 2")
plt.legend()
plt.show()

# %% [markdown]
# ## Saving
#
# The Dataset is plain xarray: it saves to netCDF and reopens with its coordinates and provenance.

# %%
ds.to_netcdf("m1_counts.nc")
with xr.open_dataset("m1_counts.nc") as reopened:
    xr.testing.assert_identical(reopened.load(), ds)
print(ds.attrs["history"])
