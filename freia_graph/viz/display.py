"""Text summaries and the Jupyter display of graphs, sequences and nodes. Nothing here ever raises.

The framework's classes call these lazily (``freia_graph.viz`` is not imported with the framework)::

    def _repr_mimebundle_(self, include=None, exclude=None):
        from freia_graph.viz.display import mimebundle
        return mimebundle(self, include, exclude)
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import Any, TypeVar

from .export import to_networkx
from .style import format_shape, format_shapes

__all__ = ["summary", "mimebundle"]

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


def summary(obj: Any) -> str:
    """A text summary: a table of nodes, modules, shapes and parameters for a ``GraphINN`` or
    ``SequenceINN``; one line for a node. Never raises (falls back to a plain description).

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
    return _guarded(lambda: _table(obj), lambda: _plain(obj))


def _is_single_node(obj: Any) -> bool:
    return _guarded(lambda: all(hasattr(obj, a) for a in ("kind", "inputs", "conditions")), lambda: False)


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
            parts.append(label + " " + ", ".join(
                f"{_reference(source, port)} {format_shape(tuple(source.output_dims[port]))}" for source, port in ports
            ))
    if node.output_dims:
        parts.append("outputs " + format_shapes([tuple(shape) for shape in node.output_dims]))
    parameters = sum(p.numel() for p in module.parameters()) if node.module is not None else 0
    parts.append(f"{parameters:,} parameters")
    return f"{type(node).__name__} {node.name!r} ({kind}): " + "; ".join(parts)


def _sources(graph, key: str, condition: bool) -> str:
    edges = sorted((d["in_port"], u, d["out_port"]) for u, _, d in graph.in_edges(key, data=True)
                   if d["condition"] == condition)
    names = []
    for _, source, port in edges:
        outputs = len(graph.nodes[source]["output_dims"])
        names.append(graph.nodes[source]["name"] + (f".out{port}" if outputs > 1 else ""))
    return ", ".join(names) or "-"


def _row(graph, key: str, data: dict) -> list[str]:
    arrow_in = format_shapes(data["input_dims"]) + " " if data["input_dims"] else ""
    arrow_out = " " + format_shapes(data["output_dims"]) if data["output_dims"] else ""
    has_module = data["kind"] in ("invertible", "feed_forward")
    return [
        str(data["index"]), data["name"], data["kind"], data["module"] or "-",
        _sources(graph, key, False), _sources(graph, key, True), f"{arrow_in}→{arrow_out}",
        f"{data['params']:,}" if has_module else "-",
    ]


def _table(obj: Any) -> str:
    graph = to_networkx(obj)
    nodes = sorted(graph.nodes(data=True), key=lambda item: item[1]["index"])
    kinds = [data["kind"] for _, data in nodes]
    total = sum(data["params"] for _, data in nodes)
    title = (
        f"{graph.graph.get('source', type(obj).__name__)}: {len(nodes)} nodes ({kinds.count('input')} input"
        f"{'s' * (kinds.count('input') != 1)}, {kinds.count('condition')} condition"
        f"{'s' * (kinds.count('condition') != 1)}, {kinds.count('output')} output"
        f"{'s' * (kinds.count('output') != 1)}), {total:,} parameters"
    )
    rows = [["#", "name", "kind", "module", "inputs", "conditions", "shapes", "params"]]
    rows += [_row(graph, key, data) for key, data in nodes]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [" " + "  ".join(cell.rjust(w) if i == 0 else cell.ljust(w) for i, (cell, w) in
                             enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
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
