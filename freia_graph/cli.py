"""The ``freia-graph`` command: ``freia-graph demo`` and ``freia-graph check``.

Exit codes: 0 when everything passed, 1 when a check or the demo failed, 2 for bad arguments (reported
in one line on stderr, without a traceback). ``python -m freia_graph`` runs the same command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["UsageError", "build_parser", "main"]


class UsageError(ValueError):
    """A bad argument found only when a command runs (a module that fails to import, an output folder
    that is a file, ...): :func:`main` prints its message in one line and exits with 2.

    Example:
        >>> str(UsageError("--out demo.txt is a file"))
        '--out demo.txt is a file'
    """


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``prog: error: ...``) instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per tool.

    Example:
        >>> build_parser().parse_args(["demo", "--steps", "10"]).steps
        10
    """
    from freia_graph import demo
    from freia_graph.testing import command

    parser = _Parser(prog="freia-graph", description=__doc__.splitlines()[0].replace("``", ""))
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(commands.add_parser("demo", help=demo.__doc__.splitlines()[0]))
    command.add_arguments(commands.add_parser("check", help=command.__doc__.splitlines()[0]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 passed, 1 failed, 2 bad arguments).

    Args:
        argv: the arguments without the program name; default ``sys.argv[1:]``.

    Example:
        >>> main(["check", "freia_graph.modules:PermuteRandom", "--dims", "0"])
        2
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # --help (0), or a bad argument the parser already reported (2)
        return exit.code if isinstance(exit.code, int) else 0
    try:
        return int(args.run(args) or 0)
    except UsageError as error:
        message = " ".join(str(error).split())
        print(f"freia-graph {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
