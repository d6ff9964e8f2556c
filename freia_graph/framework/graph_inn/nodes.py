"""FrEIA's module path ``FrEIA.framework.graph_inn.nodes``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from freia_graph.framework.graph import collect_nodes
from freia_graph.framework.nodes import ConditionNode, FeedForwardNode, InputNode, Node, OutputNode

__all__ = ["Node", "InputNode", "ConditionNode", "OutputNode", "FeedForwardNode", "collect_nodes"]
