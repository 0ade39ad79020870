"""Dynamic collapse over training: effective ranks, misdirection and eigenfunctions per checkpoint.

For every checkpoint of a run, on one fixed evaluation batch (kpflow-math §5, §8, §9):

* effective ranks of ``K``, ``P`` (through its Gram operator ``P P*``) and ``P K P*``, each
  reduced onto the ``keep`` axes with the named ``reduction`` and computed in every requested
  definition (ER1 variance threshold, ER2 Gram participation ratio, ER3 participation ratio;
  see :func:`neurokpflow.kpflow.effective_rank`), with standard errors;
* the effective rank of the hidden activity (ER4, centred and uncentred second moment) with a
  bootstrap-over-trials standard error;
* misdirection ``KA(P K P*, P P*)`` (1 = no misdirection), shared-sketch estimate with a
  standard error;
* the top eigenvalues and eigenfunctions ``φ_i(trial, time)`` of ``K`` and ``P K P*`` reduced
  over hidden units (the paper's ⟨K⟩_h, plotted as ``λ_i φ_i(t)`` one line per trial);
* the loss (masked MSE through the readout, the training loss) and, when a task is known, the
  per-task accuracy of its scoring criterion.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import xarray as xr

from .. import tasks as tasks_mod
from ..kpflow import DenseOperator, alignment, block_average, effective_rank, eigsh, partial_trace
from ..kpflow.ranks import DEFINITIONS
from ..kpflow.reductions import operator_dims
from ._common import (batch_coords, build_operators, dtype_name, json_attr, loss_function, readout_outputs,
                      resolve_dtype)
from ._inputs import architecture, batch_fingerprint, check_batch, resolve_checkpoints
from ._store import run_over_checkpoints
from .._validation import Interval, Options, OptionsMixin, Rule
from ..errors import InputError, InputTypeError

__all__ = ["collapse", "CollapseOptions", "RANK_OPERATORS", "EIGEN_OPERATORS"]

#: operators whose effective ranks are reported (``P`` enters through ``P P*``)
RANK_OPERATORS = ("K", "P", "PKP*")
#: operators whose reduced eigenfunctions are reported
EIGEN_OPERATORS = ("K", "PKP*")
_REDUCTIONS = {"block_average": block_average, "partial_trace": partial_trace}
_OPERATOR_DEFINITIONS = ("ER1", "ER2", "ER3")


def _reduce(A, keep, reduction):
    dims = operator_dims(A)
    unknown = [k for k in keep if k not in dims]
    if unknown:
        raise InputError(f"keep={keep!r} names axes {unknown} that the operators do not have; they have {list(dims)}")
    traced = tuple(d for d in dims if d not in keep)
    return _REDUCTIONS[reduction](A, traced) if traced else A


def _densified(G, dense_limit):
    """A dense copy of a small operator (so every definition is exact and cheap), else ``G``."""
    if G.size_in > dense_limit:
        return G
    M = G.to_dense()
    D = DenseOperator((M + M.T) / 2, G.shape_in, G.shape_out, name=G.name)
    D.dims = operator_dims(G)
    return D


def _rank(G, definition, opts, seed):
    dense = isinstance(G, DenseOperator)
    if definition == "ER1":
        k = G.size_in if opts["er1_k"] is None else min(int(opts["er1_k"]), G.size_in)
        if k >= G.size_in and not dense:
            raise InputError(f"ER1 over all {G.size_in} eigenvalues of {G.name} needs a dense reduced operator; "
                             f"pass er1_k < {G.size_in} or raise dense_limit")
        return effective_rank(G, definition="ER1", k=k, threshold=opts["threshold"], seed=seed)
    if dense:
        return effective_rank(G, definition=definition, method="exact")
    return effective_rank(G, definition=definition, budget=opts["budget"], seed=seed)


def _top_eigenpairs(G, k, seed):
    """Top-``k`` eigenpairs of a self-adjoint operator: dense ``eigh`` when it is small, else Lanczos.
    Eigenvectors have unit norm and their largest-magnitude entry positive (as :func:`eigsh`)."""
    k = min(k, G.size_in - 1)
    if isinstance(G, DenseOperator):
        M = G.matrix.double()
        lam, V = torch.linalg.eigh(M)
        lam, V = lam.flip(0)[:k], V.flip(1)[:, :k].T
        big = V.abs().argmax(dim=1)
        V = V * torch.sign(V.gather(1, big[:, None]))
        res = (V @ M - lam[:, None] * V).norm(dim=1)
        return lam, V.reshape(k, *G.shape_in), res, True
    r = eigsh(G, k, seed=seed, on_failure="warn")
    return r.values, r.vectors.double(), r.residuals, r.converged


def _activity_ranks(hidden, n_bootstrap, seed):
    """ER4 (centred, uncentred) of activity ``[B, T, H]`` with a bootstrap-over-trials standard error."""
    X = hidden.detach().double().cpu()
    gen = torch.Generator().manual_seed(seed)
    idx = [torch.randint(0, X.shape[0], (X.shape[0],), generator=gen) for _ in range(n_bootstrap)]
    values, errors = [], []
    for centered in (True, False):
        er = lambda Y: effective_rank(Y, definition="ER4", centered=centered).value  # noqa: E731
        values.append(er(X))
        boot = np.array([er(X[i]) for i in idx])
        errors.append(float(boot.std(ddof=1)) if n_bootstrap > 1 else 0.0)
    return values, errors


def _collapse_one(checkpoint, inputs, targets, mask, batch, task, opts) -> xr.Dataset:
    model = checkpoint.model
    ops = build_operators(model, inputs, dtype=opts["dtype"], inner=opts["inner"], chunk_size=opts["chunk_size"])
    seed = opts["seed"]
    B, T, _ = ops.states.shape
    operators = {"K": ops.K, "P": ops.P @ ops.P.T, "PKP*": ops.NTK}
    defs = opts["definitions"]
    rank = np.full((len(RANK_OPERATORS), len(defs)), np.nan)
    rank_se = np.full_like(rank, np.nan)
    spectra = []
    for a, name in enumerate(RANK_OPERATORS):
        G = _densified(_reduce(operators[name], opts["keep"], opts["reduction"]), opts["dense_limit"])
        spectra.append(torch.linalg.eigvalsh(G.matrix.double()).flip(0).cpu().numpy()
                       if isinstance(G, DenseOperator) else np.full(G.size_in, np.nan))
        for d, definition in enumerate(defs):
            est = _rank(G, definition, opts, seed)
            rank[a, d], rank_se[a, d] = est.value, est.stderr

    mis = alignment(ops.NTK, operators["P"], opts["budget"], "sketch", seed=seed)

    n_modes = opts["n_modes"]
    eig_val = np.full((len(EIGEN_OPERATORS), n_modes), np.nan)
    eig_res = np.full_like(eig_val, np.nan)
    eig_fun = np.full((len(EIGEN_OPERATORS), n_modes, B, T), np.nan)
    converged = np.zeros(len(EIGEN_OPERATORS), dtype=np.int8)
    for a, name in enumerate(EIGEN_OPERATORS):
        G = _densified(_REDUCTIONS[opts["reduction"]](operators[name], ("unit",)), opts["dense_limit"])
        lam, vec, res, ok = _top_eigenpairs(G, n_modes, seed)
        k = lam.numel()
        eig_val[a, :k], eig_res[a, :k] = lam.cpu().numpy(), res.cpu().numpy()
        eig_fun[a, :k] = vec.cpu().numpy()
        converged[a] = ok

    hidden = ops.states[..., ops.cell.output_slice]
    act, act_se = _activity_ranks(hidden, opts["n_bootstrap"], seed)

    with torch.no_grad():
        loss = float(loss_function(model, ops, targets, mask, opts["mask_mode"])(ops.states))
    data = {
        "effective_rank": (("operator", "definition"), rank),
        "effective_rank_stderr": (("operator", "definition"), rank_se),
        "reduced_spectrum": (("operator", "spectrum_index"), np.stack(spectra)),
        "activity_effective_rank": (("centering",), np.asarray(act)),
        "activity_effective_rank_stderr": (("centering",), np.asarray(act_se)),
        "misdirection": ((), mis.value),
        "misdirection_stderr": ((), mis.stderr),
        "eigenvalue": (("eig_operator", "mode"), eig_val),
        "eigenfunction": (("eig_operator", "mode", "trial", "time"), eig_fun),
        "eigen_residual": (("eig_operator", "mode"), eig_res),
        "eigen_converged": (("eig_operator",), converged),
        "loss": ((), loss),
    }
    if task is not None:
        with torch.no_grad():
            outputs = readout_outputs(model, ops)
        acc = task.accuracy(outputs, batch)
        data["accuracy"] = (("scored_task",), np.array([acc.get(t, np.nan) for t in task.task_names], dtype=float))
    return xr.Dataset(data)


def _resolve_task(task, checkpoints, batch):
    if task is None:
        spec = next((c.task_spec for c in checkpoints if c.task_spec is not None), None)
        if spec is None:
            return None
        task = tasks_mod.from_spec(spec)
    if not isinstance(task, tasks_mod.Task):
        raise InputTypeError(f"task must be a neurokpflow task (tasks.make / tasks.mix) or None, got {type(task).__name__}")
    if not isinstance(batch, tasks_mod.Batch):
        raise InputTypeError("accuracy needs a neurokpflow.tasks.Batch (with per-trial metadata) as batch; "
                        "pass task=None to skip accuracy")
    missing = sorted(set(batch.tasks) - set(task.task_names))
    if missing:
        raise InputError(f"batch holds trials of task(s) {missing} that task {task.name!r} does not score "
                         f"(it scores {list(task.task_names)})")
    return task


def _check_definitions(definitions):
    if isinstance(definitions, str):
        definitions = (definitions,)
    by_name = {v: k for k, v in DEFINITIONS.items()}
    out = []
    for d in definitions:
        did = by_name.get(d, d)
        if did not in _OPERATOR_DEFINITIONS:
            raise InputError(f"definitions: {d!r} is not an operator effective-rank definition; choose from "
                             f"{[f'{i} ({DEFINITIONS[i]})' for i in _OPERATOR_DEFINITIONS]} (the activity rank ER4 is "
                             "always reported)")
        out.append(did)
    if not out:
        raise InputError("definitions is empty; name at least one of ER1, ER2, ER3")
    return tuple(out)


_POSITIVE = {name: Rule(Interval(numbers.Integral, low, None)) for name, low in
             (("n_modes", 1), ("budget", 2), ("dense_limit", 1), ("n_bootstrap", 1), ("chunk_size", 1))}


@dataclass(frozen=True)
class CollapseOptions(OptionsMixin):
    """How :func:`collapse` measures every checkpoint (frozen, validated once, saved in the result's attrs).

    Fields are described in :func:`collapse`; ``collapse(run, batch, budget=60)`` is short for
    ``collapse(run, batch, CollapseOptions(budget=60))``.
    """

    definitions: tuple = ("ER1", "ER2", "ER3")
    keep: tuple = ("time",)
    reduction: str = "block_average"
    n_modes: int = 3
    budget: int = 30
    threshold: float = 0.95
    er1_k: int | None = None
    dense_limit: int = 512
    inner: str = "sum"
    dtype: Any = torch.float64
    mask_mode: str = "pre_square"
    n_bootstrap: int = 50
    seed: int = 0
    chunk_size: int = 16

    RULES: ClassVar[dict] = {
        "reduction": Rule(Options(*sorted(_REDUCTIONS))),
        "threshold": Rule(Interval(low=0, high=1, closed="right")),
        "er1_k": Rule((None, Interval(numbers.Integral, 1, None))),
        "seed": Rule(Interval(numbers.Integral, 0, None), "collapse needs a fixed seed (the same probes at every "
                     "checkpoint)"),
        **_POSITIVE,
    }

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "keep", (self.keep,) if isinstance(self.keep, str) else tuple(self.keep))
        object.__setattr__(self, "definitions", tuple(_check_definitions(self.definitions)))
        object.__setattr__(self, "dtype", resolve_dtype(self.dtype))


def collapse(checkpoints, batch, options: CollapseOptions | None = None, *, task=None, out=None, progress=True,
             **fields) -> xr.Dataset:
    """Dynamic-collapse statistics of every checkpoint of a training run.

    Parameters
    ----------
    checkpoints
        A run directory of :func:`neurokpflow.training.train`, a sequence of checkpoint paths, a
        sequence of ``(step, model)`` pairs or a mapping ``{step: model}``.  All must share one
        architecture.  A model needs ``.cell`` and a linear ``.readout``.
    batch
        The fixed evaluation batch (e.g. ``task.test_grid()``), on the models' device: ``.inputs``
        ``[trial, time, input]``, ``.targets`` and optionally ``.mask``.  The trajectory is the
        noise-free one from the model's initial state.
    definitions : ER ids or names among ER1, ER2, ER3
        Effective-rank definitions for ``K``, ``P`` and ``P K P*`` (kpflow-math §5).  ``P`` is
        ranked through its Gram operator ``P P*`` (ER1/ER3 on ``P P*`` are ranks of ``σ(P)²``).
    keep, reduction
        Axes kept by the reduction before ranking (default the paper's time-reduced view
        ``keep=("time",)``) and the reduction, ``"block_average"`` (the paper's figures) or
        ``"partial_trace"``.  The eigenfunctions always keep ``("trial", "time")``.
    n_modes : number of top eigenpairs of ⟨K⟩ and ⟨P K P*⟩ reduced over units.
    budget : probes for the randomized estimators (the misdirection sketch; effective ranks of
        reduced operators larger than ``dense_limit``); exact once it reaches the dimension.
    threshold, er1_k : ER1's variance fraction and number of top eigenvalues it is normalised
        over (``None``: all eigenvalues; the paper-era code used 20 for K and 60 for P).
    dense_limit : reduced operators up to this dimension are formed densely (exact ranks).
    inner, dtype : inner-product convention and analysis precision (default float64).
    mask_mode : loss mask convention of :func:`neurokpflow.training.masked_mse` (as in training).
    task : task whose scoring gives ``accuracy``; default: the task saved in the checkpoints
        (none for in-memory models, and then no ``accuracy`` variable).
    n_bootstrap : bootstrap resamples over trials for the activity rank's standard error.
    seed : seed of every randomized estimate (the same probes at every checkpoint).
    out : netCDF path.  Written atomically after every checkpoint; checkpoints already in the
        file are skipped, so an interrupted analysis resumes where it stopped.  A file from a
        different analysis (architecture, evaluation data or options) is refused.
    progress : show a tqdm progress bar.
    options, fields : a :class:`CollapseOptions` (every parameter above except ``checkpoints``,
        ``batch``, ``task``, ``out`` and ``progress``), or its fields as keywords (they override it).

    Returns
    -------
    xarray.Dataset with dimension ``step`` and

    * ``effective_rank``, ``effective_rank_stderr`` (step, operator, definition); operator ∈
      ("K", "P", "PKP*"); a standard error of 0 means exact;
    * ``reduced_spectrum`` (step, operator, spectrum_index): all eigenvalues (descending) of the
      reduced operators that were ranked (``P``: of ``P P*``), NaN when larger than ``dense_limit``
      — any other spectral definition can be computed from it afterwards;
    * ``activity_effective_rank``, ``..._stderr`` (step, centering): ER4 of the hidden states
      over all (trial, time) samples; centering ∈ ("centred", "uncentred");
    * ``misdirection``, ``misdirection_stderr`` (step): ``KA(P K P*, P P*)``;
    * ``eigenvalue``, ``eigen_residual`` (step, eig_operator, mode) and ``eigenfunction`` (step,
      eig_operator, mode, trial, time), eig_operator ∈ ("K", "PKP*"), reduced over units with
      ``reduction``; unit-norm eigenfunctions whose largest-magnitude entry is positive;
      ``eigen_converged`` flags Lanczos convergence;
    * ``loss`` (step) and, with a task, ``accuracy`` (step, scored_task).
    """
    checkpoints = resolve_checkpoints(checkpoints)
    first = checkpoints[0].model
    inputs, targets, mask = check_batch(batch, first)
    if targets is None:
        raise InputTypeError("batch has no .targets; collapse reports the loss and needs the targets")
    options = CollapseOptions.resolve(options, fields, "collapse")
    task = _resolve_task(task, checkpoints, batch)
    opts = {**vars(options), "threshold": float(options.threshold), "seed": int(options.seed)}
    opts["definitions"] = list(options.definitions)
    opts["keep"] = options.keep
    n_modes = options.n_modes
    saved_opts = {k: (dtype_name(v) if k == "dtype" else v) for k, v in opts.items() if k != "chunk_size"}
    signature = {
        "analysis": "collapse",
        "architecture": architecture(first),
        "evaluation_data": batch_fingerprint(inputs, targets, mask),
        "options": json_attr(saved_opts),
        "task": json_attr(task.spec if task is not None else None),
    }
    B, T = inputs.shape[:2]
    coords = batch_coords(batch, B, T)
    coords.update(operator=list(RANK_OPERATORS), definition=list(opts["definitions"]),
                  centering=["centred", "uncentred"], eig_operator=list(EIGEN_OPERATORS), mode=np.arange(n_modes))
    if task is not None:
        coords["scored_task"] = list(task.task_names)

    def compute(c):
        return _collapse_one(c, inputs, targets, mask, batch, task, opts).assign_coords(coords)

    def finalize(ds):
        ds.attrs.update(_describe(opts))
        for name, attrs in _VARIABLE_ATTRS.items():
            if name in ds:
                ds[name].attrs.update(attrs)
        return ds

    return run_over_checkpoints(checkpoints, compute, signature=signature, finalize=finalize, out=out,
                                progress=progress, desc="collapse")


_VARIABLE_ATTRS = {
    "effective_rank": {"long_name": "effective rank of the reduced operator",
                       "note": "P is ranked through its Gram operator P P*"},
    "effective_rank_stderr": {"long_name": "standard error of effective_rank (0 = exact)"},
    "reduced_spectrum": {"long_name": "eigenvalues of the reduced operator (P: of P P*), descending"},
    "activity_effective_rank": {"long_name": "ER4 activity participation ratio of the hidden states",
                                "definition": "ER4"},
    "activity_effective_rank_stderr": {"long_name": "bootstrap-over-trials standard error of activity_effective_rank"},
    "misdirection": {"long_name": "kernel alignment KA(P K P*, P P*)", "range": "[-1, 1]; 1 = no misdirection",
                     "estimator": "shared sketch"},
    "misdirection_stderr": {"long_name": "jackknife standard error of misdirection (0 = exact)"},
    "eigenvalue": {"long_name": "top eigenvalues of the operator reduced over units"},
    "eigenfunction": {"long_name": "eigenfunctions phi_i(trial, time) of the operator reduced over units",
                      "normalisation": "unit Euclidean norm, largest-magnitude entry positive"},
    "eigen_residual": {"long_name": "residual norm ||A v - lambda v||"},
    "eigen_converged": {"long_name": "1 when the eigensolver converged"},
    "loss": {"long_name": "masked MSE of the readout on the evaluation batch (training loss)"},
    "accuracy": {"long_name": "fraction of correct evaluation trials (the task's scoring criterion)"},
}


def _describe(opts) -> dict:
    return {
        "definitions": json_attr({d: DEFINITIONS[d] for d in opts["definitions"]}),
        "keep": json_attr(list(opts["keep"])),
        "reduction": opts["reduction"],
        "inner": opts["inner"],
        "dtype": dtype_name(opts["dtype"]),
        "conventions": ("Operators along the noise-free trajectory from the model's initial state, Jacobians at "
                        "(z(t-1), x(t)); K = J_theta J_theta*, P the linearised propagator, PKP* the hidden-state "
                        "NTK (kpflow-math §2). Effective ranks of K, P P* and P K P* after reducing onto `keep` "
                        "with `reduction` (block_average = the paper's reduced view, normalised by 1/|S|). "
                        "Eigenfunctions of the operators reduced over units with the same reduction."),
    }
