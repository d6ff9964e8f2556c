"""FrEIA's module path ``FrEIA.modules.fixed_transforms``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .elementwise import InvertibleSigmoid
from .permutations import Fixed1x1Conv, FixedLinearTransform, PermuteRandom

__all__ = ["PermuteRandom", "FixedLinearTransform", "Fixed1x1Conv", "InvertibleSigmoid"]
