"""``python -m freia_graph``: the ``freia-graph`` command (see :mod:`freia_graph.cli`)."""

import sys

from freia_graph.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
