"""From declared nodes to validated execution orders and a ``networkx.MultiDiGraph``.

:func:`execution_orders` validates the nodes and sorts them topologically in one pass over their port
lists (a list of edges: iterating networkx's edge views would cost more than the sort). :func:`graph_of`
gives the same topology as a graph: edges go from producer to consumer and carry ``out_port`` (the
producer's output index), ``in_port`` (the consumer's input or condition index), ``shape`` and
``condition`` (True when the edge feeds a condition); it is a multigraph because one node may feed another
through several ports. ``GraphINN.graph`` is that graph, built on first use.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import networkx as nx

from freia_graph.framework.collector import garbage_collector_paused
from freia_graph.framework.nodes import BaseNode

__all__ = ["collect_nodes", "build_graph", "execution_orders", "graph_of", "garbage_collector_paused"]


def _neighbours(node: BaseNode) -> list[BaseNode]:
    return [source for source, _ in node.inputs + node.conditions] + [consumer for consumer, _ in node.outputs]


def collect_nodes(*nodes: BaseNode) -> list[BaseNode]:
    """The whole connected graph reachable from any of the given nodes, in declaration order.

    Walks inputs, conditions and consumers, so any one node of a graph finds all of it.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [node.name for node in collect_nodes(z)]
        ['x', 'z']
    """
    seen: dict[int, BaseNode] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if not isinstance(node, BaseNode):
            raise TypeError(f"collect_nodes() takes nodes, got {type(node).__name__}")
        if id(node) not in seen:
            seen[id(node)] = node
            stack.extend(_neighbours(node))
    return sorted(seen.values(), key=lambda node: node.serial)


def _port_name(node: BaseNode, port: int) -> str:
    return f"'{node.name}'.out{port}"


def _check_node_list(node_list: Sequence[BaseNode]) -> None:
    names: dict[str, BaseNode] = {}
    for index, node in enumerate(node_list):
        if not isinstance(node, BaseNode):
            raise TypeError(f"node_list[{index}] is a {type(node).__name__}, not a node")
        if node.name in names:
            other = "the same node listed twice" if names[node.name] is node else "two different nodes"
            raise ValueError(f"duplicate node name '{node.name}' in node_list ({other}); names must be unique")
        names[node.name] = node
    members = {id(node) for node in node_list}
    for node in node_list:
        for source, port in node.inputs + node.conditions:
            if id(source) not in members:
                raise ValueError(f"Node '{node.name}' reads {_port_name(source, port)}, but '{source.name}' is "
                                 "not in node_list; add it (Ff.collect_nodes(...) gathers a whole graph)")
        for consumer, index in node.outputs:
            if id(consumer) not in members:
                raise ValueError(
                    f"Node '{consumer.name}' reads '{node.name}' (as its input/condition {index}), but "
                    f"'{consumer.name}' is not in node_list; add it, or rebuild the nodes (was a cell declaring "
                    "it run twice?)"
                )
    if not any(node.kind == "input" for node in node_list):
        raise ValueError("the graph has no InputNode")
    if not any(node.kind == "output" for node in node_list):
        raise ValueError("the graph has no OutputNode")


class _Edge(NamedTuple):
    """One port connection: ``source.out<out_port>`` feeds input (or condition) ``in_port`` of ``target``."""

    source: BaseNode
    target: BaseNode
    out_port: int
    in_port: int
    condition: bool


def _port_edges(node_list: Sequence[BaseNode]) -> list[_Edge]:
    return [_Edge(source, node, out_port, in_port, condition)
            for node in node_list
            for condition, ports in ((False, node.inputs), (True, node.conditions))
            for in_port, (source, out_port) in enumerate(ports)]


def graph_of(node_list: Sequence[BaseNode]) -> nx.MultiDiGraph:
    """The nodes as a ``networkx.MultiDiGraph`` (no validation: see :func:`build_graph`).

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [(u.name, v.name, d["shape"]) for u, v, d in graph_of([x, z]).edges(data=True)]
        [('x', 'z', (4,))]
    """
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(node_list)
    for edge in _port_edges(node_list):
        graph.add_edge(edge.source, edge.target, key=(edge.condition, edge.in_port), out_port=edge.out_port,
                       in_port=edge.in_port, shape=edge.source.output_dims[edge.out_port], condition=edge.condition)
    return graph


def _check_ports_consumed_once(edges: Sequence[_Edge], node_list: Sequence[BaseNode]) -> None:
    counts: dict[tuple[int, int], int] = {}
    for edge in edges:
        if not edge.condition:
            key = (id(edge.source), edge.out_port)
            counts[key] = counts.get(key, 0) + 1
    for node in node_list:
        if node.kind in ("condition", "feed_forward"):
            continue  # condition values may feed any number of nodes
        for port, shape in enumerate(node.output_dims):
            count = counts.get((id(node), port), 0)
            if count == 0:
                raise ValueError(f"{_port_name(node, port)} (shape {shape}) is not consumed by any node; "
                                 "connect it to a node or an OutputNode")
            if count > 1:
                readers = [f"'{edge.target.name}' (input {edge.in_port})" for edge in edges
                           if edge.source is node and edge.out_port == port and not edge.condition]
                raise ValueError(f"{_port_name(node, port)} (shape {shape}) is consumed {count} times, "
                                 f"by {', '.join(readers)}; each output must be consumed exactly once "
                                 "(use Split to use a tensor in several places)")


def _cycle_names(pairs: Iterable[tuple[BaseNode, BaseNode]]) -> str:
    cycle = nx.find_cycle(nx.DiGraph(list(pairs)))
    return " -> ".join(f"'{edge[0].name}'" for edge in cycle) + f" -> '{cycle[0][0].name}'"


def _checked_forward_order(edges: Sequence[_Edge], node_list: Sequence[BaseNode]) -> list[BaseNode]:
    pairs = [(edge.source, edge.target) for edge in edges]
    order = _sorted_by_position(pairs, node_list)
    if len(order) < len(node_list):
        raise ValueError(f"the graph has a cycle: {_cycle_names(pairs)}")
    return order


def _reverse_edges(edges: Sequence[_Edge]) -> list[tuple[BaseNode, BaseNode]]:
    """The dependencies when running backwards.

    Invertible edges flip. A condition edge from a ConditionNode or FeedForwardNode keeps its direction;
    one from a port of the flow (a feed-forward node reading the flow) starts, in reverse, at the node that
    recovers that port: its consumer, inverted.
    """
    recovered_by = {(id(edge.source), edge.out_port): edge.target for edge in edges if not edge.condition}
    pairs = []
    for source, target, out_port, _, condition in edges:
        if not condition:
            pairs.append((target, source))
        elif source.kind in ("condition", "feed_forward"):
            pairs.append((source, target))
        else:
            pairs.append((recovered_by[(id(source), out_port)], target))
    return pairs


def _checked_reverse_order(edges: Sequence[_Edge], node_list: Sequence[BaseNode]) -> list[BaseNode]:
    pairs = _reverse_edges(edges)
    order = _sorted_by_position(pairs, node_list)
    if len(order) < len(node_list):  # only where a feed-forward node reads the flow (the forward order exists)
        raise ValueError(
            f"the graph has a cycle when run in reverse: {_cycle_names(pairs)}. A FeedForwardNode reads a port "
            "that, in reverse, exists only after the node it (directly or through others) conditions has been "
            "inverted; condition that node on something computed before it")
    return order


def _check_inputs_reach_outputs(edges: Sequence[_Edge], node_list: Sequence[BaseNode]) -> None:
    successors: dict[int, list[BaseNode]] = {}
    for edge in edges:
        successors.setdefault(id(edge.source), []).append(edge.target)
    for node in node_list:
        if node.kind != "input":
            continue
        seen, pending = {id(node)}, [node]
        while pending:
            for successor in successors.get(id(pending.pop()), ()):
                if id(successor) not in seen:
                    seen.add(id(successor))
                    pending.append(successor)
        if not any(other.kind == "output" and id(other) in seen for other in node_list):
            raise ValueError(f"InputNode '{node.name}' is not connected to any OutputNode")


def execution_orders(node_list: Sequence[BaseNode]) -> tuple[list[BaseNode], list[BaseNode]]:
    """Validate the nodes and return their forward and reverse execution orders; every error names the node,
    port and shapes.

    Among the nodes that are ready, the earliest in ``node_list`` runs first. Running backwards, invertible
    edges flip direction; condition edges keep theirs, because conditions (and the feed-forward nodes
    computing them) must be known before the nodes they condition are inverted, and a feed-forward node
    reading a port of the flow runs once the node consuming that port is inverted.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [[node.name for node in order] for order in execution_orders([z, x])]
        [['x', 'z'], ['z', 'x']]
    """
    _check_node_list(node_list)
    edges = _port_edges(node_list)
    forward = _checked_forward_order(edges, node_list)
    _check_ports_consumed_once(edges, node_list)
    reverse = _checked_reverse_order(edges, node_list)
    _check_inputs_reach_outputs(edges, node_list)
    return forward, reverse


def build_graph(node_list: Sequence[BaseNode]) -> nx.MultiDiGraph:
    """Validate the nodes (see :func:`execution_orders`) and gather them into a graph.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> graph = build_graph([x, z])
        >>> [(u.name, v.name, d["shape"]) for u, v, d in graph.edges(data=True)]
        [('x', 'z', (4,))]
    """
    execution_orders(node_list)
    return graph_of(node_list)


def _sorted_by_position(edges: Iterable[tuple[BaseNode, BaseNode]], node_list: Sequence[BaseNode]) -> list[BaseNode]:
    """Kahn's topological sort; among the nodes that are ready, the earliest in ``node_list`` runs first.

    Returns fewer nodes than ``node_list`` when the edges contain a cycle.
    """
    position = {id(node): index for index, node in enumerate(node_list)}
    successors: list[list[int]] = [[] for _ in node_list]
    waiting = [0] * len(node_list)
    for source, target in edges:
        successors[position[id(source)]].append(position[id(target)])
        waiting[position[id(target)]] += 1
    ready = [index for index, count in enumerate(waiting) if count == 0]
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(node_list[index])
        for successor in successors[index]:
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, successor)
    return order
