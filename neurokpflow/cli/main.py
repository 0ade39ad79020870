"""Train RNNs on cognitive tasks, analyse their training with the KPFlow operators, and compare
their dynamics with NWB recordings.

Start with ``neurokpflow demo``: it builds a synthetic "virtual animal" recording, trains a small
RNN, runs the analyses and writes an HTML report (a few minutes on a laptop CPU).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from .errors import EXIT_CODES, EXIT_INTERNAL, EXIT_INTERRUPTED, classify
from .._logging import configure as configure_logging
from .._runtime import torch_threads

EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4}{meaning}" for code, meaning in EXIT_CODES.items()) + (
    "\n\nRun 'neurokpflow COMMAND --help' for the options of one command.")


def _common_options(default):
    """Options accepted both before and after the sub-command (``default`` = SUPPRESS on the sub-parsers
    so that a value given before the sub-command is not overwritten by the sub-parser's default)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars and no messages on stdout; log errors only (errors still go to stderr)")
    parent.add_argument("-v", "--verbose", action="count", default=0 if default is False else default,
                        help="log what the library does on stderr: -v progress (checkpoints, files, defaults "
                             "chosen), -vv everything")
    parent.add_argument("--debug", action="store_true", default=default,
                        help="on error, print the full traceback instead of one line")
    parent.add_argument("--threads", type=int, default=None if default is False else default, metavar="N",
                        help="CPU threads for torch (default: torch's choice; 1 for demo, whose networks are "
                             "small enough that more threads only add overhead)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="neurokpflow", description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_common_options(False)])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common_options(argparse.SUPPRESS)
    commands.register(sub, common)
    return parser


def _version():
    from .._version import __version__

    return __version__


def main(argv=None) -> int:
    """Run the command line; returns the exit code (see ``neurokpflow --help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    configure_logging(-1 if args.quiet else int(getattr(args, "verbose", 0) or 0))
    try:
        with torch_threads(getattr(args, "threads_default", None) if args.threads is None else args.threads):
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("neurokpflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # every failure becomes one line on stderr and an exit code
        code, message = classify(exc)
        if args.debug:
            traceback.print_exc()
        hint = " (unexpected: rerun with --debug and report the traceback)" if code == EXIT_INTERNAL else ""
        print(f"neurokpflow {args.command}: error: {message}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
