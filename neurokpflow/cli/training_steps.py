"""The ``train`` step: the library's :func:`neurokpflow.training.start_run` and ``resume_run``."""
from __future__ import annotations

from ..training.runs import resume_run, start_run

__all__ = ["start_run", "resume_run"]
