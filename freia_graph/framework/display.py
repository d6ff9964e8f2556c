"""How graphs, chains and nodes show themselves: notebook pictures and text summaries.

The drawing lives in :mod:`freia_graph.viz`, imported only when something is displayed, so the framework
does not depend on it at import time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Displayable"]


class Displayable:
    """Mixin: ``_repr_mimebundle_`` (SVG picture plus a text fallback; never raises), ``summary()``
    (a table of nodes, modules, shapes and parameter counts) and ``str()`` (the summary)."""

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        from freia_graph.viz.display import mimebundle

        return mimebundle(self, include=include, exclude=exclude)

    def summary(self, max_rows: int | None = 60) -> str:
        """A table of nodes, modules, shapes and parameter counts (a one-line description for a node).

        Beyond ``max_rows`` nodes the first and last rows are shown and the rest counted; None lists all.
        """
        from freia_graph.viz.display import summary

        return summary(self, max_rows)

    def __str__(self) -> str:
        return self.summary()
