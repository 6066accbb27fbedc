"""Entry point of the `robotaxi` command.

Each sub-command lives in its own module under `robotaxi.cli` and exposes
`register(subparsers)`, which adds its parser and sets `handler=<function(args) -> int>`.
Named errors (`RobotaxiError`) become one line on stderr and exit code 2, never a traceback.

Building the parser imports only the standard library: every sub-command module imports its
heavy dependencies (numpy, SUMO, FastAPI, the store) inside the functions that run it, so
`robotaxi --help` answers at once (tests/test_packaging_cli.py keeps it that way).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# sub-command modules, in the order `robotaxi --help` lists them
COMMAND_MODULES = ("simulate", "calibrate", "map_cmd", "drive", "siren", "serve", "sweep")

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse's own convention)
        self.exit(EXIT_BAD_INPUT, f"robotaxi: error: {message} (see: robotaxi --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="robotaxi", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"robotaxi.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"robotaxi.cli.{name}":
                continue  # that command is not built yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    # here, not at the top: `robotaxi.core` imports numpy, which `--help` does not need
    from robotaxi.core.errors import RobotaxiError

    try:
        return int(args.handler(args) or 0)
    except RobotaxiError as exc:
        # one line, whatever the message: a user reads the first line of an error
        print(f"robotaxi: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("robotaxi: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
