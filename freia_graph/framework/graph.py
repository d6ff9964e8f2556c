"""From declared nodes to a validated ``networkx.MultiDiGraph`` and its execution orders.

The graph is the one source of truth for topology: validation, ordering, :func:`collect_nodes`, pictures
and plans all read it. Edges go from producer to consumer and carry ``out_port`` (the producer's output
index), ``in_port`` (the consumer's input or condition index), ``shape`` and ``condition`` (True when the
edge feeds a condition). It is a multigraph because one node may feed another through several ports.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

import networkx as nx

from freia_graph.framework.collector import garbage_collector_paused
from freia_graph.framework.nodes import BaseNode

__all__ = ["collect_nodes", "build_graph", "forward_order", "reverse_order", "garbage_collector_paused"]


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


def _edges(node_list: Sequence[BaseNode]) -> nx.MultiDiGraph:
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(node_list)
    for node in node_list:
        for condition, ports in ((False, node.inputs), (True, node.conditions)):
            for in_port, (source, out_port) in enumerate(ports):
                graph.add_edge(source, node, key=(condition, in_port), out_port=out_port, in_port=in_port,
                               shape=source.output_dims[out_port], condition=condition)
    return graph


def _check_ports_consumed_once(graph: nx.MultiDiGraph) -> None:
    counts: dict[tuple[int, int], int] = {}
    for source, _, data in graph.edges(data=True):
        if not data["condition"]:
            key = (id(source), data["out_port"])
            counts[key] = counts.get(key, 0) + 1
    for node in graph.nodes:
        if node.kind in ("condition", "feed_forward"):
            continue  # condition values may feed any number of nodes
        for port, shape in enumerate(node.output_dims):
            count = counts.get((id(node), port), 0)
            if count == 0:
                raise ValueError(f"{_port_name(node, port)} (shape {shape}) is not consumed by any node; "
                                 "connect it to a node or an OutputNode")
            if count > 1:
                readers = [f"'{consumer.name}' (input {data['in_port']})"
                           for _, consumer, data in graph.out_edges(node, data=True) if data["out_port"] == port]
                raise ValueError(f"{_port_name(node, port)} (shape {shape}) is consumed {count} times, "
                                 f"by {', '.join(readers)}; each output must be consumed exactly once "
                                 "(use Split to use a tensor in several places)")


def _check_acyclic(graph: nx.MultiDiGraph, node_list: Sequence[BaseNode]) -> None:
    if len(forward_order(graph, node_list)) == len(node_list):
        return
    cycle = nx.find_cycle(graph)
    names = " -> ".join(f"'{edge[0].name}'" for edge in cycle) + f" -> '{cycle[0][0].name}'"
    raise ValueError(f"the graph has a cycle: {names}")


def _reverse_edges(graph: nx.MultiDiGraph) -> list[tuple[BaseNode, BaseNode]]:
    """The dependencies when running backwards.

    Invertible edges flip. A condition edge from a ConditionNode or FeedForwardNode keeps its direction;
    one from a port of the flow (a feed-forward node reading the flow) starts, in reverse, at the node that
    recovers that port: its consumer, inverted.
    """
    recovered_by = {(id(source), data["out_port"]): target
                    for source, target, data in graph.edges(data=True) if not data["condition"]}
    edges = []
    for source, target, data in graph.edges(data=True):
        if not data["condition"]:
            edges.append((target, source))
        elif source.kind in ("condition", "feed_forward"):
            edges.append((source, target))
        else:
            edges.append((recovered_by[(id(source), data["out_port"])], target))
    return edges


def _check_acyclic_in_reverse(graph: nx.MultiDiGraph, node_list: Sequence[BaseNode]) -> None:
    reads_the_flow = any(data["condition"] and source.kind not in ("condition", "feed_forward")
                         for source, _, data in graph.edges(data=True))
    if not reads_the_flow:
        return  # then reverse dependencies form a cycle only where forward ones do
    edges = _reverse_edges(graph)
    if len(_sorted_by_position(edges, node_list)) == len(node_list):
        return
    cycle = nx.find_cycle(nx.DiGraph(edges))
    names = " -> ".join(f"'{edge[0].name}'" for edge in cycle) + f" -> '{cycle[0][0].name}'"
    raise ValueError(f"the graph has a cycle when run in reverse: {names}. A FeedForwardNode reads a port that, "
                     "in reverse, exists only after the node it (directly or through others) conditions has been "
                     "inverted; condition that node on something computed before it")


def _check_inputs_reach_outputs(graph: nx.MultiDiGraph) -> None:
    for node in graph.nodes:
        if node.kind == "input" and not any(d.kind == "output" for d in nx.descendants(graph, node)):
            raise ValueError(f"InputNode '{node.name}' is not connected to any OutputNode")


def build_graph(node_list: Sequence[BaseNode]) -> nx.MultiDiGraph:
    """Validate the nodes and gather them into a graph; every error names the node, port and shapes.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> graph = build_graph([x, z])
        >>> [(u.name, v.name, d["shape"]) for u, v, d in graph.edges(data=True)]
        [('x', 'z', (4,))]
    """
    _check_node_list(node_list)
    graph = _edges(node_list)
    _check_acyclic(graph, node_list)
    _check_ports_consumed_once(graph)
    _check_acyclic_in_reverse(graph, node_list)
    _check_inputs_reach_outputs(graph)
    return graph


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


def forward_order(graph: nx.MultiDiGraph, node_list: Sequence[BaseNode]) -> list[BaseNode]:
    """A deterministic topological order: among the nodes that are ready, the earliest in ``node_list`` first.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [node.name for node in forward_order(build_graph([z, x]), [z, x])]
        ['x', 'z']
    """
    return _sorted_by_position(graph.edges(), node_list)


def reverse_order(graph: nx.MultiDiGraph, node_list: Sequence[BaseNode]) -> list[BaseNode]:
    """The order for running the graph backwards.

    Invertible edges flip direction; condition edges keep theirs, because conditions (and the
    feed-forward nodes computing them) must be known before the nodes they condition are inverted. A
    feed-forward node reading a port of the flow runs once the node consuming that port is inverted.

    Example:
        >>> from freia_graph.framework import InputNode, OutputNode
        >>> x = InputNode(4, name="x"); z = OutputNode(x, name="z")
        >>> [node.name for node in reverse_order(build_graph([x, z]), [x, z])]
        ['z', 'x']
    """
    return _sorted_by_position(_reverse_edges(graph), node_list)
