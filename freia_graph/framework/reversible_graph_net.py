"""FrEIA's module path ``FrEIA.framework.reversible_graph_net``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from freia_graph.framework.deprecated import ReversibleGraphNet

__all__ = ["ReversibleGraphNet"]
