"""All pairwise comparisons among many representations, batched on torch (CPU or CUDA)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from ._inputs import as_representation
from ._registry import get_measure
from ._result import DegenerateInputError
from .geometry import CKA, Procrustes
from ..errors import InputError


def _batched_kind(m) -> str | None:
    if isinstance(m, Procrustes) and m.alpha == 1.0 and m.center:
        return f"procrustes_{m.kind}"
    if isinstance(m, CKA) and m.kernel == "linear" and not m.debiased:
        return f"cka_{m.output}"
    return None


def pairwise(representations: Sequence[Any] | Mapping[str, Any], measures: Sequence[Any] = ("procrustes", "cka"),
             *, device: str | torch.device | None = None, dtype: torch.dtype = torch.float64,
             block_size: int = 4) -> xr.DataArray:
    """Matrix of every measure between every pair of representations, dims (measure, first, second).

    All representations must share their samples (rows, already matched); unit counts may differ
    (zero-padding changes neither measure). Centred Procrustes (alpha = 1, angular or Euclidean)
    and biased linear CKA are computed batched: each input is centred once, all cross-products
    X_i^T X_j come from block matrix products, and nuclear norms from one batched ``svdvals`` per
    block. Other measures fall back to one pair at a time. ``dtype=torch.float32`` trades accuracy
    (about 1e-6 relative) for speed.
    """
    names = list(representations.keys()) if isinstance(representations, Mapping) else list(range(len(representations)))
    items = list(representations.values()) if isinstance(representations, Mapping) else list(representations)
    if len(items) < 2:
        raise DegenerateInputError("pairwise needs at least 2 representations")
    reps = [as_representation(x, name=f"representation {n!r}") for n, x in zip(names, items)]
    n_rows = {r.n_conditions * r.n_times for r in reps}
    if len(n_rows) != 1:
        raise InputError(f"representations must share their samples; got row counts {sorted(n_rows)}")
    ms = [get_measure(m) for m in measures]
    n = len(reps)
    result = np.zeros((len(ms), n, n))
    batched = {k: _batched_kind(m) for k, m in enumerate(ms)}
    if any(batched.values()):
        values = _batched_values(reps, device, dtype, block_size)
        for k, kind in batched.items():
            if kind:
                result[k] = values[kind]
    for k, m in enumerate(ms):
        if batched[k] is None:
            for i in range(n):
                for j in range(i, n):
                    result[k, i, j] = result[k, j, i] = float(m.score(reps[i], reps[j], in_sample_warning=False))
    return xr.DataArray(result, dims=("measure", "first", "second"),
                        coords=dict(measure=[m.estimator for m in ms], first=names, second=names,
                                    convention=("measure", [m.convention for m in ms])), name="pairwise")


def _batched_values(reps, device, dtype, block_size) -> dict[str, np.ndarray]:
    width = max(r.n_units for r in reps)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    stack = torch.stack([torch.nn.functional.pad(r.matrix(), (0, width - r.n_units)) for r in reps]).to(dev, dtype)
    stack = stack - stack.mean(1, keepdim=True)
    n = stack.shape[0]
    sq_norm = torch.sum(stack ** 2, dim=(1, 2))
    if bool((sq_norm <= 0).any()):
        raise DegenerateInputError(f"representation(s) {torch.nonzero(sq_norm <= 0).flatten().tolist()} are constant")
    gram_norm = torch.linalg.norm(stack.mT @ stack, dim=(1, 2))
    flat = stack.permute(1, 0, 2).reshape(stack.shape[1], n * width)  # samples x (rep, unit)
    nuclear = torch.zeros(n, n, dtype=dtype, device=dev)
    frob_sq = torch.zeros(n, n, dtype=dtype, device=dev)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        cross = flat[:, start * width: stop * width].T @ flat[:, start * width:]
        cross = cross.reshape(stop - start, width, n - start, width).permute(0, 2, 1, 3)
        nuclear[start:stop, start:] = torch.linalg.svdvals(cross).sum(-1)
        frob_sq[start:stop, start:] = torch.sum(cross ** 2, dim=(-2, -1))
    nuclear = torch.triu(nuclear) + torch.triu(nuclear, 1).T
    frob_sq = torch.triu(frob_sq) + torch.triu(frob_sq, 1).T
    norms = torch.sqrt(sq_norm)
    cosine = torch.clamp(nuclear / (norms[:, None] * norms[None, :]), -1.0, 1.0)
    cka = torch.clamp(frob_sq / (gram_norm[:, None] * gram_norm[None, :]), max=1.0)   # ≤ 1 (Cauchy–Schwarz)
    euclid = torch.sqrt(torch.clamp(sq_norm[:, None] + sq_norm[None, :] - 2 * nuclear, min=0.0))
    # an entry against itself: exactly similarity 1 and distance 0 (computed, the round-off
    # of ‖X‖² - ‖XᵀX‖_* comes out as sqrt(eps) ~ 1e-8 through arccos and sqrt)
    diag = torch.arange(n, device=dev)
    cosine[diag, diag], cka[diag, diag], euclid[diag, diag] = 1.0, 1.0, 0.0
    to_np = lambda t: t.double().cpu().numpy()  # noqa: E731
    return {"procrustes_angular": to_np(torch.arccos(cosine)), "procrustes_euclidean": to_np(euclid),
            "cka_similarity": to_np(cka), "cka_angular": to_np(torch.arccos(torch.clamp(cka, -1.0, 1.0)))}
