"""Building and running graphs of invertible modules."""

from freia_graph.framework.deprecated import ReversibleGraphNet, ReversibleSequential
from freia_graph.framework.graph import collect_nodes
from freia_graph.framework.graph_inn import GraphINN
from freia_graph.framework.nodes import ConditionNode, FeedForwardNode, InputNode, Node, OutputNode
from freia_graph.framework.sequence_inn import SequenceINN

__all__ = [
    "InputNode",
    "ConditionNode",
    "Node",
    "FeedForwardNode",
    "OutputNode",
    "collect_nodes",
    "GraphINN",
    "SequenceINN",
    "ReversibleGraphNet",
    "ReversibleSequential",
]
