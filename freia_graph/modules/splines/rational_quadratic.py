"""FrEIA's module path ``FrEIA.modules.splines.rational_quadratic``.

Re-exports freia_graph's own classes under FrEIA's module name; no code of its own.
"""

from . import ElementwiseRationalQuadraticSpline, RationalQuadraticSpline

__all__ = ["RationalQuadraticSpline", "ElementwiseRationalQuadraticSpline"]
