"""FrEIA's module path ``FrEIA.modules.invertible_resnet``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .iresnet import IResNetLayer
from .normalization import ActNorm

__all__ = ["ActNorm", "IResNetLayer"]
