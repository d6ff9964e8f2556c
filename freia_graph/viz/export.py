"""Exports of a graph: a networkx graph with everything a picture needs, Graphviz DOT and Mermaid text."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import networkx as nx
from torch import nn

from .simplify import add_placeholder, collapse_runs
from .style import KIND_STYLES, format_shape, printable

__all__ = ["to_networkx", "to_dot", "to_mermaid", "abbreviated_graph", "node_attributes", "count_parameters"]

_KINDS = ("input", "condition", "invertible", "feed_forward", "output")


def to_networkx(inn: Any) -> nx.MultiDiGraph:
    """Describe a graph as a ``networkx.MultiDiGraph`` (a ``DiGraph`` that keeps parallel edges).

    There is one networkx node per declared node, keyed by its name, with the attributes ``kind``
    (``"input"``, ``"condition"``, ``"invertible"``, ``"feed_forward"`` or ``"output"``), ``name``,
    ``module`` (the module's class name, or None), ``params`` (number of parameters), ``input_dims``,
    ``condition_dims``, ``output_dims`` (lists of shape tuples) and ``index`` (declaration order).
    Each edge ``u -> v`` carries ``out_port`` (index of u's output), ``in_port`` (index of v's input, or
    of its condition), ``shape`` and ``condition`` (True when the edge feeds a condition).

    Args:
        inn: a ``GraphINN``; a ``SequenceINN`` (drawn as a chain ``input -> 0 -> 1 -> ... -> output``
            with one condition node ``c0``, ``c1``, ... per condition index); a node (its whole
            connected graph); a list of nodes; or a graph made by this function (returned unchanged).

    Returns:
        The graph; ``graph.graph["source"]`` names what it was made from.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="perm")
        >>> inn = Ff.GraphINN([x, perm, Ff.OutputNode(perm, name="z")])
        >>> graph = to_networkx(inn)
        >>> list(graph.nodes), graph.nodes["perm"]["module"]
        (['x', 'perm', 'z'], 'PermuteRandom')
        >>> [(u, v, d["shape"]) for u, v, d in graph.edges(data=True)]
        [('x', 'perm', (4,)), ('perm', 'z', (4,))]
    """
    if isinstance(inn, nx.DiGraph):
        return inn
    if isinstance(getattr(inn, "graph", None), nx.DiGraph) and hasattr(inn, "node_list"):
        return _from_graph_inn(inn)
    if hasattr(inn, "shapes") and hasattr(inn, "module_list"):
        return _from_sequence_inn(inn)
    if _is_node(inn):
        return _from_nodes(_collect_nodes(inn), "node")
    if isinstance(inn, (list, tuple)) and inn and all(_is_node(node) for node in inn):
        return _from_nodes(list(inn), "nodes")
    raise TypeError(
        f"to_networkx expects a GraphINN, a SequenceINN, a node or a list of nodes, got {type(inn).__name__}"
    )


def _is_node(obj: Any) -> bool:
    return all(hasattr(obj, attribute) for attribute in ("kind", "inputs", "conditions", "output_dims"))


def _collect_nodes(node: Any) -> list:
    from freia_graph.framework import collect_nodes

    return list(collect_nodes(node))


def _shapes(shapes: Iterable[Iterable[int]] | None) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in shape) for shape in shapes or ()]


def count_parameters(module: Any) -> int:
    """The number of parameters of a module (0 for None or anything without parameters).

    Example:
        >>> from torch import nn
        >>> count_parameters(nn.Linear(2, 3)), count_parameters(None)
        (9, 0)
    """
    if isinstance(module, nn.Module) and not module._modules:  # a leaf: skip the generators (huge graphs)
        return sum(p.numel() for p in module._parameters.values() if p is not None)
    parameters = getattr(module, "parameters", None)
    return sum(p.numel() for p in parameters()) if callable(parameters) else 0


def _class_name(module_or_type: Any) -> str | None:
    if module_or_type is None:
        return None
    return module_or_type.__name__ if isinstance(module_or_type, type) else type(module_or_type).__name__


def _unique_keys(names: list[str]) -> list[str]:
    keys, seen = [], set()
    for name in names:
        key, copy = name, 1
        while key in seen:
            copy += 1
            key = f"{name}#{copy}"
        seen.add(key)
        keys.append(key)
    return keys


def node_attributes(node: Any, index: int, counted: bool = True) -> dict:
    """The attributes :func:`to_networkx` gives a node (``params`` is 0 unless ``counted``).

    Example:
        >>> import freia_graph.framework as Ff
        >>> node_attributes(Ff.InputNode(4, name="x"), 0)["output_dims"]
        [(4,)]
    """
    kind = getattr(node, "kind", "unknown")
    module = getattr(node, "module", None)
    return dict(
        kind=kind if kind in _KINDS else "unknown",
        name=str(getattr(node, "name", None) or f"{kind}_{index}"),
        module=_class_name(module if module is not None else getattr(node, "module_type", None)),
        params=count_parameters(module) if counted else 0,
        input_dims=_shapes(getattr(node, "input_dims", None)),
        condition_dims=_shapes(getattr(node, "condition_dims", None)),
        output_dims=_shapes(getattr(node, "output_dims", None)),
        index=index,
    )


def _add_nodes(graph: nx.MultiDiGraph, nodes: list) -> dict[int, str]:
    attributes = [node_attributes(node, index) for index, node in enumerate(nodes)]
    keys = _unique_keys([a["name"] for a in attributes])
    for key, attribute in zip(keys, attributes, strict=True):
        graph.add_node(key, **attribute)
    return {id(node): key for node, key in zip(nodes, keys, strict=True)}


def _add_edges(graph: nx.MultiDiGraph, edges: list[tuple[str, str, dict]]) -> None:
    index = nx.get_node_attributes(graph, "index")
    edges.sort(key=lambda e: (index[e[1]], e[2]["condition"], e[2]["in_port"], index[e[0]], e[2]["out_port"]))
    for source, target, data in edges:
        graph.add_edge(source, target, **data)


def _edge(out_port: int, in_port: int, shape: Iterable[int], condition: bool) -> dict:
    return dict(out_port=int(out_port), in_port=int(in_port), shape=_shapes([shape])[0], condition=condition)


def _from_graph_inn(inn: Any) -> nx.MultiDiGraph:
    nodes = list(inn.node_list)
    known = {id(node) for node in nodes}
    nodes += [node for node in inn.graph.nodes if id(node) not in known]
    graph = nx.MultiDiGraph(source="GraphINN")
    key = _add_nodes(graph, nodes)
    edges = [
        (key[id(u)], key[id(v)], _edge(d["out_port"], d["in_port"], d["shape"], bool(d.get("condition"))))
        for u, v, d in inn.graph.edges(data=True)
    ]
    _add_edges(graph, edges)
    return graph


def _from_nodes(nodes: list, source: str) -> nx.MultiDiGraph:
    return _graph_of_nodes(nodes, source)[0]


def _graph_of_nodes(nodes: list, source: str) -> tuple[nx.MultiDiGraph, dict[int, str]]:
    """The graph of ``nodes`` (edges to nodes outside the list are left out), and each node's key by id."""
    graph = nx.MultiDiGraph(source=source)
    key = _add_nodes(graph, nodes)
    edges = []
    for target in nodes:
        for condition, ports in ((False, target.inputs), (True, target.conditions)):
            for in_port, (node, out_port) in enumerate(ports or ()):
                if id(node) in key:
                    shape = node.output_dims[out_port]
                    edges.append((key[id(node)], key[id(target)], _edge(out_port, in_port, shape, condition)))
    _add_edges(graph, edges)
    return graph, key


def _parallel_groups(nodes: list, min_repeats: int) -> list[list]:
    """Runs of the same block side by side: one input from the same node, one output to the same node,
    the same module class, shapes and conditions (e.g. a 1000-way split, a block per piece, a concat)."""
    groups: dict[tuple, list] = {}
    for node in nodes:
        if node.kind != "invertible" or len(node.inputs) != 1 or len(node.outputs) != 1:
            continue
        conditions = tuple((id(source), port) for source, port in node.conditions) if node.conditions else ()
        signature = (id(node.inputs[0][0]), id(node.outputs[0][0]), type(node.module), tuple(node.input_dims[0]),
                     tuple(node.output_dims[0]), conditions)
        groups.setdefault(signature, []).append(node)
    return [members for members in groups.values() if len(members) >= min_repeats]


def _nodes_of(inn: Any) -> list | None:
    if isinstance(getattr(inn, "graph", None), nx.DiGraph) and hasattr(inn, "node_list"):
        return list(inn.node_list)
    if _is_node(inn):
        return _collect_nodes(inn)
    if isinstance(inn, (list, tuple)) and inn and all(_is_node(node) for node in inn):
        return list(inn)
    return None


def abbreviated_graph(inn: Any, max_nodes: int | None, min_repeats: int | None = 3) -> nx.MultiDiGraph:
    """What a drawing of ``inn`` shows: :func:`to_networkx`, abbreviated from the node objects of a
    GraphINN or node list, without a networkx graph of the whole model: at least ``min_repeats`` blocks
    side by side (one input from the same node, one output to the same node, same class and shapes)
    become one stacked node (``"PermuteRandom ×1000 in parallel"``; None: never), and of more than
    ``max_nodes`` nodes the first ``max_nodes - 1`` are kept and the rest become one "… N more
    nodes" node.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(8, name="x")
        >>> split = Ff.Node(x, Fm.Split, {"section_sizes": [2] * 4}, name="split")
        >>> blocks = [Ff.Node(split.port(i), Fm.PermuteRandom, {"seed": i}, name=f"p{i}") for i in range(4)]
        >>> merge = Ff.Node([block.out0 for block in blocks], Fm.Concat, {}, name="merge")
        >>> inn = Ff.GraphINN([x, split, *blocks, merge, Ff.OutputNode(merge, name="z")])
        >>> graph = abbreviated_graph(inn, max_nodes=500)
        >>> [data["module"] for _, data in graph.nodes(data=True)]
        [None, 'Split', 'PermuteRandom ×4 in parallel', 'Concat', None]
    """
    nodes = _nodes_of(inn)
    groups = {} if nodes is None or min_repeats is None else {
        id(members[0]): members for members in _parallel_groups(nodes, min_repeats)}
    if nodes is None or (not groups and (max_nodes is None or len(nodes) <= max_nodes)):
        return to_networkx(inn)
    grouped = {id(member) for members in groups.values() for member in members[1:]}
    drawn = [node for node in nodes if id(node) not in grouped]
    if max_nodes is not None and len(drawn) > max_nodes:
        kept, dropped = drawn[:max_nodes - 1], drawn[max_nodes - 1:]  # and the "… N more" node
    else:
        kept, dropped = drawn, []
    graph, key = _graph_of_nodes(kept, "GraphINN" if hasattr(inn, "node_list") else "nodes")
    for members in groups.values():
        if id(members[0]) in key:
            data = graph.nodes[key[id(members[0])]]
            data.update(name=f"{data['name']} … {members[-1].name}", module=f"{data['module']} ×{len(members)} "
                        "in parallel", params=sum(count_parameters(m.module) for m in members),
                        members=[str(m.name) for m in members], repeats=len(members))
    if dropped:
        left_out = {id(node) for node in dropped}
        hidden = sum(len(groups.get(id(node), [node])) for node in dropped)
        feeders = []
        for node in kept:
            port = next((index for index, _ in enumerate(node.output_dims)
                         if any(id(consumer) in left_out for consumer, _ in node.outputs)), None)
            if port is not None and node.kind not in ("condition", "feed_forward"):
                feeders.append((key[id(node)], _edge(port, 0, node.output_dims[port], False)))
        add_placeholder(graph, hidden, max_nodes, feeders)
    return graph


def _from_sequence_inn(inn: Any) -> nx.MultiDiGraph:
    shapes = _shapes(inn.shapes)
    dims_c = _shapes(getattr(inn, "dims_c", None))
    condition_of = list(getattr(inn, "conditions", None) or [None] * len(inn.module_list))
    graph = nx.MultiDiGraph(source="SequenceINN")
    graph.add_node("input", kind="input", name="input", module=None, params=0, input_dims=[],
                   condition_dims=[], output_dims=shapes[:1], index=0)
    for k, shape in enumerate(dims_c):
        graph.add_node(f"c{k}", kind="condition", name=f"c{k}", module=None, params=0, input_dims=[],
                       condition_dims=[], output_dims=[shape], index=1 + k)
    previous = "input"
    for i, module in enumerate(inn.module_list):
        condition = condition_of[i]
        graph.add_node(str(i), kind="invertible", name=str(i), module=_class_name(module),
                       params=count_parameters(module), input_dims=[shapes[i]],
                       condition_dims=[dims_c[condition]] if condition is not None else [],
                       output_dims=[shapes[i + 1]], index=1 + len(dims_c) + i)
        graph.add_edge(previous, str(i), **_edge(0, 0, shapes[i], False))
        if condition is not None:
            graph.add_edge(f"c{condition}", str(i), **_edge(0, 0, dims_c[condition], True))
        previous = str(i)
    graph.add_node("output", kind="output", name="output", module=None, params=0, input_dims=shapes[-1:],
                   condition_dims=[], output_dims=[], index=1 + len(dims_c) + len(inn.module_list))
    graph.add_edge(previous, "output", **_edge(0, 0, shapes[-1], False))
    return graph


def _node_caption(data: dict) -> list[str]:
    if data.get("members"):
        return [data["module"], data["name"]]
    if data["kind"] in ("input", "condition"):
        return [data["name"], " ".join(map(format_shape, data["output_dims"]))]
    if data["kind"] == "output":
        return [data["name"], " ".join(map(format_shape, data["input_dims"]))]
    return [data["name"], data["module"] or data["kind"]]


def _export_graph(inn: Any, collapse: bool, min_repeats: int) -> tuple[nx.MultiDiGraph, dict[str, str]]:
    """The graph to export, and an identifier ``n0``, ``n1``, ... for each node in declaration order."""
    graph = to_networkx(inn)
    graph = collapse_runs(graph, min_repeats) if collapse else graph
    ordered = sorted(graph.nodes, key=lambda key: graph.nodes[key]["index"])
    return graph, {key: f"n{i}" for i, key in enumerate(ordered)}


def _ordered_edges(graph: nx.MultiDiGraph, ids: dict[str, str]) -> list[tuple[str, str, dict]]:
    rank = {key: i for i, key in enumerate(ids)}
    edges = graph.edges(data=True)
    return sorted(edges, key=lambda e: (rank[e[0]], rank[e[1]], e[2]["condition"], e[2]["in_port"]))


def _edge_caption(graph: nx.MultiDiGraph, source: str, data: dict) -> str:
    ports = len(graph.nodes[source]["output_dims"])
    prefix = f"out{data['out_port']} " if ports > 1 else ""
    return prefix + format_shape(data["shape"])


def _check_direction(direction: str) -> None:
    if direction not in ("TB", "LR"):
        raise ValueError(f"direction must be 'TB' (top to bottom) or 'LR' (left to right), got {direction!r}")


_DOT_SHAPES = {"input": "ellipse", "output": "ellipse", "condition": "box", "feed_forward": "box",
               "invertible": "box", "unknown": "box"}


def _dot_string(text: str) -> str:
    text = printable(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\n", "\\n") + '"'


def to_dot(inn: Any, direction: str = "TB", collapse: bool = False, min_repeats: int = 3) -> str:
    """The graph in Graphviz DOT: render it with ``dot -Tsvg`` where Graphviz is installed.

    Nodes are ``n0``, ``n1``, ... (labels carry the escaped names); condition edges are dashed.

    Args:
        inn: anything :func:`to_networkx` accepts.
        direction: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        collapse: replace long repeated runs of blocks by one node (see :func:`to_svg`).
        min_repeats: how many repetitions of a pattern make a run worth collapsing.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name='x "in"')
        >>> inn = Ff.GraphINN([x, Ff.OutputNode(x, name="z")])
        >>> print(to_dot(inn))
        digraph freia_graph {
          rankdir=TB;
          node [fontname="DejaVu Sans", fontsize=11, style=filled];
          edge [fontname="DejaVu Sans", fontsize=9];
          n0 [label="x \\"in\\"\\n(4,)", shape=ellipse, fillcolor="#e8f5e9", color="#2e7d32"];
          n1 [label="z\\n(4,)", shape=ellipse, fillcolor="#ffebee", color="#c62828"];
          n0 -> n1 [label="(4,)"];
        }
    """
    _check_direction(direction)
    graph, ids = _export_graph(inn, collapse, min_repeats)
    lines = ["digraph freia_graph {", f"  rankdir={direction};",
             '  node [fontname="DejaVu Sans", fontsize=11, style=filled];',
             '  edge [fontname="DejaVu Sans", fontsize=9];']
    for key in ids:
        data = graph.nodes[key]
        style = KIND_STYLES[data["kind"]]
        extra = ', style="filled,dashed"' if style.dashed else ""
        extra += ', style="filled,rounded"' if style.rounding == "round" and not style.dashed else ""
        label = _dot_string("\n".join(_node_caption(data)))
        lines.append(f'  {ids[key]} [label={label}, shape={_DOT_SHAPES[data["kind"]]}, '
                     f'fillcolor="{style.fill}", color="{style.stroke}"{extra}];')
    for source, target, data in _ordered_edges(graph, ids):
        extra = ', style=dashed, color="#e65100"' if data["condition"] else ""
        label = _dot_string(_edge_caption(graph, source, data))
        lines.append(f"  {ids[source]} -> {ids[target]} [label={label}{extra}];")
    return "\n".join(lines + ["}"])


_MERMAID_SHAPES = {"input": ('(["', '"])'), "output": ('(["', '"])'), "condition": ('{{"', '"}}'),
                   "feed_forward": ('[/"', '"/]'), "invertible": ('["', '"]'), "unknown": ('["', '"]')}


def _mermaid_string(text: str) -> str:
    text = re.sub(r'["#<>&|`\\]', lambda m: f"#{ord(m.group())};", printable(text))
    return text.replace("\n", "<br/>")


def to_mermaid(inn: Any, direction: str = "TB", collapse: bool = False, min_repeats: int = 3) -> str:
    """The graph as a Mermaid flowchart (renders in GitHub markdown, GitLab and many notebooks).

    Nodes are ``n0``, ``n1``, ...; characters Mermaid would read as syntax are written as entity codes
    (``#34;`` for a double quote); condition edges are dotted.

    Args:
        inn: anything :func:`to_networkx` accepts.
        direction: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        collapse: replace long repeated runs of blocks by one node (see :func:`to_svg`).
        min_repeats: how many repetitions of a pattern make a run worth collapsing.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> inn = Ff.GraphINN([x, Ff.OutputNode(x, name="z")])
        >>> print(to_mermaid(inn))
        flowchart TB
          n0(["x<br/>(4,)"])
          n1(["z<br/>(4,)"])
          n0 -->|"(4,)"| n1
          classDef input fill:#e8f5e9,stroke:#2e7d32
          classDef output fill:#ffebee,stroke:#c62828
          class n0 input
          class n1 output
    """
    _check_direction(direction)
    graph, ids = _export_graph(inn, collapse, min_repeats)
    lines = [f"flowchart {direction}"]
    for key in ids:
        data = graph.nodes[key]
        opening, closing = _MERMAID_SHAPES[data["kind"]]
        lines.append(f"  {ids[key]}{opening}{_mermaid_string(chr(10).join(_node_caption(data)))}{closing}")
    for source, target, data in _ordered_edges(graph, ids):
        arrow = "-.->" if data["condition"] else "-->"
        lines.append(f'  {ids[source]} {arrow}|"{_mermaid_string(_edge_caption(graph, source, data))}"| '
                     f"{ids[target]}")
    kinds = sorted({data["kind"] for _, data in graph.nodes(data=True)}, key=list(KIND_STYLES).index)
    for kind in kinds:
        style = KIND_STYLES[kind]
        dashes = ",stroke-dasharray:4 2" if style.dashed else ""
        lines.append(f"  classDef {kind} fill:{style.fill},stroke:{style.stroke}{dashes}")
    lines += [f"  class {ids[key]} {graph.nodes[key]['kind']}" for key in ids]
    return "\n".join(lines)
