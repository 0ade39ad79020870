"""Entry point of the ``neurokpflow`` console script."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="neurokpflow", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the embedded end-to-end demo")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        import neurokpflow

        print(f"neurokpflow {neurokpflow.__version__}: the full demo is under construction.")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
