"""FrEIA's module path ``FrEIA.modules.splines.rational_quadratic``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from . import ElementwiseRationalQuadraticSpline, RationalQuadraticSpline
from .kernels import rational_quadratic_spline

__all__ = ["RationalQuadraticSpline", "ElementwiseRationalQuadraticSpline", "rational_quadratic_spline"]
