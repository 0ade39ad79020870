"""Exit codes of the command line and the mapping from exceptions to them.

Codes are chosen by exception *family* (:mod:`neurokpflow.errors`), never by a concrete class,
so a new error type gets the right code by choosing its base class.
"""
from __future__ import annotations

from ..errors import (AlignmentError, CheckpointError, ConvergenceError, DegenerateInputError, DownloadError,
                      MissingExtraError, NeurokpflowError, NWBError, OutputExistsError)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_UNUSABLE = 4
EXIT_DEPENDENCY = 5
EXIT_INTERRUPTED = 130

#: exit code -> meaning (printed by ``neurokpflow --help`` and documented in the README)
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: rerun with --debug and report the traceback)",
    EXIT_USAGE: "bad command line or option value (unknown task or measure, invalid number, ...)",
    EXIT_MISSING: "an input file or run folder does not exist or cannot be read or downloaded",
    EXIT_UNUSABLE: "the input exists but cannot serve this command (not NWB, no trials table, no condition "
                   "column, damaged checkpoint, inputs that cannot be aligned, degenerate data, a solver that "
                   "did not converge, ...)",
    EXIT_DEPENDENCY: "an optional dependency is missing (install the neurokpflow[extra] the message names)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

#: families meaning "this input exists but cannot serve the command"
UNUSABLE_FAMILIES = (NWBError, CheckpointError, AlignmentError, DegenerateInputError, ConvergenceError,
                     OutputExistsError)
_MISSING_OS_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


class CLIError(NeurokpflowError):
    """An error the command line reports as one line with a chosen exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _first_line(text: object) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def classify(exc: BaseException) -> tuple[int, str]:
    """``(exit_code, one-line message)`` for an exception raised while running a command."""
    if isinstance(exc, CLIError):
        return exc.code, _first_line(exc)
    if isinstance(exc, MissingExtraError):
        return EXIT_DEPENDENCY, _first_line(exc)
    if isinstance(exc, _MISSING_OS_ERRORS):
        filename, strerror = getattr(exc, "filename", None), getattr(exc, "strerror", None)
        if filename and strerror:
            return EXIT_MISSING, f"{strerror}: {filename}"
        return EXIT_MISSING, _first_line(exc) or type(exc).__name__
    if isinstance(exc, DownloadError):
        return EXIT_MISSING, _first_line(exc)
    if isinstance(exc, UNUSABLE_FAMILIES):
        return EXIT_UNUSABLE, _first_line(exc)
    if isinstance(exc, (ValueError, TypeError, KeyError)):  # InputError and the builtins of argparse & co.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return EXIT_USAGE, _first_line(message) or type(exc).__name__
    return EXIT_INTERNAL, f"{type(exc).__name__}: {_first_line(exc)}"
