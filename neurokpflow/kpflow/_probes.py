"""Seeded probe generation and chunked application shared by the spectral estimators.

Probes are created directly on the operator's device and in its dtype, a chunk at a
time, so peak memory stays at ``chunk_size`` probes plus their images.
"""
from __future__ import annotations

import torch

from .linop import LinearOperator

#: default number of probes applied at once when neither the call nor the operator says
DEFAULT_CHUNK = 16


def make_generator(seed, device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` from an int seed, an existing generator or ``None``.

    ``None`` draws a fresh seed from torch's global generator (so ``torch.manual_seed``
    makes whole analyses reproducible).
    """
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, a torch.Generator or None, got {type(seed).__name__}")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def random_probes(n, shape, dtype, device, generator, kind="rademacher") -> torch.Tensor:
    """``n`` probes of shape ``shape`` with E[g gᵀ] = I (Rademacher ±1 or standard Gaussian)."""
    size = (int(n), *shape)
    if kind == "rademacher":
        g = torch.randint(0, 2, size, generator=generator, device=device).to(dtype)
        return g.mul_(2).sub_(1)
    if kind == "gaussian":
        return torch.randn(size, generator=generator, device=device, dtype=dtype)
    raise ValueError(f"probe distribution must be 'rademacher' or 'gaussian', got {kind!r}")


def basis_vectors(start, stop, shape, dtype, device) -> torch.Tensor:
    """Standard basis vectors ``e_start .. e_{stop-1}`` reshaped to ``[stop-start, *shape]``."""
    n = int(torch.Size(shape).numel())
    E = torch.zeros(stop - start, n, dtype=dtype, device=device)
    E[torch.arange(stop - start, device=device), torch.arange(start, stop, device=device)] = 1
    return E.reshape(stop - start, *shape)


def chunk_size_for(op: LinearOperator, chunk_size) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be a positive int, got {chunk_size}")
        return int(chunk_size)
    return op.chunk_size or DEFAULT_CHUNK


def sum_dims(x: torch.Tensor, n_shape: int) -> torch.Tensor:
    """Sum over the trailing ``n_shape`` dims, accumulating in float64."""
    return x.sum(dim=tuple(range(-n_shape, 0)), dtype=torch.float64)
