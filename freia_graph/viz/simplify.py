"""Simplified views of a graph: long repeated runs collapsed into one node, conditions turned into badges.

Both functions take and return graphs in the format of :func:`freia_graph.viz.to_networkx`; the input
graph is never modified.
"""

from __future__ import annotations

import networkx as nx

__all__ = ["collapse_runs", "badge_conditions", "cap_nodes", "add_placeholder"]

_MAX_PERIOD = 4


def _data_edges(graph: nx.MultiDiGraph, key: str, out: bool) -> list:
    edges = graph.out_edges(key, data=True) if out else graph.in_edges(key, data=True)
    return [edge for edge in edges if not edge[2]["condition"]]


def _is_link(graph: nx.MultiDiGraph, key: str) -> bool:
    """Whether a node is a plain one-in, one-out invertible step that can sit inside a run."""
    data = graph.nodes[key]
    return (
        data["kind"] == "invertible"
        and len(_data_edges(graph, key, out=False)) == 1
        and graph.out_degree(key) == 1
        and len(_data_edges(graph, key, out=True)) == 1
    )


def _chains(graph: nx.MultiDiGraph) -> list[list[str]]:
    """Maximal paths of linked nodes, in declaration order."""
    links = {key for key in graph.nodes if _is_link(graph, key)}
    chains = []
    for key in sorted(links, key=lambda k: graph.nodes[k]["index"]):
        (source, _, _), = _data_edges(graph, key, out=False)
        if source in links:
            continue
        chain = [key]
        while True:
            (_, target, _), = _data_edges(graph, chain[-1], out=True)
            if target not in links:
                break
            chain.append(target)
        chains.append(chain)
    return chains


def _repeats(labels: list[str], start: int, period: int) -> int:
    pattern = labels[start:start + period]
    count = 1
    while labels[start + count * period:start + (count + 1) * period] == pattern:
        count += 1
    return count


def _runs(labels: list[str], min_repeats: int) -> list[tuple[int, int, int]]:
    """``(start, period, repeats)`` of each repeated pattern worth collapsing, greedily from the left."""
    runs, start = [], 0
    while start < len(labels):
        best = max(
            ((period * _repeats(labels, start, period), -period) for period in range(1, _MAX_PERIOD + 1)
             if start + period <= len(labels) and _repeats(labels, start, period) >= min_repeats),
            default=None,
        )
        if best is None:
            start += 1
            continue
        length, period = best[0], -best[1]
        runs.append((start, period, length // period))
        start += length
    return runs


def _group_attributes(graph: nx.MultiDiGraph, members: list[str], period: int, repeats: int) -> dict:
    first, last = graph.nodes[members[0]], graph.nodes[members[-1]]
    pattern = [graph.nodes[key]["module"] or "?" for key in members[:period]]
    condition_dims = []
    for key in members:
        condition_dims += [d for d in graph.nodes[key]["condition_dims"] if d not in condition_dims]
    return dict(
        kind="invertible",
        name=f"{first['name']} … {last['name']}",
        module=f"{' → '.join(pattern)} ×{repeats}",
        params=sum(graph.nodes[key]["params"] for key in members),
        input_dims=first["input_dims"],
        condition_dims=condition_dims,
        output_dims=last["output_dims"],
        index=first["index"],
        members=list(members),
        repeats=repeats,
    )


def _collapse(graph: nx.MultiDiGraph, members: list[str], period: int, repeats: int) -> None:
    group = f"{members[0]} … {members[-1]}"
    graph.add_node(group, **_group_attributes(graph, members, period, repeats))
    member_set = set(members)
    (source, _, into), = _data_edges(graph, members[0], out=False)
    (_, target, out_of), = _data_edges(graph, members[-1], out=True)
    graph.add_edge(source, group, **into)
    condition_sources: list[tuple[str, int]] = []
    for key in members:
        for condition_source, _, data in graph.in_edges(key, data=True):
            port = (condition_source, data["out_port"])
            if data["condition"] and condition_source not in member_set and port not in condition_sources:
                condition_sources.append(port)
                graph.add_edge(condition_source, group, **{**data, "in_port": len(condition_sources) - 1})
    graph.add_edge(group, target, **out_of)
    graph.remove_nodes_from(members)


def collapse_runs(graph: nx.MultiDiGraph, min_repeats: int = 3) -> nx.MultiDiGraph:
    """Replace each long run of a repeated pattern of blocks by a single node.

    A run is a path of one-input, one-output invertible nodes whose module classes repeat a pattern of
    one to four classes at least ``min_repeats`` times, e.g. ``GLOWCouplingBlock → PermuteRandom ×24``.
    The new node keeps the run's first input and last output edges, takes every condition edge into the
    run once, and carries ``members`` (the replaced keys), ``repeats``, and the summed ``params``.

    Example:
        >>> graph = nx.MultiDiGraph()
        >>> for i, name in enumerate(["x", "a0", "p0", "a1", "p1", "a2", "p2", "z"]):
        ...     kind = {"x": "input", "z": "output"}.get(name, "invertible")
        ...     module = {"a": "GLOWCouplingBlock", "p": "PermuteRandom"}.get(name[0])
        ...     graph.add_node(name, kind=kind, name=name, module=module, params=10, index=i,
        ...                    input_dims=[(4,)], condition_dims=[], output_dims=[(4,)])
        >>> nx.add_path(graph, list(graph.nodes), out_port=0, in_port=0, shape=(4,), condition=False)
        >>> collapsed = collapse_runs(graph)
        >>> [collapsed.nodes[key]["module"] for key in collapsed.nodes]
        [None, None, 'GLOWCouplingBlock → PermuteRandom ×3']
        >>> list(collapsed.edges)
        [('x', 'a0 … p2', 0), ('a0 … p2', 'z', 0)]
    """
    if min_repeats < 2:
        raise ValueError(f"min_repeats must be at least 2, got {min_repeats}")
    collapsed = graph.copy()
    for chain in _chains(graph):
        labels = [graph.nodes[key]["module"] or "?" for key in chain]
        for start, period, repeats in _runs(labels, min_repeats):
            _collapse(collapsed, chain[start:start + period * repeats], period, repeats)
    return collapsed


def badge_conditions(
    graph: nx.MultiDiGraph, mode: str = "auto", threshold: int = 3
) -> tuple[nx.MultiDiGraph, dict[str, list[str]], dict[str, int]]:
    """Replace the condition edges of widely shared conditions by badges.

    Args:
        graph: a graph in the format of :func:`freia_graph.viz.to_networkx`.
        mode: ``"auto"`` (badges for a source feeding conditions of at least ``threshold`` nodes),
            ``"badges"`` (every condition edge) or ``"edges"`` (none).
        threshold: the number of consumers from which ``"auto"`` uses badges.

    Returns:
        The graph without the replaced edges, the badge sources of each consumer (``{consumer: [source,
        ...]}``), and the number of consumers of each badge source (``{source: count}``).

    Example:
        >>> graph = nx.MultiDiGraph()
        >>> _ = graph.add_edges_from([("c", node, dict(condition=True)) for node in ("a", "b", "d")])
        >>> view, badges, fan_out = badge_conditions(graph)
        >>> view.number_of_edges(), badges, fan_out
        (0, {'a': ['c'], 'b': ['c'], 'd': ['c']}, {'c': 3})
    """
    if mode not in ("auto", "badges", "edges"):
        raise ValueError(f"conditions must be 'auto', 'badges' or 'edges', got {mode!r}")
    view, badges, fan_out = graph.copy(), {}, {}
    for source in graph.nodes:
        edges = [(u, v, k) for u, v, k, d in graph.out_edges(source, keys=True, data=True) if d["condition"]]
        consumers = list(dict.fromkeys(v for _, v, _ in edges))
        if not consumers or mode == "edges" or (mode == "auto" and len(consumers) < threshold):
            continue
        view.remove_edges_from(edges)
        fan_out[source] = len(consumers)
        for consumer in consumers:
            badges.setdefault(consumer, []).append(source)
    return view, badges, fan_out


def add_placeholder(graph: nx.MultiDiGraph, hidden: int, max_nodes: int, feeders: list[tuple[str, dict]]) -> str:
    """Add the node that stands for ``hidden`` nodes left out of a drawing, fed by ``feeders``
    (``(key, edge data)`` of kept nodes whose outputs went to left-out ones); returns its key."""
    key = f"… {hidden:,} more nodes"
    index = 1 + max((data["index"] for _, data in graph.nodes(data=True)), default=0)
    graph.add_node(key, kind="unknown", name=key, module=f"not drawn (max_nodes={max_nodes})", params=0,
                   input_dims=[], condition_dims=[], output_dims=[], index=index)
    for source, data in feeders:
        graph.add_edge(source, key, **{**data, "in_port": 0})
    return key


def cap_nodes(graph: nx.MultiDiGraph, max_nodes: int | None) -> nx.MultiDiGraph:
    """Keep the first ``max_nodes - 1`` nodes (declaration order); the rest become one "… N more nodes" node.

    N counts the original nodes, members of collapsed runs included. The input graph is not modified.

    Example:
        >>> graph = nx.MultiDiGraph()
        >>> for i in range(5):
        ...     graph.add_node(f"n{i}", kind="invertible", name=f"n{i}", module="F", params=0, index=i,
        ...                    input_dims=[(2,)], condition_dims=[], output_dims=[(2,)])
        >>> nx.add_path(graph, list(graph.nodes), out_port=0, in_port=0, shape=(2,), condition=False)
        >>> list(cap_nodes(graph, 3).edges)
        [('n0', 'n1', 0), ('n1', '… 3 more nodes', 0)]
    """
    if max_nodes is None or graph.number_of_nodes() <= max_nodes:
        return graph
    ordered = sorted(graph.nodes, key=lambda key: graph.nodes[key]["index"])
    kept, dropped = ordered[:max_nodes - 1], set(ordered[max_nodes - 1:])
    capped = nx.MultiDiGraph(**graph.graph)  # built in order (a subgraph view's order depends on hashing)
    capped.add_nodes_from((key, graph.nodes[key]) for key in kept)
    capped.add_edges_from((u, v, k, d) for u, v, k, d in graph.edges(keys=True, data=True)
                          if u not in dropped and v not in dropped)
    hidden = sum(len(graph.nodes[key].get("members") or [key]) for key in dropped)
    feeders = []
    for key in kept:
        edge = next((data for _, target, data in graph.out_edges(key, data=True)
                     if target in dropped and not data["condition"]), None)
        if edge is not None:
            feeders.append((key, edge))
    add_placeholder(capped, hidden, max_nodes, feeders)
    return capped
