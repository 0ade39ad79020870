"""Many sessions: :func:`read_sessions` and :func:`pseudo_population`.

Layouts (the contract other modules, e.g. :mod:`neurokpflow.compare`, rely on)
------------------------------------------------------------------------------
**Tree** (``read_sessions(paths)``, the default): an ``xarray.DataTree`` whose root holds no
variables and one child node per session, in the order given.  Each child's dataset is exactly
what :func:`~neurokpflow.data.read_nwb` returns for that file with the same options (dims
``("trial", "time", "unit")``, ``valid`` mask, ``time_bnds``, ``unit_*`` and per-trial coords,
provenance attrs).  The child's name is the session name: the file's ``session_id`` if set,
else its ``identifier`` (``"/"`` replaced by ``"_"``), made unique by appending ``"-2"``,
``"-3"``, … in order; a mapping ``{name: source}`` names them explicitly.  Root attrs:
``sessions`` (the names, in order), ``n_sessions``, ``session_layout = "tree"``, ``history``.
Iterate with ``for name, node in tree.children.items(): ds = node.to_dataset()``.

**Stacked** (``read_sessions(paths, layout="stacked")``), only where every session has the same
unit ids, the same time bins and the same feature axes: one ``xarray.Dataset`` with dims
``("session", "trial", "time", "unit")``.  ``session`` holds the session names; ``trial`` is the
trial's *position* within its session (0 … max trials − 1); the NWB trial id is the coordinate
``trial_id(session, trial)`` (float, NaN on padding).  Sessions with fewer trials are padded at
the end: data NaN, ``valid`` False, ``trial_id`` NaN.  Units are matched by id (reordered to the
first session's order).  Per-trial coordinates become ``(session, trial)``; unit coordinates
that differ between sessions become ``(session, unit)``.  Per-session provenance becomes
coordinates along ``session``: ``session_nwb_file``, ``session_nwb_identifier``, ``session_id``,
``session_start_time``, ``session_subject_id``.  Other attrs shared by all sessions are kept.

**Pseudo-population** (``pseudo_population(sessions, condition=...)``): a ``DataArray`` with
dims ``("condition", "time", "unit")`` (the condition-averaged input that
``neurokpflow.compare`` accepts as is): ``condition`` holds the condition *values* (sorted),
``time`` the shared bin centres, ``unit`` = 0 … N − 1 the pseudo-population index.  Unit
coordinates: ``unit_session`` (session name), ``unit_id`` (the unit's id in its session), plus
every ``unit_*`` coordinate all sessions have; ``n_trials(condition, unit)`` counts the trials
behind each mean.  With ``pseudo_trials=n`` the result is instead ``("trial", "time", "unit")``
with a per-trial ``condition`` coordinate (compare's trial-level input) and
``source_trial(trial, unit)``, the session trial id each value comes from.
"""
from __future__ import annotations

import json
import sys
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import xarray as xr

from .errors import MissingDataError, NWBLoadError
from .preprocessing import trial_average
from .reading import read_nwb
from ..errors import InputTypeError
from .._validation import numpy_rng

SESSION_DIM = "session"
_SESSION_ATTRS = ("nwb_file", "nwb_identifier", "session_id", "session_start_time", "subject_id")


class SessionMismatchError(NWBLoadError, ValueError):
    """Sessions cannot be combined: their units, time bins or conditions differ."""


# --------------------------------------------------------------------------------------- reading
def _session_name(attrs: Mapping, index: int) -> str:
    name = str(attrs.get("session_id") or attrs.get("nwb_identifier") or f"session{index}")
    return name.replace("/", "_")


def _unique(names: Sequence[str]) -> list[str]:
    out, seen = [], set()
    for name in names:
        candidate, k = name, 1
        while candidate in seen:
            k += 1
            candidate = f"{name}-{k}"
        seen.add(candidate)
        out.append(candidate)
    return out


def read_sessions(sources, *, layout: str = "tree", **read_options):
    """Read several NWB sessions with the same :func:`read_nwb` options.

    Parameters
    ----------
    sources : sequence of paths / ``NWBFile`` objects, or a mapping ``{session name: source}``
    layout : {"tree", "stacked"}
        ``"tree"`` (default): an ``xarray.DataTree``, one child per session.  ``"stacked"``: one
        Dataset with a ``session`` dimension; needs identical unit ids and time bins in every
        session (pass ``window=`` so the default window does not differ between sessions).
    **read_options
        Passed to :func:`read_nwb` for every session (``align_to``, ``window``, ``bin_size``,
        ``lazy``, …).  With ``lazy=True`` every file stays open until the result's ``close()``.

    See the module docstring for both layouts.  A failing session closes the files already
    opened and re-raises the original error with a note naming the session.
    """
    if layout not in ("tree", "stacked"):
        raise SessionMismatchError(f"layout={layout!r} must be 'tree' or 'stacked'")
    if isinstance(sources, Mapping):
        given = _unique([str(k).replace("/", "_") for k in sources])
        sources = list(sources.values())
    else:
        if isinstance(sources, (str, bytes)) or not isinstance(sources, Sequence):
            raise InputTypeError("sources must be a list of NWB paths/files or a mapping {name: source}")
        given = None
        sources = list(sources)
    if not sources:
        raise MissingDataError("read_sessions needs at least one source")
    datasets = []
    try:
        for i, source in enumerate(sources):
            try:
                datasets.append(read_nwb(source, **read_options))
            except Exception as err:
                if sys.version_info >= (3, 11):  # add_note is new in Python 3.11
                    err.add_note(f"while reading session #{i} ({source!r}) in read_sessions")
                raise
    except BaseException:
        for ds in datasets:
            ds.close()
        raise
    names = given or _unique([_session_name(ds.attrs, i) for i, ds in enumerate(datasets)])
    history = f"read {len(datasets)} sessions with read_nwb({_options_repr(read_options)})"

    def close_all():
        for ds in datasets:
            ds.close()

    if layout == "stacked":
        try:
            out = stack_sessions(dict(zip(names, datasets)))
        except BaseException:
            close_all()
            raise
        out.attrs["history"] = f"{out.attrs.get('history', '')}\n{history}".strip()
    else:
        out = xr.DataTree.from_dict({f"/{n}": ds for n, ds in zip(names, datasets)})
        out.attrs = {"sessions": names, "n_sessions": len(names), "session_layout": "tree", "history": history}
    if read_options.get("lazy"):
        out.set_close(close_all)
    return out


def _options_repr(options: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" if np.size(v) < 5 else f"{k}=<{np.size(v)} values>" for k, v in options.items())


def _check_axis(dim: Hashable, ref: xr.Dataset, ds: xr.Dataset, ref_name: str, name: str) -> xr.Dataset:
    """Return ``ds`` with ``dim`` matching ``ref`` by value (units reordered), or raise."""
    fixes: dict[Hashable, str] = {
        "time": "pass the same window=(start, stop) and bin_size so every session shares one grid",
        "unit": "keep the default layout='tree' (one node per session) or pool units with pseudo_population",
    }
    fix = fixes.get(dim, "keep the default layout='tree' (one node per session)")
    if dim not in ds.dims:
        raise SessionMismatchError(f"session {name!r} has no {dim!r} dimension but {ref_name!r} has; {fix}")
    if dim not in ref.coords or dim not in ds.coords:
        if ds.sizes[dim] != ref.sizes[dim]:
            raise SessionMismatchError(f"{dim!r} has {ref.sizes[dim]} entries in {ref_name!r} and {ds.sizes[dim]} "
                                       f"in {name!r}; {fix}")
        return ds
    a, b = ref[dim].values, ds[dim].values
    if dim == "time":
        step = float(np.median(np.diff(a))) if a.size > 1 else 1.0
        if a.size != b.size or not np.allclose(a, b, rtol=0, atol=1e-6 * abs(step)):
            raise SessionMismatchError(
                f"time bins differ: {ref_name!r} has {a.size} from {a[:1]} s, {name!r} has {b.size} from {b[:1]} s; {fix}")
        return ds.assign_coords(time=ref["time"])
    if a.size != b.size or set(a.tolist()) != set(b.tolist()):
        only = sorted(set(b.tolist()) ^ set(a.tolist()))[:5]
        raise SessionMismatchError(f"{dim!r} ids differ between {ref_name!r} and {name!r} (e.g. {only}); {fix}")
    return ds.sel({dim: a})


def _session_coord(attr: str) -> str:
    return attr if attr.startswith("session") else f"session_{attr}"


def stack_sessions(datasets: Mapping[str, xr.Dataset]) -> xr.Dataset:
    """Stack per-session Datasets (as from :func:`read_nwb`) along a new ``session`` dim.

    See the module docstring ("Stacked") for the layout and the conditions.
    """
    names = list(datasets)
    ref_name, ref = names[0], datasets[names[0]]
    parts = []
    for name in names:
        ds = datasets[name]
        if "trial" not in ds.dims:
            raise SessionMismatchError(f"session {name!r} has no 'trial' dimension; read it with read_nwb first")
        for dim in set(ref.dims) | set(ds.dims):
            if dim not in ("trial", "nv"):
                ds = _check_axis(dim, ref, ds, ref_name, name) if dim in ref.dims else _check_axis(dim, ds, ref, name, ref_name)
        n = ds.sizes["trial"]
        ids = ds["trial"].values.astype(float)
        ds = ds.drop_vars("trial").assign_coords(trial=np.arange(n), trial_id=("trial", ids))
        parts.append(ds)
    per_trial = [v for v in ref.data_vars if "trial" in ref[v].dims]
    fill = {v: (False if ref[v].dtype == bool else np.nan) for v in per_trial}
    out = xr.concat(parts, dim=SESSION_DIM, data_vars=per_trial, coords="different", compat="equals",
                    join="outer", fill_value=fill, combine_attrs="drop_conflicts")
    out = out.assign_coords({SESSION_DIM: names})
    out = out.assign_coords({_session_coord(k): (SESSION_DIM, [str(datasets[n].attrs.get(k, "")) for n in names])
                             for k in _SESSION_ATTRS})
    out.attrs = {k: v for k, v in out.attrs.items() if k not in _SESSION_ATTRS}
    for var in per_trial:
        if ref[var].dtype == bool:
            out[var] = out[var].astype(bool)
    out.attrs.update(session_layout="stacked", sessions=names, n_sessions=len(names))
    out.attrs["history"] = f"stacked {len(names)} sessions along 'session' (trials by position, padded with NaN)"
    return out


# -------------------------------------------------------------------------------- pseudo-population
def _sessions_of(sessions, var: str) -> list[tuple[str, xr.DataArray]]:
    """(name, DataArray (trial, time, ...)) per session from a DataTree, a stacked Dataset, a mapping or a list."""
    if isinstance(sessions, xr.DataTree):
        items = [(name, node.to_dataset()) for name, node in sessions.children.items()]
    elif isinstance(sessions, xr.Dataset) and SESSION_DIM in sessions.dims:
        items = []
        for name in sessions[SESSION_DIM].values:
            one = sessions.sel({SESSION_DIM: name})
            if "trial_id" in one.coords:
                one = one.isel(trial=np.flatnonzero(np.isfinite(one["trial_id"].values)))
                one = one.assign_coords(trial=one["trial_id"].values).drop_vars("trial_id")
            items.append((str(name), one))
    elif isinstance(sessions, Mapping):
        items = list(sessions.items())
    elif isinstance(sessions, Sequence) and not isinstance(sessions, (str, bytes)):
        names = _unique([_session_name(getattr(s, "attrs", {}), i) for i, s in enumerate(sessions)])
        items = list(zip(names, sessions))
    else:
        raise InputTypeError("sessions must be a DataTree from read_sessions, a Dataset with a 'session' dim, "
                        "a mapping {name: Dataset} or a list of Datasets")
    if not items:
        raise MissingDataError("pseudo_population needs at least one session")
    out = []
    for name, obj in items:
        if isinstance(obj, xr.Dataset):
            if var not in obj.data_vars:
                raise MissingDataError(f"session {name!r} has no variable {var!r}; variables: {list(obj.data_vars)}; "
                                       "name the one to pool with var=...")
            obj = obj[var]
        if not isinstance(obj, xr.DataArray):
            raise InputTypeError(f"session {name!r} is a {type(obj).__name__}, not an xarray Dataset or DataArray")
        out.append((str(name), obj))
    return out


def _shared_conditions(items, condition: str, conditions: str) -> np.ndarray:
    per_session = {}
    for name, da in items:
        if condition not in da.coords or da[condition].dims != ("trial",):
            per_trial = [c for c in da.coords if da[c].dims == ("trial",) and c != "trial"]
            raise MissingDataError(f"session {name!r} has no per-trial coordinate {condition!r}; per-trial "
                                   f"coordinates: {per_trial}; pass condition=<one of them>")
        per_session[name] = set(np.unique(da[condition].values).tolist())
    union = set().union(*per_session.values())
    common = set.intersection(*per_session.values())
    if conditions == "intersect":
        if not common:
            raise SessionMismatchError("the sessions share no condition value; check condition=...")
        return np.asarray(sorted(common))
    if conditions != "exact":
        raise SessionMismatchError(f"conditions={conditions!r} must be 'exact' or 'intersect'")
    lacking = {n: sorted(union - s) for n, s in per_session.items() if union - s}
    if lacking:
        shown = "; ".join(f"{n!r} lacks {v[:5]}" for n, v in list(lacking.items())[:3])
        raise SessionMismatchError(f"not every session has every {condition!r} value ({shown}); pass "
                                   f"conditions='intersect' to keep the {len(common)} shared values")
    return np.asarray(sorted(union))


def _shared_time(items, time: str) -> np.ndarray:
    ref_name, ref = items[0]
    grid = ref["time"].values
    for name, da in items[1:]:
        t = da["time"].values
        step = float(np.median(np.diff(grid))) if grid.size > 1 else 1.0
        dist = np.abs(grid[:, None] - t[None, :]) <= 1e-6 * abs(step)
        if time == "intersect":
            grid = grid[dist.any(axis=1)]
            if grid.size == 0:
                raise SessionMismatchError(f"time='intersect': sessions {ref_name!r} and {name!r} share no time bin")
        elif time == "exact":
            if grid.size != t.size or not dist.diagonal().all():
                raise SessionMismatchError(
                    f"time bins of {ref_name!r} ({grid.size} from {grid[:1]} s) and {name!r} ({t.size} from {t[:1]} s) "
                    "differ; read every session with the same window= and bin_size, or pass time='intersect'")
        else:
            raise SessionMismatchError(f"time={time!r} must be 'exact' or 'intersect'")
    return grid


def _on_time(da: xr.DataArray, grid: np.ndarray) -> xr.DataArray:
    t = da["time"].values
    step = float(np.median(np.diff(grid))) if grid.size > 1 else 1.0
    index = np.argmin(np.abs(t[None, :] - grid[:, None]), axis=1)
    if not np.allclose(t[index], grid, rtol=0, atol=1e-6 * abs(step)):
        raise SessionMismatchError("internal: a shared time bin is missing from a session")
    return da.isel(time=index).assign_coords(time=grid)


def pseudo_population(sessions, condition: str = "condition", *, var: str = "spike_count", unit_dim: str = "unit",
                      conditions: str = "exact", time: str = "exact", pseudo_trials=None, seed: int = 0) -> xr.DataArray:
    """Pool the units of several sessions on their shared condition × time grid.

    Parameters
    ----------
    sessions : DataTree from :func:`read_sessions`, a stacked Dataset (``session`` dim), a mapping
        ``{name: Dataset or DataArray}`` or a list of them (named by ``session_id`` / identifier).
        Each session's data has dims ``("trial", "time", unit_dim)``.
    condition : per-trial coordinate whose *values* define conditions (never trial positions).
    var : Dataset variable to pool (default ``"spike_count"``).
    unit_dim : feature dim of the sessions (``"unit"``, ``"roi"``, a series channel dim); it is
        called ``unit`` in the result.
    conditions : ``"exact"`` (every session must have every condition value, else
        :class:`SessionMismatchError` naming the sessions) or ``"intersect"`` (keep the shared values).
    time : ``"exact"`` (same bin centres in every session) or ``"intersect"`` (keep the shared bins).
    pseudo_trials : None (condition means, the default), an int ``n``, or ``"min"``: ``n`` random
        pseudo-trials per condition, built as in Mante et al. 2013 by pairing, for each condition, a
        random permutation of each session's trials of that condition (without replacement;
        ``"min"`` = the fewest trials any session has in a condition, for every condition).
    seed : seed of the random pairing.

    Returns
    -------
    DataArray ``("condition", "time", "unit")`` of NaN-ignoring trial means (lazy if the sessions
    are), or ``("trial", "time", "unit")`` with ``pseudo_trials`` (computed).  See the module
    docstring for the coordinates.  A (condition, time, unit) cell none of whose trials is valid
    stays NaN; :mod:`neurokpflow.compare` needs finite means, so read with a window every trial
    covers or crop the time axis first.
    """
    items = _sessions_of(sessions, var)
    for name, da in items:
        if set(da.dims) != {"trial", "time", unit_dim}:
            raise SessionMismatchError(f"session {name!r} has dims {da.dims}; need ('trial', 'time', {unit_dim!r}) "
                                       "(pass unit_dim=... for another feature dim)")
    conds = _shared_conditions(items, condition, conditions)
    grid = _shared_time(items, time)
    shared_unit_coords = set.intersection(*[
        {c for c in da.coords if da[c].dims == (unit_dim,) and c != unit_dim} for _, da in items])
    parts = []
    for name, da in items:
        da = _on_time(da.transpose("trial", "time", unit_dim), grid)
        da = da.isel(trial=np.flatnonzero(np.isin(da[condition].values, conds)))
        keep = {c: da[c] for c in shared_unit_coords}
        uid = da[unit_dim].values
        da = da.drop_vars([c for c in da.coords if c not in ("trial", "time", condition)])
        da = da.rename({unit_dim: "unit"}) if unit_dim != "unit" else da
        parts.append((name, da, uid, keep))
    if pseudo_trials is None:
        out = _pooled_means(parts, condition, conds)
        what = f"condition means by {condition!r}"
    else:
        out = _pooled_trials(parts, condition, conds, pseudo_trials, seed)
        what = f"{out.sizes['trial'] // len(conds)} random pseudo-trials per {condition!r} value (seed {seed})"
    names = [p[0] for p in parts]
    out.name = var
    out.attrs = {k: v for k, v in items[0][1].attrs.items() if k in ("units", "long_name", "cell_methods")}
    out.attrs.update(
        sessions=names, n_sessions=len(names), condition_coord=condition, source_unit_dim=unit_dim,
        session_units=json.dumps({n: int(p[1].sizes["unit"]) for n, p in zip(names, parts)}),
        history=f"pseudo-population of {len(names)} sessions, {out.sizes['unit']} units: {what}, "
                f"conditions={conditions!r}, time={time!r}",
    )
    return out


def _unit_coords(parts) -> dict:
    coords = {"unit_session": ("unit", np.concatenate([[n] * p.sizes["unit"] for n, p, _, _ in parts])),
              "unit_id": ("unit", np.concatenate([uid for _, _, uid, _ in parts]))}
    for key in parts[0][3]:
        coords[key] = ("unit", np.concatenate([np.asarray(k[key].values) for _, _, _, k in parts]))
    return coords


def _pooled_means(parts, condition: str, conds: np.ndarray) -> xr.DataArray:
    means, counts = [], []
    for _, da, _, _ in parts:
        m = trial_average(da, by=condition)
        if condition != "condition":
            m = m.rename({condition: "condition"})
        m = m.sel(condition=conds).transpose("condition", "time", "unit")
        counts.append(np.broadcast_to(m["n_trials"].values[:, None], (conds.size, da.sizes["unit"])))
        means.append(m.drop_vars([c for c in m.coords if c not in ("condition", "time")]).variable)
    data = xr.Variable.concat(means, dim="unit")
    coords = {"condition": conds, "time": parts[0][1]["time"], "unit": np.arange(data.shape[2])}
    coords.update(_unit_coords(parts))
    coords["n_trials"] = (("condition", "unit"), np.concatenate(counts, axis=1))
    return xr.DataArray(data, coords=coords)


def _pooled_trials(parts, condition: str, conds: np.ndarray, n, seed: int) -> xr.DataArray:
    rng = numpy_rng(seed)
    members = [[np.flatnonzero(da[condition].values == c) for c in conds] for _, da, _, _ in parts]
    fewest = min(len(m) for per in members for m in per)
    if n == "min":
        n = fewest
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise SessionMismatchError(f"pseudo_trials={n!r} must be None, a positive integer or 'min'")
    if n > fewest:
        short = [(name, conds[k].item(), len(m)) for (name, *_), per in zip(parts, members)
                 for k, m in enumerate(per) if len(m) < n][:3]
        raise SessionMismatchError(f"pseudo_trials={n} but some sessions have fewer trials in a condition "
                                   f"(session, condition, trials): {short}; pass pseudo_trials='min' or a smaller n")
    blocks, sources = [], []
    for (name, da, _, _), per in zip(parts, members):
        picks = np.concatenate([rng.permutation(m)[:n] for m in per])
        blocks.append(np.asarray(da.values)[picks])
        sources.append(np.broadcast_to(da["trial"].values[picks][:, None], (picks.size, da.sizes["unit"])))
    data = np.concatenate(blocks, axis=2)
    coords = {"trial": np.arange(data.shape[0]), "time": parts[0][1]["time"], "unit": np.arange(data.shape[2]),
              "condition": ("trial", np.repeat(conds, n)), "source_trial": (("trial", "unit"), np.concatenate(sources, axis=1))}
    coords.update(_unit_coords(parts))
    return xr.DataArray(data, dims=("trial", "time", "unit"), coords=coords)
