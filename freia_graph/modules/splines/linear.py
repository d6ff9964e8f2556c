"""FrEIA's module path ``FrEIA.modules.splines.linear``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from . import LinearSpline
from .kernels import linear_spline

__all__ = ["LinearSpline", "linear_spline"]
