"""The package's loggers: ``logging.getLogger(__name__)`` in each module, under the ``neurokpflow`` logger.

A library does not configure logging: the ``neurokpflow`` logger has a ``NullHandler`` and no
level, so messages reach the application's handlers (``logging.basicConfig(level="INFO")`` shows
them).  The command line's ``--verbose`` / ``--quiet`` call :func:`configure`.
"""
from __future__ import annotations

import logging

__all__ = ["get_logger", "configure"]

ROOT = "neurokpflow"
logging.getLogger(ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger of module ``name`` (pass ``__name__``)."""
    return logging.getLogger(name)


def configure(verbosity: int, stream=None) -> logging.Handler:
    """Show the package's messages on ``stream`` (stderr): ``verbosity`` -1 errors only, 0 warnings,
    1 progress (INFO), 2 and more everything (DEBUG).  Replaces a handler set by an earlier call."""
    logger = logging.getLogger(ROOT)
    for handler in list(logger.handlers):
        if getattr(handler, "_neurokpflow_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("neurokpflow: %(levelname)s %(name)s: %(message)s"))
    handler._neurokpflow_cli = True  # type: ignore[attr-defined]
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler
