"""FrEIA's module path ``FrEIA.modules.splines.linear``.

Re-exports freia_graph's own classes under FrEIA's module name; no code of its own.
"""

from . import LinearSpline

__all__ = ["LinearSpline"]
