"""FrEIA's module path ``FrEIA.modules.inv_auto_layers``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .elementwise import LearnedElementwiseScaling
from .invertible_autoencoders import InvAutoAct, InvAutoActFixed, InvAutoActTwoSided, InvAutoConv2D, InvAutoFC

__all__ = [
    "InvAutoActTwoSided", "InvAutoAct", "InvAutoActFixed", "LearnedElementwiseScaling", "InvAutoFC",
    "InvAutoConv2D",
]
