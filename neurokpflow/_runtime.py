"""Process-level settings shared by the CLI and the sweep workers."""
from __future__ import annotations

import contextlib

from .errors import InputError

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n):
    """Run a block with ``n`` torch CPU threads (``None``: leave the setting alone), then restore it."""
    if n is None:
        yield
        return
    import torch

    if n < 1:
        raise InputError(f"threads={n}: expected an integer >= 1; e.g. --threads 2")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
