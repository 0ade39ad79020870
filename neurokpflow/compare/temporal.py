"""Time-resolved (one score per time bin), cross-temporal (time x time) and along-training comparisons."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr

from ._inputs import Representation, align
from ._registry import get_measure
from ._result import DegenerateInputError
from ..errors import InputError, InputTypeError

#: dims recognised as the training dimension of a model recording; mappings and lists get "step",
#: the one name the package uses for it (analysis results, the command line, sweeps)
TRAINING_DIMS = ("step", "checkpoint", "epoch")
TRAINING_DIM = "step"


def _time_values(rep: Representation) -> np.ndarray:
    return rep.times if rep.times is not None else np.arange(rep.n_times)


def _per_time_measure(measure: Any):
    m = get_measure(measure)
    if not m.per_time_bin:
        raise InputError(f"{m.measure} compares dynamics across time; a per-time-bin {m.measure} is undefined")
    return m


def time_resolved(measure: Any, first: Any, second: Any, **align_options: Any) -> xr.DataArray:
    """The measure at each matched time bin, across conditions (needs several conditions)."""
    m = _per_time_measure(measure)
    a, b = align(first, second, **align_options)
    values = [float(m.score(a.take_times([t]), b.take_times([t]), in_sample_warning=False)) for t in range(a.n_times)]
    return xr.DataArray(values, dims="time", coords={"time": _time_values(a)}, name=m.measure,
                        attrs=dict(estimator=m.estimator, convention=m.convention))


def cross_temporal(measure: Any, first: Any, second: Any, **align_options: Any) -> xr.DataArray:
    """Matrix of the measure between the first input at time t1 and the second at t2 (across conditions)."""
    m = _per_time_measure(measure)
    a, b = align(first, second, **align_options)
    slices_a = [a.take_times([t]) for t in range(a.n_times)]
    slices_b = [b.take_times([t]) for t in range(b.n_times)]
    values = np.array([[float(m.score(sa, sb, in_sample_warning=False)) for sb in slices_b] for sa in slices_a])
    return xr.DataArray(values, dims=("time_first", "time_second"),
                        coords={"time_first": _time_values(a), "time_second": _time_values(b)}, name=m.measure,
                        attrs=dict(estimator=m.estimator, convention=m.convention))


def split_checkpoints(checkpoints: Any, dim: str | None = None) -> tuple[str, list, list]:
    """(dim name, coordinate values, recordings) from a recording with a checkpoint-like dim, a mapping
    {checkpoint: recording} or a sequence of recordings."""
    if isinstance(checkpoints, (xr.DataArray, xr.Dataset)):
        found = [d for d in ((dim,) if dim else TRAINING_DIMS) if d in checkpoints.dims]
        if not found:
            raise InputError(f"no checkpoint dimension among {checkpoints.dims}; name it with dim=...")
        d = found[0]
        values = list(checkpoints[d].values)
        return d, values, [checkpoints.isel({d: i}) for i in range(len(values))]
    if isinstance(checkpoints, Mapping):
        return dim or TRAINING_DIM, list(checkpoints.keys()), list(checkpoints.values())
    if isinstance(checkpoints, Sequence) and not isinstance(checkpoints, str):
        return dim or TRAINING_DIM, list(range(len(checkpoints))), list(checkpoints)
    raise InputTypeError(f"checkpoints must be an xarray object with a {TRAINING_DIMS} dim, a mapping or a sequence, "
                    f"got {type(checkpoints).__name__}")


def along_training(measure: Any, checkpoints: Any, data: Any, *, dim: str | None = None,
                   **align_options: Any) -> xr.DataArray:
    """The measure between each checkpoint's recording and one data recording, over a checkpoint dim."""
    m = get_measure(measure)
    d, values, recordings = split_checkpoints(checkpoints, dim)
    if not recordings:
        raise DegenerateInputError("no checkpoints to compare")
    scores = [float(m.score(*align(rec, data, **align_options), in_sample_warning=False)) for rec in recordings]
    return xr.DataArray(scores, dims=d, coords={d: values}, name=m.measure,
                        attrs=dict(estimator=m.estimator, convention=m.convention))
