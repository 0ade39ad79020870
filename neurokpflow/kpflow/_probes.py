"""Seeded probe generation and chunked application shared by the spectral estimators.

Probes are created directly on the operator's device and in its dtype, a chunk at a
time, so peak memory stays at ``chunk_size`` probes plus their images.
"""
from __future__ import annotations

import math

import torch

from .linop import LinearOperator
from ..errors import InputError
from .._validation import torch_generator

#: default number of probes applied at once when neither the call nor the operator says
DEFAULT_CHUNK = 16


def make_generator(seed, device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` under the package's seed convention: an int seed, an
    existing generator (used as is) or ``None`` (fresh OS entropy; see :mod:`neurokpflow._validation`)."""
    return torch_generator(seed, device)


def random_probes(n, shape, dtype, device, generator, kind="rademacher") -> torch.Tensor:
    """``n`` probes of shape ``shape`` with E[g gᵀ] = I (Rademacher ±1 or standard Gaussian)."""
    size = (int(n), *shape)
    if kind == "rademacher":
        return _rademacher(size, dtype, device, generator)
    if kind == "gaussian":
        return torch.randn(size, generator=generator, device=device, dtype=dtype)
    raise InputError(f"probe distribution must be 'rademacher' or 'gaussian', got {kind!r}")


def _rademacher(size, dtype, device, generator) -> torch.Tensor:
    """Independent ±1 signs, one bit of a uniform 64-bit draw each.

    Drawing one random number per sign (``bernoulli_``) made probe generation a third of a
    one-sided trace estimate on the CPU; 64 signs per draw make it about six times cheaper.  The
    temporaries are bytes (a quarter of a float32 probe block)."""
    count = math.prod(size)
    words = -(-count // 64)
    # the full int64 range: every bit of every word is an independent fair coin
    draws = torch.randint(-2 ** 63, 2 ** 63 - 1, (words,), dtype=torch.int64, device=device, generator=generator)
    shifts = torch.arange(8, dtype=torch.uint8, device=device)
    bits = (draws.view(torch.uint8).unsqueeze(-1) >> shifts).bitwise_and_(1).reshape(-1)[:count]
    return bits.to(dtype).mul_(2).sub_(1).reshape(size)


def basis_vectors(start, stop, shape, dtype, device) -> torch.Tensor:
    """Standard basis vectors ``e_start .. e_{stop-1}`` reshaped to ``[stop-start, *shape]``."""
    n = int(torch.Size(shape).numel())
    E = torch.zeros(stop - start, n, dtype=dtype, device=device)
    E[torch.arange(stop - start, device=device), torch.arange(start, stop, device=device)] = 1
    return E.reshape(stop - start, *shape)


def chunk_size_for(op: LinearOperator, chunk_size) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise InputError(f"chunk_size must be a positive int, got {chunk_size}")
        return int(chunk_size)
    return op.chunk_size or DEFAULT_CHUNK


_DOT_BLOCK = 1 << 16


def batched_dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[Σ x_i ∘ y_i for each probe i]`` accumulated in float64, a block of 65 536 entries at a
    time (no probe- or chunk-sized temporaries, which fragment the heap)."""
    xs, ys = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    out = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, xs.shape[1], _DOT_BLOCK):
        a, b = xs[:, start:start + _DOT_BLOCK], ys[:, start:start + _DOT_BLOCK]
        out += (a.double() * b.double()).sum(1)
    return out
