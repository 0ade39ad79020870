"""Masked mean-squared error with the two mask conventions in use."""
from __future__ import annotations

import torch
from ..errors import InputError

__all__ = ["masked_mse", "MASK_MODES"]

#: ``"pre_square"``: Yang 2019 / Driscoll 2024, ``mean(((ŷ - y)·m)²)`` (effective weights m²);
#: ``"post_square"``: CtDB, ``mean((ŷ - y)²·m)`` (effective weights m).
MASK_MODES = ("pre_square", "post_square")


def masked_mse(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
               mask_mode: str = "pre_square") -> torch.Tensor:
    """Masked MSE, **averaged over all** ``B·T·O`` entries (masked-out and padded entries
    count in the denominator, as in Yang 2019).

    ``mask_mode="pre_square"`` multiplies the error by the mask before squaring
    (``mean(((ŷ - y)·m)²)``, Yang/Driscoll); ``"post_square"`` multiplies the squared error
    (``mean((ŷ - y)²·m)``, CtDB).
    """
    if outputs.shape != targets.shape or mask.shape != targets.shape:
        raise InputError(f"outputs {tuple(outputs.shape)}, targets {tuple(targets.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same shape")
    err = outputs - targets.to(outputs.dtype)
    m = mask.to(outputs.dtype)
    if mask_mode == "pre_square":
        return (err * m).square().mean()
    if mask_mode == "post_square":
        return (err.square() * m).mean()
    raise InputError(f"mask_mode must be one of {MASK_MODES}, got {mask_mode!r}")
