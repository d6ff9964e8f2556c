"""FrEIA's module path ``FrEIA.modules.graph_topology``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .deprecated import Concat1d, ConcatChannel, Split1D, SplitChannel
from .topology import Concat, Split

__all__ = ["Split", "Concat", "Split1D", "SplitChannel", "Concat1d", "ConcatChannel"]
