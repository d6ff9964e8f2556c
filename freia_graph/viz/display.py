"""Text summaries and the Jupyter display of graphs, sequences and nodes. Nothing here ever raises.

The framework's classes call these lazily (``freia_graph.viz`` is not imported with the framework)::

    def _repr_mimebundle_(self, include=None, exclude=None):
        from freia_graph.viz.display import mimebundle
        return mimebundle(self, include, exclude)
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, NamedTuple, TypeVar

from freia_graph.framework.graph import garbage_collector_paused

from .export import count_parameters, node_attributes, to_networkx
from .style import format_shape, format_shapes

__all__ = ["summary", "mimebundle", "visible", "MAX_ROWS"]

T = TypeVar("T")


def _guarded(compute: Callable[[], T], fallback: Callable[[], T]) -> T:
    try:
        return compute()
    except Exception:  # display must never break a notebook or a print
        return fallback()


def _plain(obj: Any) -> str:
    def describe_error() -> str:
        return f"<{type(obj).__name__} object (no summary: the object could not be read)>"

    return _guarded(lambda: object.__repr__(obj), describe_error)


MAX_ROWS = 60  # a summary shows at most this many node rows by default: the first ones and the last TAIL_ROWS
TAIL_ROWS = 10
MAX_CELL = 60  # characters of one cell
MAX_SOURCES = 4  # sources listed in an inputs or conditions cell


def summary(obj: Any, max_rows: int | None = MAX_ROWS) -> str:
    """A text summary: a table of nodes, modules, shapes and parameters for a ``GraphINN`` or
    ``SequenceINN``; one line for a node. Never raises (falls back to a plain description).

    Large graphs stay readable and fast: beyond ``max_rows`` nodes the table shows the first and the
    last ones and says how many it left out; a cell lists at most four sources and 60 characters;
    control characters in names are shown escaped (``\\x1b``), so printing cannot drive the terminal.

    Args:
        obj: a ``GraphINN``, ``SequenceINN``, node, list of nodes or graph from ``to_networkx``.
        max_rows: the most node rows to show; None shows them all.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="perm")
        >>> print(summary(perm))
        Node 'perm' (invertible, PermuteRandom): inputs x (4,); outputs (4,); 0 parameters
        >>> print(summary(Ff.GraphINN([x, perm, Ff.OutputNode(perm, name="z")])))
        GraphINN: 3 nodes (1 input, 0 conditions, 1 output), 0 parameters
         #  name  kind        module         inputs  conditions  shapes        params
         0  x     input       -              -       -           → (4,)        -
         1  perm  invertible  PermuteRandom  x       -           (4,) → (4,)   0
         2  z     output      -              perm    -           (4,) →        -
        >>> print(summary(object()).startswith("<object object"))
        True
    """
    if _is_single_node(obj):
        return _guarded(lambda: _node_line(obj), lambda: _plain(obj))
    with garbage_collector_paused():
        return _guarded(lambda: _table(obj, max_rows), lambda: _plain(obj))


def _is_single_node(obj: Any) -> bool:
    return _guarded(lambda: all(hasattr(obj, a) for a in ("kind", "inputs", "conditions")), lambda: False)


def visible(text: object) -> str:
    """``str(text)`` with control and other unprintable characters written as escapes.

    Example:
        >>> print(visible("red" + chr(27) + "[31m"))
        red\\x1b[31m
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _cell(text: str) -> str:
    text = visible(text)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def _listed(names: list[str], count: int | None = None) -> str:
    """Names, comma separated, at most MAX_SOURCES of them (``count``: how many there are in all)."""
    count = len(names) if count is None else count
    if count > MAX_SOURCES:
        names = names[:MAX_SOURCES - 1] + [f"… +{count - MAX_SOURCES + 1} more"]
    return ", ".join(names) or "-"


def _reference(node: Any, port: int) -> str:
    outputs = len(getattr(node, "output_dims", None) or [])
    return str(node.name) + (f".out{port}" if outputs > 1 else "")


def _node_line(node: Any) -> str:
    module = node.module if node.module is not None else getattr(node, "module_type", None)
    module_name = (module.__name__ if isinstance(module, type) else type(module).__name__) if module else None
    kind = f"{node.kind}, {module_name}" if module_name else node.kind
    parts = []
    for label, ports in (("inputs", node.inputs), ("conditions", node.conditions)):
        if ports:
            parts.append(label + " " + _listed([
                f"{visible(_reference(source, port))} {format_shape(tuple(source.output_dims[port]))}"
                for source, port in ports
            ]))
    if node.output_dims:
        parts.append("outputs " + format_shapes([tuple(shape) for shape in node.output_dims]))
    parameters = sum(p.numel() for p in module.parameters()) if node.module is not None else 0
    parts.append(f"{parameters:,} parameters")
    return f"{type(node).__name__} {visible(repr(node.name))} ({kind}): " + "; ".join(parts)


class _Rows(NamedTuple):
    """What a table needs: where the graph came from, every node's kind, the parameter total, and the
    cells of the i-th node (declaration order), computed only for the rows shown."""

    source: str
    kinds: list[str]
    parameters: int
    cells: Callable[[int], list[str]]


def _shapes(shapes: list) -> str:
    """At most MAX_SOURCES shapes (the cell is cut at MAX_CELL characters anyway)."""
    return format_shapes(shapes[:MAX_SOURCES]) + (" …" if len(shapes) > MAX_SOURCES else "")


def _cells(data: dict, inputs: str, conditions: str) -> list[str]:
    arrow_in = _shapes(data["input_dims"]) + " " if data["input_dims"] else ""
    arrow_out = " " + _shapes(data["output_dims"]) if data["output_dims"] else ""
    has_module = data["kind"] in ("invertible", "feed_forward")
    return [
        str(data["index"]), _cell(data["name"]), data["kind"], _cell(data["module"] or "-"),
        _cell(inputs), _cell(conditions), _cell(f"{arrow_in}→{arrow_out}"),
        f"{data['params']:,}" if has_module else "-",
    ]


def _ports(ports: list) -> str:
    return _listed([visible(_reference(*port)) for port in ports[:MAX_SOURCES]], len(ports))


def _rows_of_nodes(nodes: list, source: str) -> _Rows:
    """Straight from the node objects: no networkx graph of a possibly huge model is built."""

    def cells(index: int) -> list[str]:
        node = nodes[index]
        return _cells(node_attributes(node, index), _ports(node.inputs), _ports(node.conditions))

    kinds = [getattr(node, "kind", "unknown") for node in nodes]
    parameters = sum(count_parameters(node.module) for node in nodes if node.module is not None)
    return _Rows(source, kinds, parameters, cells)


def _sources(graph, key: str, condition: bool) -> list[str]:
    edges = sorted((d["in_port"], u, d["out_port"]) for u, _, d in graph.in_edges(key, data=True)
                   if d["condition"] == condition)
    names = []
    for _, source, port in edges:
        outputs = len(graph.nodes[source]["output_dims"])
        names.append(visible(graph.nodes[source]["name"] + (f".out{port}" if outputs > 1 else "")))
    return names


def _rows_of_graph(graph) -> _Rows:
    nodes = sorted(graph.nodes(data=True), key=lambda item: item[1]["index"])

    def cells(index: int) -> list[str]:
        key, data = nodes[index]
        return _cells(data, _listed(_sources(graph, key, False)), _listed(_sources(graph, key, True)))

    kinds = [data["kind"] for _, data in nodes]
    return _Rows(graph.graph.get("source", "graph"), kinds, sum(data["params"] for _, data in nodes), cells)


def _rows(obj: Any) -> _Rows:
    if hasattr(obj, "node_list") and hasattr(obj, "graph"):
        return _rows_of_nodes(list(obj.node_list), "GraphINN")
    return _rows_of_graph(to_networkx(obj))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _table(obj: Any, max_rows: int | None) -> str:
    found = _rows(obj)
    count, kinds = len(found.kinds), found.kinds
    title = (f"{found.source}: {count} nodes ({_plural(kinds.count('input'), 'input')}, "
             f"{_plural(kinds.count('condition'), 'condition')}, {_plural(kinds.count('output'), 'output')}), "
             f"{found.parameters:,} parameters")
    if max_rows is None or count <= max_rows:
        shown, gap = list(range(count)), count
    else:
        tail = min(TAIL_ROWS, max_rows // 2)
        shown, gap = [*range(max_rows - tail), *range(count - tail, count)], max_rows - tail
    rows = [["#", "name", "kind", "module", "inputs", "conditions", "shapes", "params"]]
    rows += [found.cells(index) for index in shown]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" " + "  ".join(cell.rjust(w) if i == 0 else cell.ljust(w) for i, (cell, w) in
                             enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    if gap < count:
        lines.insert(1 + gap, f" … {count - len(shown):,} more nodes (summary(max_rows=None) lists them all)")
    return "\n".join([title] + lines)


def _wanted(mime: str, include: Container[str] | None, exclude: Container[str] | None) -> bool:
    return (include is None or mime in include) and (exclude is None or mime not in exclude)


def _svg(obj: Any) -> str:
    from .svg import to_svg

    if _is_single_node(obj):
        return to_svg(obj, highlight=(str(obj.name),))
    return to_svg(obj)


def mimebundle(obj: Any, include: Container[str] | None = None, exclude: Container[str] | None = None) -> dict:
    """The Jupyter display of a graph, sequence or node: ``image/svg+xml`` (a node is drawn within its
    graph, highlighted) and a ``text/plain`` summary. Never raises: without a picture, text only.

    Args:
        obj: a ``GraphINN``, ``SequenceINN``, node, or anything :func:`freia_graph.viz.to_svg` accepts.
        include: MIME types wanted (all when None), as IPython passes them.
        exclude: MIME types not wanted.

    Returns:
        A dict from MIME type to content.

    Example:
        >>> import freia_graph.framework as Ff
        >>> x = Ff.InputNode(4, name="x")
        >>> sorted(mimebundle(Ff.GraphINN([x, Ff.OutputNode(x, name="z")])))
        ['image/svg+xml', 'text/plain']
        >>> sorted(mimebundle(object()))
        ['text/plain']
    """
    bundle = {}
    if _wanted("image/svg+xml", include, exclude):
        picture = _guarded(lambda: _svg(obj), lambda: None)
        if picture is not None:
            bundle["image/svg+xml"] = picture
    if _wanted("text/plain", include, exclude):
        bundle["text/plain"] = summary(obj)
    return bundle
