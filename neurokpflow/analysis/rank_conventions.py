"""Effective ranks of K and P under named conventions, to tell definition effects from dynamics.

The KPFlow paper's "P collapses while K stays low" figure and :func:`neurokpflow.analysis.collapse`
both report "ER1 of P and K", but they compute different numbers.  A :class:`RankConvention` names
every choice that enters:

* ``time_index`` — where the Jacobians are evaluated: ``"package"`` at ``(z(t−1), x(t))`` (the
  correct linearisation, kpflow-math §1.1) or ``"paper_era"`` at ``(z(t), x(t))`` (the reference
  code of the paper's time, kpflow-math §12.2);
* ``K_form`` — rank ``K`` itself or ``K K*`` (= ``K²``; the reference's figure ranks the Gram
  ``A A*`` of both operators).  ``P`` is always ranked through ``P P*``;
* ``reduction`` and ``keep`` — ``"block_average"`` (copy the input along the reduced axes, apply,
  average the output: the reference's ``AveragedOperator``) or the true ``"partial_trace"``, onto
  ``("time",)`` or ``("trial", "time")``;
* ``squared`` — threshold the squared eigenvalues (the reference's ``effrank`` squares the values
  it is given, so for ``P`` it thresholds σ(P)⁴);
* ``top_k`` — normalise the variance fractions over the top ``(k_K, k_P)`` eigenvalues only (the
  reference computes 20 for K and 60 for P with ``eigsh``) instead of all of them;
* ``threshold`` — the variance fraction (0.95, linearly interpolated: :func:`threshold_rank`).

``PACKAGE_RANK`` is what :func:`collapse` reports as ER1; ``PAPER_FIGURE_RANK`` is the reference's
figure (``examples/example_1/analysis.py``: four noise-free trials, ``AveragedOperator(op @ op.T())``
onto time, ``eigsh`` top 20/60, ``effrank(sv, .95)``).  :func:`convention_ranks` evaluates any set
of conventions on the checkpoints of a run, sharing the operators between them.

Reduced operators are formed densely (their size is ``T`` or ``B·T``), so keep the evaluation
batch small (the reference used 4 trials).  A partial trace over units is estimated with
``budget`` Rademacher probes (unbiased, not exact).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from ..kpflow.operators import operators
from ..kpflow.ranks import threshold_rank
from ..kpflow.reductions import block_average, partial_trace
from ._common import json_attr, readout_outputs, resolve_dtype
from ._inputs import resolve_checkpoints
from ..errors import InputError, InputTypeError, UnknownNameError

__all__ = ["RankConvention", "PACKAGE_RANK", "PAPER_FIGURE_RANK", "paper_era_operators", "reduced_spectra",
           "rank_from_spectrum", "convention_ranks", "one_factor_variants", "collapse_summary", "deciding_factors",
           "ranks_dataset"]

_TIME_INDEX = ("package", "paper_era")
_K_FORMS = ("K", "KK*")
_REDUCTIONS = ("block_average", "partial_trace")
_KEEPS = (("time",), ("trial", "time"))


@dataclass(frozen=True)
class RankConvention:
    """How an effective rank of K and P is computed (module docstring); validated on creation."""

    name: str
    time_index: str = "package"
    K_form: str = "K"
    reduction: str = "block_average"
    keep: tuple = ("time",)
    squared: bool = False
    top_k: tuple | None = None
    threshold: float = 0.95

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InputError(f"RankConvention.name must be a non-empty string, got {self.name!r}")
        for field, value, allowed in (("time_index", self.time_index, _TIME_INDEX),
                                      ("K_form", self.K_form, _K_FORMS),
                                      ("reduction", self.reduction, _REDUCTIONS)):
            if value not in allowed:
                raise InputError(f"RankConvention.{field} must be one of {allowed}, got {value!r}")
        keep = (self.keep,) if isinstance(self.keep, str) else tuple(self.keep)
        if keep not in _KEEPS:
            raise InputError(f"RankConvention.keep must be one of {_KEEPS}, got {self.keep!r}")
        object.__setattr__(self, "keep", keep)
        if not isinstance(self.squared, bool):
            raise InputError(f"RankConvention.squared must be True or False, got {self.squared!r}")
        if self.top_k is not None:
            k = tuple(self.top_k)
            if len(k) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in k):
                raise InputError(f"RankConvention.top_k must be None or (k_K, k_P), two positive ints, "
                                 f"got {self.top_k!r}")
            object.__setattr__(self, "top_k", k)
        if not 0 < self.threshold < 1:
            raise InputError(f"RankConvention.threshold must lie in (0, 1), got {self.threshold!r}")

    def replace(self, **changes) -> "RankConvention":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def spectrum_key(self) -> tuple:
        """The choices that change the reduced operators (the rest only re-reads their spectra)."""
        return (self.time_index, self.K_form, self.reduction, self.keep)


#: ER1 as :func:`neurokpflow.analysis.collapse` reports it
PACKAGE_RANK = RankConvention("package")
#: the reference's effective-rank-over-GD figure
PAPER_FIGURE_RANK = RankConvention("paper_figure", time_index="paper_era", K_form="KK*", squared=True,
                                   top_k=(20, 60))


def one_factor_variants(base: RankConvention, other: RankConvention) -> list:
    """``base`` with one field at a time taken from ``other`` (the fields in which they differ)."""
    out = []
    for f in dataclasses.fields(RankConvention):
        if f.name in ("name",):
            continue
        a, b = getattr(base, f.name), getattr(other, f.name)
        if a != b:
            out.append(base.replace(name=f"{base.name}, {f.name}={b}", **{f.name: b}))
    return out


def _trajectory(model, inputs, dtype):
    """A copy of the model's cell in ``dtype``, the inputs, ``h0`` and the noise-free states ``z(1..T)``."""
    cell = copy.deepcopy(model.cell).to(dtype)
    x = inputs.to(dtype)
    h0 = model.initial_state(x.shape[0]).detach().to(dtype)
    with torch.no_grad():
        h = [h0]
        for t in range(x.shape[1]):
            h.append(cell(x[:, t], h[-1]))
    return cell, x, h0, torch.stack(h[1:], 1)


def paper_era_operators(model, inputs, dtype=torch.float64):
    """KPFlow operators with the Jacobians at ``(z(t), x(t))`` (the reference code of the paper's time).

    Built by handing :func:`neurokpflow.kpflow.operators` the trajectory shifted by one step, so
    that its ``z_prev`` is ``z(t)``: ``h0 = z(1)`` and ``hidden[:, t] = z(t+2)`` (the last slot
    repeats ``z(T)``).  Only the linearisation points change; this is **not** the linearisation
    of the model (kpflow-math §12.2) and exists to reproduce the reference's numbers.
    """
    cell, x, _, z = _trajectory(model, inputs, dtype)
    shifted = torch.cat([z[:, 1:], z[:, -1:]], dim=1)
    return operators(cell, x, shifted, h0=z[:, 0])


def _package_operators(model, inputs, dtype):
    """The package's operators (Jacobians at ``(z(t−1), x(t))``) along the noise-free trajectory."""
    cell, x, h0, z = _trajectory(model, inputs, dtype)
    return operators(cell, x, z, h0=h0)


def _reduce(A, keep, reduction, budget, seed):
    traced = tuple(ax for ax in ("trial", "unit") if ax not in keep)
    if reduction == "block_average":
        return block_average(A, traced)
    return partial_trace(A, traced, budget=budget, seed=seed)


def reduced_spectra(ops, convention: RankConvention, budget: int = 64, seed: int = 0) -> dict:
    """Descending eigenvalues of the reduced ``K`` (or ``K K*``) and ``P P*`` of ``ops``."""
    K = ops.K @ ops.K if convention.K_form == "KK*" else ops.K
    out = {}
    for name, A in (("K", K), ("P", ops.P @ ops.P.T)):
        M = _reduce(A, convention.keep, convention.reduction, budget, seed).to_dense(force=True).double()
        M = (M + M.T) / 2
        out[name] = torch.linalg.eigvalsh(M).flip(0).cpu().numpy()
    return out


def rank_from_spectrum(values, convention: RankConvention, operator: str) -> float:
    """The effective rank ``convention`` assigns to a reduced spectrum of ``operator`` ("K" or "P")."""
    if operator not in ("K", "P"):
        raise InputError(f"operator must be 'K' or 'P', got {operator!r}")
    v = np.ascontiguousarray(np.sort(np.clip(np.asarray(values, dtype=float), 0, None))[::-1])
    if convention.top_k is not None:
        v = v[:convention.top_k[0 if operator == "K" else 1]]
    if convention.squared:
        v = v ** 2
    return float(threshold_rank(v, convention.threshold))


def convention_ranks(checkpoints, batch, conventions, *, dtype=torch.float64, budget=64, seed=0,
                     task=None, progress=False) -> xr.Dataset:
    """Effective ranks of K and P under each convention at every checkpoint of a run.

    ``checkpoints`` as for :func:`collapse` (a run directory, paths, ``(step, model)`` pairs or a
    mapping); ``batch`` the evaluation trials (noise-free; the reference used four).  Returns a
    Dataset with ``effective_rank`` (step, convention, operator), ``loss`` (step; MSE on ``batch``)
    and, with ``task``, ``accuracy`` (step).  Each convention's fields are stored as attributes.
    """
    conventions = list(conventions)
    if not conventions or not all(isinstance(c, RankConvention) for c in conventions):
        raise InputTypeError("conventions must be a non-empty list of RankConvention")
    names = [c.name for c in conventions]
    if len(set(names)) != len(names):
        raise InputError(f"convention names must be distinct, got {names}")
    dtype = resolve_dtype(dtype)
    checkpoints = resolve_checkpoints(checkpoints)
    inputs = batch.inputs
    ranks = np.full((len(checkpoints), len(conventions), 2), np.nan)
    losses, accs, steps = [], [], []
    iterator = checkpoints
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(checkpoints, desc="ranks")
    for i, ck in enumerate(iterator):
        model = ck.model
        steps.append(int(ck.step))
        built, spectra = {}, {}
        for j, conv in enumerate(conventions):
            if conv.time_index not in built:
                make = paper_era_operators if conv.time_index == "paper_era" else _package_operators
                built[conv.time_index] = make(model, inputs, dtype)
            if conv.spectrum_key not in spectra:
                spectra[conv.spectrum_key] = reduced_spectra(built[conv.time_index], conv, budget, seed)
            for a, op in enumerate(("K", "P")):
                ranks[i, j, a] = rank_from_spectrum(spectra[conv.spectrum_key][op], conv, op)
        ops = built["package"] if "package" in built else _package_operators(model, inputs, dtype)
        with torch.no_grad():
            out = readout_outputs(model, ops)
            losses.append(float(((out - batch.targets.to(out.dtype)) ** 2).mean()))
            if task is not None:
                accs.append(float(np.mean(list(task.accuracy(out.float(), batch).values()))))
    ds = xr.Dataset({"effective_rank": (("step", "convention", "operator"), ranks),
                     "loss": (("step",), np.asarray(losses))},
                    coords={"step": steps, "convention": names, "operator": ["K", "P"]})
    if task is not None:
        ds["accuracy"] = (("step",), np.asarray(accs))
    ds.attrs["conventions"] = json_attr({c.name: {k: v for k, v in dataclasses.asdict(c).items() if k != "name"}
                                         for c in conventions})
    ds["effective_rank"].attrs["long_name"] = "effective rank of the reduced K (or K K*) and P P*"
    return ds


def collapse_summary(ds: xr.Dataset, convention: str, factor: float = 3.0, tail: int = 3) -> dict:
    """P's and K's rank curves of one convention in a :func:`convention_ranks` result, summarised.

    Returns ``P_first``, ``P_last``, ``P_min``, ``half_step`` (first step where P's rank is below
    half its first value, or None), ``K`` (the K ranks, a list), ``K_max`` and ``collapsed``: P's
    rank at each of the last ``tail`` checkpoints after the first (a sustained drop, not a one-checkpoint
    transient) is at least ``factor`` times below its first while K's stays at most ``factor``.
    """
    if convention not in ds.convention.values:
        raise UnknownNameError(f"convention {convention!r} is not in the result; it has {list(ds.convention.values)}")
    P = ds.effective_rank.sel(convention=convention, operator="P").values
    K = ds.effective_rank.sel(convention=convention, operator="K").values
    steps = ds.step.values
    below = np.nonzero(P < P[0] / 2)[0]
    return {"P_first": float(P[0]), "P_last": float(P[-1]), "P_min": float(P.min()),
            "half_step": int(steps[below[0]]) if below.size else None, "K": [float(k) for k in K],
            "K_max": float(K.max()),
            "collapsed": bool(P[-min(tail, len(P) - 1):].max() * factor <= P[0] and K.max() <= factor)}


def ranks_dataset(steps, curves: dict) -> xr.Dataset:
    """A :func:`convention_ranks`-shaped Dataset from plain curves ``{convention: {"P": [...], "K": [...]}}``
    (e.g. ranks recorded elsewhere and stored as JSON)."""
    names = list(curves)
    ranks = np.stack([[np.asarray(curves[c][op], dtype=float) for op in ("K", "P")] for c in names]).transpose(2, 0, 1)
    return xr.Dataset({"effective_rank": (("step", "convention", "operator"), ranks)},
                      coords={"step": np.asarray(steps), "convention": names, "operator": ["K", "P"]})


def deciding_factors(ds: xr.Dataset, base: RankConvention, other: RankConvention, factor: float = 3.0) -> dict:
    """Which single field of ``base`` flips its collapse verdict when set to ``other``'s value.

    ``ds`` must hold ``base`` and :func:`one_factor_variants` ``(base, other)``.  Returns
    ``{field: collapsed_after_change}`` for the fields whose change flips ``base``'s verdict.
    """
    verdict = collapse_summary(ds, base.name, factor)["collapsed"]
    out = {}
    for v in one_factor_variants(base, other):
        field = v.name[len(base.name) + 2:].split("=")[0]
        after = collapse_summary(ds, v.name, factor)["collapsed"]
        if after != verdict:
            out[field] = after
    return out
