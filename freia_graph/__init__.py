"""freia_graph: invertible neural networks (normalizing flows) as graphs, for PyTorch.

Example:
    >>> import freia_graph as fg
    >>> sorted(name for name in fg.__all__ if name.endswith("INN"))
    ['GraphINN', 'SequenceINN']
"""

from freia_graph.framework import *  # noqa: F403
from freia_graph.framework import __all__ as _framework_names
from freia_graph.modules.base import InvertibleModule

__version__ = "0.1.0"
__all__ = [*_framework_names, "InvertibleModule"]
