"""The HTML report of the command line: the one implementation is :mod:`neurokpflow.viz.report`."""
from __future__ import annotations

from .._io import atomic_write
from ..viz.report import Report

#: the former CLI helper's name for :func:`neurokpflow._io.atomic_write`
write_atomic = atomic_write

__all__ = ["Report", "write_atomic"]
