"""Exit codes of the command line and the mapping from exceptions to them."""
from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_MISSING = 3
EXIT_UNUSABLE = 4
EXIT_INTERRUPTED = 130

#: exit code -> meaning (printed by ``neurokpflow --help`` and documented in the README)
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_INTERNAL: "internal error (a bug: rerun with --debug and report the traceback)",
    EXIT_USAGE: "bad command line or option value (unknown task or measure, invalid number, ...)",
    EXIT_MISSING: "an input file or run folder does not exist or cannot be read",
    EXIT_UNUSABLE: "the input exists but cannot serve this command (not NWB, no trials table, no condition "
                   "column, damaged checkpoint, ...)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CLIError(Exception):
    """An error the command line reports as one line with a chosen exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _unusable_types():
    """Library exception types that mean "this input cannot serve the command"."""
    found = []
    try:
        from ..training import CheckpointError

        found.append(CheckpointError)
    except ImportError:  # the training package is optional for info/compare on data alone
        pass
    try:
        from ..data import NWBLoadError

        found.append(NWBLoadError)
    except ImportError:
        pass
    return tuple(found)


def _first_line(text: str) -> str:
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else ""


def classify(exc: BaseException):
    """``(exit_code, one-line message)`` for an exception raised while running a command."""
    if isinstance(exc, CLIError):
        return exc.code, _first_line(exc)
    if isinstance(exc, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        if getattr(exc, "filename", None) and getattr(exc, "strerror", None):
            return EXIT_MISSING, f"{exc.strerror}: {exc.filename}"
        return EXIT_MISSING, _first_line(exc) or type(exc).__name__
    if isinstance(exc, _unusable_types()):
        return EXIT_UNUSABLE, _first_line(exc)
    if isinstance(exc, (ValueError, TypeError, KeyError)):
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return EXIT_USAGE, _first_line(message) or type(exc).__name__
    return EXIT_INTERNAL, f"{type(exc).__name__}: {_first_line(exc)}"
