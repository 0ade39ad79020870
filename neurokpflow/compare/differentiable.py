"""Differentiable (torch autograd) forms of the in-sample geometry measures.

Each function takes two sample-by-unit matrices ``X`` [m, n_x] and ``Y`` [m, n_y] (rows matched,
as :meth:`Representation.matrix` gives them) and returns a 0-d tensor that autograd can
differentiate with respect to either input.  The values equal those of :func:`~neurokpflow.compare.cka`
and :func:`~neurokpflow.compare.procrustes` on the same aligned data (tested); unlike the
:class:`~neurokpflow.compare.Measure` classes they keep the graph (no ``float()``), raise no
in-sample warnings and do no alignment.

* :func:`linear_cka` — ``‖YᵀX‖² / (‖XᵀX‖ ‖YᵀY‖)`` on centred columns (Gretton HSIC);
* :func:`debiased_cka` — the same ratio with Song et al.'s unbiased HSIC (``hsic="song"``);
* :func:`procrustes_angle` — ``arccos(‖XᵀY‖_* / (‖X‖ ‖Y‖))`` on centred columns (α = 1, radians).
  The nuclear norm is differentiable where the singular values of ``XᵀY`` are distinct and
  non-zero; the angle's derivative is unbounded as the angle tends to 0.

:data:`DIFFERENTIABLE` maps a short name to ``(function, convention)``; ``convention`` is
``"similarity"`` (larger = more similar) or ``"angle"`` (smaller = more similar).
"""
from __future__ import annotations

import torch

from .geometry import unbiased_hsic
from ..errors import InputError

__all__ = ["linear_cka", "debiased_cka", "procrustes_angle", "DIFFERENTIABLE"]


def _centred(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 2:
        raise InputError(f"expected a [samples, units] matrix, got shape {tuple(x.shape)}")
    return x - x.mean(0, keepdim=True)


def _pair(X, Y):
    if X.shape[0] != Y.shape[0]:
        raise InputError(f"X has {X.shape[0]} samples but Y has {Y.shape[0]}; rows must be matched samples")
    return _centred(X), _centred(Y.to(X.dtype))


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Biased linear CKA (equals ``compare.cka(X, Y)``)."""
    x, y = _pair(X, Y)
    return torch.linalg.norm(y.T @ x) ** 2 / (torch.linalg.norm(x.T @ x) * torch.linalg.norm(y.T @ y))


def debiased_cka(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Debiased linear CKA with Song et al.'s unbiased HSIC (equals ``compare.cka(X, Y, debiased=True)``);
    needs at least 4 samples and can be negative."""
    x, y = _pair(X, Y)
    if x.shape[0] < 4:
        raise InputError("debiased CKA needs at least 4 samples (conditions x times)")
    k, l = x @ x.T, y @ y.T
    return unbiased_hsic(k, l) / torch.sqrt(unbiased_hsic(k, k) * unbiased_hsic(l, l))


def procrustes_angle(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Angular Procrustes distance in radians (equals ``compare.procrustes(X, Y)``, α = 1, centred)."""
    x, y = _pair(X, Y)
    cosine = torch.linalg.matrix_norm(x.T @ y, ord="nuc") / (torch.linalg.norm(x) * torch.linalg.norm(y))
    return torch.arccos(cosine.clamp(-1.0, 1.0))


#: name -> (function, convention)
DIFFERENTIABLE = {
    "cka": (linear_cka, "similarity"),
    "cka_debiased": (debiased_cka, "similarity"),
    "procrustes": (procrustes_angle, "angle"),
}
