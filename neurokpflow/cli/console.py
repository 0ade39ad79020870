"""Messages on stdout that ``--quiet`` silences; errors always go to stderr (see ``main``)."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Console:
    """``say`` prints unless quiet; ``progress`` tells library calls whether to show progress bars."""

    def __init__(self, quiet: bool = False, stream=None):
        self.quiet = bool(quiet)
        self.stream = stream

    @property
    def progress(self) -> bool:
        return not self.quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, file=self.stream or sys.stdout, flush=True)

    @contextmanager
    def stage(self, title: str):
        """Announce a pipeline stage and report its wall time when it ends."""
        self.say(f"- {title} ...")
        start = time.perf_counter()
        yield
        self.say(f"  done in {time.perf_counter() - start:.1f} s")
