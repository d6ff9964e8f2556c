"""SVG drawings of graphs, written by hand from our own layout: deterministic bytes, no dependencies."""

from __future__ import annotations

import importlib
import shutil
from typing import Any
from xml.sax.saxutils import escape

from freia_graph.framework.graph import garbage_collector_paused

from .layout import MARGIN, Badge, Box, Layout, Route, label_box, layout_of, path_commands
from .style import (
    CONDITION_EDGE_COLOR,
    DATA_EDGE_COLOR,
    FONT_FAMILY,
    KIND_STYLES,
    printable,
)

__all__ = ["to_svg", "render_svg", "graphviz_available"]

_ATTRIBUTE_ENTITIES = {'"': "&quot;", "\n": "&#10;"}


def _text(value: object) -> str:
    return escape(printable(value))


def _attribute(value: object) -> str:
    return escape(printable(value), _ATTRIBUTE_ENTITIES)


def _number(value: float) -> str:
    text = f"{value + 0.0:.1f}"
    text = "0.0" if text == "-0.0" else text
    return text.removesuffix(".0")


def _path_data(route: Route, direction: str) -> str:
    (x, y) = route.points[0]
    parts = [f"M{_number(x)},{_number(y)}"]
    for command, points in path_commands(route, direction):
        parts.append(command + " ".join(f"{_number(px)},{_number(py)}" for px, py in points))
    return " ".join(parts)


def _svg_edge(route: Route, direction: str) -> list[str]:
    color = CONDITION_EDGE_COLOR if route.condition else DATA_EDGE_COLOR
    marker = "fg-arrow-condition" if route.condition else "fg-arrow"
    dashes = ' stroke-dasharray="5 3"' if route.condition else ""
    kind = "edge condition" if route.condition else "edge"
    lines = [
        f'<g class="{kind}" data-source="{_attribute(route.source)}" data-target="{_attribute(route.target)}">',
        f'<path d="{_path_data(route, direction)}" fill="none" stroke="{color}" stroke-width="1.4"{dashes} '
        f'marker-end="url(#{marker})"/>',
    ]
    if route.label:
        # a white rectangle behind the text, not a text stroke: every renderer draws rectangles
        left, top, width, height = label_box(route)
        lines += [
            f'<rect class="label-background" x="{_number(left)}" y="{_number(top)}" width="{_number(width)}" '
            f'height="{_number(height)}" rx="2" fill="#ffffff" fill-opacity="0.9"/>',
            f'<text x="{_number(route.label_x)}" y="{_number(route.label_y)}" '
            f'text-anchor="{route.label_anchor}" font-size="10" fill="#37474f">{_text(route.label)}</text>',
        ]
    return lines + ["</g>"]


def _svg_rect(box: Box, dx: float, dy: float, fill: str, stroke: str, extra: str = "") -> str:
    style = KIND_STYLES.get(box.kind, KIND_STYLES["unknown"])
    radius = {"pill": box.height / 2, "round": 6.0, "square": 2.0}[style.rounding]
    return (
        f'<rect x="{_number(box.x - box.width / 2 + dx)}" y="{_number(box.y - box.height / 2 + dy)}" '
        f'width="{_number(box.width)}" height="{_number(box.height)}" rx="{_number(radius)}" '
        f'fill="{fill}" stroke="{stroke}"{extra}/>'
    )


def _svg_badge(badge: Badge) -> list[str]:
    return [
        f"<g><title>{_text(badge.tooltip)}</title>",
        f'<rect class="badge" x="{_number(badge.x - badge.width / 2)}" y="{_number(badge.y - badge.height / 2)}" '
        f'width="{_number(badge.width)}" height="{_number(badge.height)}" rx="{_number(badge.height / 2)}" '
        f'fill="{badge.color}"/>',
        f'<text x="{_number(badge.x)}" y="{_number(badge.y + 3.2)}" text-anchor="middle" font-size="9" '
        f'font-weight="bold" fill="#ffffff">{_text(badge.text)}</text>',
        "</g>",
    ]


def _svg_node(box: Box) -> list[str]:
    style = KIND_STYLES.get(box.kind, KIND_STYLES["unknown"])
    width = 3.0 if box.highlighted else 1.5
    extra = f' stroke-width="{_number(width)}"' + (' stroke-dasharray="4 2"' if style.dashed else "")
    kind = box.kind + (" group" if box.stacked else "") + (" highlighted" if box.highlighted else "")
    lines = [f'<g class="node {_attribute(kind)}" data-name="{_attribute(box.key)}">',
             f"<title>{_text(box.tooltip)}</title>"]
    if box.stacked:
        lines += [_svg_rect(box, d, d, style.fill, style.stroke, ' stroke-width="1"') for d in (6.0, 3.0)]
    lines.append(_svg_rect(box, 0.0, 0.0, style.fill, style.stroke, extra))
    for line, x, y in box.text_positions():
        weight = ' font-weight="bold"' if line.bold else ""
        lines.append(
            f'<text x="{_number(x)}" y="{_number(y)}" text-anchor="middle" font-size="{_number(line.size)}"'
            f'{weight} fill="{line.color}">{_text(line.text)}</text>'
        )
    for badge in box.badges:
        lines += _svg_badge(badge)
    return lines + ["</g>"]


def _marker(name: str, color: str) -> str:
    return (
        f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        f'orient="auto"><path d="M0,1 L10,5 L0,9 z" fill="{color}"/></marker>'
    )


def render_svg(layout: Layout) -> str:
    """The SVG text of a finished layout (see :func:`to_svg`)."""
    width, height = _number(layout.width), _number(layout.height)
    lines = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="freia-graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="{FONT_FAMILY}">',
        "<defs>",
        _marker("fg-arrow", DATA_EDGE_COLOR),
        _marker("fg-arrow-condition", CONDITION_EDGE_COLOR),
        "</defs>",
        f'<rect class="background" width="{width}" height="{height}" fill="#ffffff"/>',
        '<g class="edges">',
    ]
    for route in layout.routes:
        lines += _svg_edge(route, layout.direction)
    lines += ["</g>", '<g class="nodes">']
    for box in layout.boxes:
        lines += _svg_node(box)
    lines.append("</g>")
    if layout.legend:
        lines.append(f'<text class="legend" x="{_number(MARGIN)}" y="{_number(layout.legend_y)}" font-size="10" '
                     f'fill="#616161">{_text(layout.legend)}</text>')
    return "\n".join(lines + ["</svg>"]) + "\n"


def graphviz_available() -> bool:
    """Whether the optional Graphviz backend can run: the ``graphviz`` package and the ``dot`` binary."""
    try:
        importlib.import_module("graphviz")
    except ImportError:
        return False
    return shutil.which("dot") is not None


def _graphviz_svg(inn: Any, options: dict) -> str:
    from .export import to_dot
    from .layout import LayoutOptions

    checked = LayoutOptions(**options)
    source = to_dot(inn, checked.direction, checked.collapse, checked.min_repeats)
    return importlib.import_module("graphviz").Source(source).pipe(format="svg", encoding="utf-8")


def to_svg(inn: Any, backend: str = "builtin", **options: Any) -> str:
    """Draw a graph as SVG text.

    The layout is our own (layers, barycenter crossing reduction, port-aligned coordinates; see
    :mod:`freia_graph.viz.layout`), so the same graph always gives the same bytes. Nodes are styled by
    kind: inputs green and outputs red (rounded ends), conditions orange (dashed), invertible blocks blue,
    feed-forward condition networks purple; a collapsed run looks like a stack of cards. Each node has a
    tooltip with its shapes and parameter count. A condition shared by many nodes is drawn as a coloured
    badge on each consumer (its source carries ``→N``, the number of consumers) instead of N edges; a
    line of legend under the drawing and each badge's tooltip say so. A drawing much deeper than broad
    (a long chain drawn expanded) is wrapped into several columns.

    Args:
        inn: a ``GraphINN``, ``SequenceINN``, node or list of nodes, or a graph from
            :func:`freia_graph.viz.to_networkx`.
        backend: ``"builtin"`` (default); ``"graphviz"`` (Graphviz's ``dot`` via the ``graphviz``
            package; raises RuntimeError where either is missing); or ``"auto"`` (Graphviz where both
            are present, else built in).
        **options: ``direction`` (``"TB"`` or ``"LR"``), ``collapse`` (True: draw long repeated runs
            as one node), ``min_repeats`` (3), ``conditions`` (``"auto"``, ``"badges"`` or ``"edges"``),
            ``badge_threshold`` (3), ``params`` (True), ``shapes`` (True), ``highlight`` (node names),
            ``wrap`` (True);
            see :class:`freia_graph.viz.layout.LayoutOptions`.

    Returns:
        The SVG document as a string.

    Example:
        >>> import freia_graph.framework as Ff, freia_graph.modules as Fm
        >>> x = Ff.InputNode(4, name="x")
        >>> perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="perm")
        >>> inn = Ff.GraphINN([x, perm, Ff.OutputNode(perm, name="z")])
        >>> svg = to_svg(inn, direction="LR")
        >>> svg.startswith("<svg"), svg.count('class="node '), svg == to_svg(inn, direction="LR")
        (True, 3, True)
    """
    if backend not in ("builtin", "graphviz", "auto"):
        raise ValueError(f"backend must be 'builtin', 'graphviz' or 'auto', got {backend!r}")
    if backend == "graphviz" and not graphviz_available():
        raise RuntimeError("backend='graphviz' needs the graphviz Python package and the dot binary")
    if backend != "builtin" and graphviz_available():
        return _graphviz_svg(inn, options)
    with garbage_collector_paused():
        return render_svg(layout_of(inn, options))
