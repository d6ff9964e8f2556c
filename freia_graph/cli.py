"""The ``freia-graph`` command: ``freia-graph demo`` and ``freia-graph check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per tool."""
    from freia_graph import demo
    from freia_graph.testing import command

    parser = argparse.ArgumentParser(prog="freia-graph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_arguments(commands.add_parser("demo", help=demo.__doc__.splitlines()[0]))
    command.add_arguments(commands.add_parser("check", help=command.__doc__.splitlines()[0]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> args = build_parser().parse_args(["demo", "--out", "demo_out", "--steps", "10"])
        >>> args.command, args.steps
        ('demo', 10)
    """
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
