"""Resumable per-checkpoint analyses saved to netCDF.

The result file is rewritten after every finished checkpoint: the new dataset goes to a
temporary file in the same directory which is then renamed over the old one, so an
interruption (or a crash while writing) leaves either the previous complete file or the new
complete file, never a partial one.  On a later call with the same ``out`` the steps already
in the file are skipped; the file's ``signature`` attributes (analysis, architecture,
evaluation data, options) must match the call, otherwise the call is refused rather than
mixing two analyses in one file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from .._io import read_netcdf, write_netcdf
from ..errors import InputError
from .._logging import get_logger

log = get_logger(__name__)

__all__ = ["run_over_checkpoints"]

def _check_signature(existing: xr.Dataset, signature: dict, path):
    for key, value in signature.items():
        have = existing.attrs.get(key)
        if have != value:
            raise InputError(
                f"out={str(path)!r} holds a different analysis: its attribute {key!r} is {have!r} but this call "
                f"has {value!r}. Use another output path, or delete the file to recompute")


def run_over_checkpoints(checkpoints, compute, *, signature: dict, finalize, derived=(), out=None,
                         progress=True, desc="analysis") -> xr.Dataset:
    """Apply ``compute(checkpoint) -> Dataset`` to every checkpoint and stack along ``step``.

    ``finalize(stacked) -> Dataset`` adds variables derived across steps (names in ``derived``,
    dropped and recomputed on resume) and attributes.  With ``out`` the result is saved after
    every checkpoint and checkpoints whose step is already in the file are not recomputed.
    """
    done = None
    if out is not None and Path(out).exists():
        done = read_netcdf(out)
        _check_signature(done, signature, out)
        done = done.drop_vars([v for v in derived if v in done.variables])
    done_steps = set() if done is None else {int(s) for s in done["step"].values}
    todo = [c for c in checkpoints if c.step not in done_steps]
    if done_steps:
        log.info("%s: %d of %d checkpoints already in %s; computing the other %d", desc, len(checkpoints) - len(todo),
                 len(checkpoints), out, len(todo))
    parts = [] if done is None else [done]
    result = None
    bar = tqdm(total=len(checkpoints), initial=len(checkpoints) - len(todo), disable=not progress, desc=desc,
               dynamic_ncols=True)
    try:
        for c in todo:
            bar.set_postfix(step=c.step, refresh=False)
            parts.append(compute(c).expand_dims(step=[c.step]))
            result = _stack(parts, signature, finalize)
            parts = [result.drop_vars([v for v in derived if v in result.variables])]
            if out is not None:
                write_netcdf(result, out)
            bar.update(1)
    finally:
        bar.close()
    if result is None:  # everything was already computed
        result = _stack(parts, signature, finalize)
    return result


def _stack(parts, signature, finalize) -> xr.Dataset:
    ds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="step", data_vars="all", coords="minimal",
                                                    compat="override", join="exact", combine_attrs="override")
    ds = ds.sortby("step")
    ds["step"] = ds["step"].astype(np.int64)
    ds["step"].attrs.update(long_name="optimiser step of the checkpoint")
    ds = finalize(ds)
    ds.attrs.update(signature)
    return ds
