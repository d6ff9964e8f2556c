"""FrEIA's module path ``FrEIA.framework.graph_inn.graph_inn``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from freia_graph.framework.graph_inn import GraphINN

__all__ = ["GraphINN"]
