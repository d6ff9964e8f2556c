"""A drawing of a graph, computed in pure Python (no Graphviz): boxes sized to their labels, placed in
layers by :mod:`freia_graph.viz.layered`, edges routed as curves with shape labels.

The graph is first simplified (see :mod:`freia_graph.viz.simplify`): long repeated runs collapse into one
node and widely shared conditions become badges. Placement works along two abstract axes, *breadth*
(within a layer) and *depth* (across layers), mapped to x and y for top-to-bottom (``"TB"``) or
left-to-right (``"LR"``) drawings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .layered import Arrangement, Chain, arrange
from .simplify import badge_conditions, cap_nodes, collapse_runs
from .style import BADGE_COLORS, format_count, format_shapes, text_width
from .wrap import Wrapping, wrap_layers

__all__ = [
    "LayoutOptions", "Layout", "Box", "Route", "Badge", "TextLine", "BADGE_LEGEND", "compute_layout", "path_commands",
    "label_box",
]

MARGIN = 16.0
PAD_X, PAD_Y = 10.0, 6.0
LABEL_SIZE, BADGE_SIZE, BADGE_HEIGHT = 10.0, 9.0, 14.0
TOOLTIP_LINE = 160  # characters: a concat of thousands of inputs would otherwise list every shape


@dataclass(frozen=True)
class LayoutOptions:
    """Options of a drawing (all keyword arguments of :func:`freia_graph.viz.to_svg`).

    Args:
        direction: ``"TB"`` (top to bottom) or ``"LR"`` (left to right).
        collapse: draw long repeated runs of blocks as one node (``"A → B ×24"``).
        min_repeats: how many repetitions of a pattern make a run worth collapsing.
        conditions: ``"auto"`` (badges for conditions shared by at least ``badge_threshold`` nodes,
            edges otherwise), ``"badges"`` or ``"edges"``.
        badge_threshold: see ``conditions``.
        params: show parameter counts.
        shapes: label edges with the shapes they carry.
        highlight: names of nodes to draw with a thick border.
        wrap: cut a drawing much deeper than broad (a long chain drawn expanded) into several columns
            (rows for ``"LR"``); see :mod:`freia_graph.viz.wrap`.
        max_nodes: the most nodes drawn (after collapsing); the rest become one "… N more nodes" node,
            so that a picture of a huge graph stays small and quick. None draws everything.
    """

    direction: str = "TB"
    collapse: bool = True
    min_repeats: int = 3
    conditions: str = "auto"
    badge_threshold: int = 3
    params: bool = True
    shapes: bool = True
    highlight: tuple[str, ...] = ()
    wrap: bool = True
    max_nodes: int | None = 500

    def __post_init__(self) -> None:
        if self.max_nodes is not None and (not isinstance(self.max_nodes, int) or self.max_nodes < 1):
            raise ValueError(f"max_nodes must be a positive int or None, got {self.max_nodes!r}")
        if self.direction not in ("TB", "LR"):
            raise ValueError(f"direction must be 'TB' or 'LR', got {self.direction!r}")
        if self.conditions not in ("auto", "badges", "edges"):
            raise ValueError(f"conditions must be 'auto', 'badges' or 'edges', got {self.conditions!r}")
        if not isinstance(self.min_repeats, int) or self.min_repeats < 2:
            raise ValueError(f"min_repeats must be an int of at least 2, got {self.min_repeats!r}")
        if not isinstance(self.badge_threshold, int) or self.badge_threshold < 1:
            raise ValueError(f"badge_threshold must be a positive int, got {self.badge_threshold!r}")
        if isinstance(self.highlight, str):
            object.__setattr__(self, "highlight", (self.highlight,))


@dataclass(frozen=True)
class TextLine:
    """One line of a node's label."""

    text: str
    size: float
    bold: bool = False
    color: str = "#212121"

    @property
    def height(self) -> float:
        return self.size * 1.3


@dataclass
class Badge:
    """A small coloured tag naming a condition (on a consumer) or its fan-out (on the source); ``tooltip``
    says what it means."""

    text: str
    color: str
    tooltip: str = ""
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = BADGE_HEIGHT


@dataclass
class Box:
    """A laid-out node: ``x``, ``y`` are its centre; ``stacked`` marks a collapsed run."""

    key: str
    kind: str
    lines: list[TextLine]
    tooltip: str
    width: float
    height: float
    x: float = 0.0
    y: float = 0.0
    badges: list[Badge] = field(default_factory=list)
    stacked: bool = False
    highlighted: bool = False

    def text_positions(self) -> list[tuple[TextLine, float, float]]:
        """Each line with the x of its centre and the y of its baseline."""
        top = self.y - self.height / 2 + _top_padding(self.badges)
        positions = []
        for line in self.lines:
            positions.append((line, self.x, top + line.size * 1.02))
            top += line.height
        return positions


@dataclass
class Route:
    """An edge as points; segments alternate between curves (across a gap) and straight runs (through
    a layer), starting with a curve; ``label`` sits at ``label_x``, ``label_y``."""

    source: str
    target: str
    points: list[tuple[float, float]]
    condition: bool
    label: str = ""
    label_x: float = 0.0
    label_y: float = 0.0
    label_anchor: str = "start"


@dataclass
class Layout:
    """A finished drawing: boxes and routes in pixels, the canvas size, and a line of legend (explaining
    the badges, if any) whose baseline is at ``legend_y``."""

    boxes: list[Box]
    routes: list[Route]
    width: float
    height: float
    direction: str
    legend: str = ""
    legend_y: float = 0.0


def _top_padding(badges: list[Badge]) -> float:
    return PAD_Y + (BADGE_HEIGHT / 2 if badges else 0.0)


# ---------------------------------------------------------------------------------------------- boxes


def _label_lines(data: dict, options: LayoutOptions) -> list[TextLine]:
    grey = "#616161"
    if data.get("members"):
        lines = [TextLine(data["module"], 12, True), TextLine(data["name"], 11, color=grey)]
    elif data["kind"] in ("input", "condition"):
        lines = [TextLine(data["name"], 12, True), TextLine(format_shapes(data["output_dims"]), 11)]
    elif data["kind"] == "output":
        lines = [TextLine(data["name"], 12, True), TextLine(format_shapes(data["input_dims"]), 11)]
    else:
        lines = [TextLine(data["name"], 12, True), TextLine(data["module"] or data["kind"], 11)]
    if options.params and data["params"] > 0:
        lines.append(TextLine(f"{format_count(data['params'])} params", 10, color=grey))
    return lines


def _tooltip(data: dict) -> str:
    lines = [f"{data['name']} ({data['kind']})"]
    if data["module"]:
        lines.append(f"module: {data['module']}")
    lines += [
        f"parameters: {data['params']:,}",
        f"inputs: {format_shapes(data['input_dims'][:TOOLTIP_LINE // 4])}",
        f"conditions: {format_shapes(data['condition_dims'][:TOOLTIP_LINE // 4])}",
        f"outputs: {format_shapes(data['output_dims'][:TOOLTIP_LINE // 4])}",
    ]
    if data.get("members"):
        shown = data["members"][:12]
        lines.append("members: " + ", ".join(shown) + (", …" if len(data["members"]) > 12 else ""))
    return "\n".join(line if len(line) <= TOOLTIP_LINE else line[:TOOLTIP_LINE - 1] + "…" for line in lines)


def _make_box(key: str, data: dict, badges: list[Badge], options: LayoutOptions) -> Box:
    lines = _label_lines(data, options)
    width = max(text_width(line.text, line.size, line.bold) for line in lines) + 2 * PAD_X
    height = sum(line.height for line in lines) + PAD_Y + _top_padding(badges)
    if data["kind"] in ("input", "output"):
        width += height * 0.4  # room for the rounded ends
    for badge in badges:
        badge.width = text_width(badge.text, BADGE_SIZE, True) + 8
    # badges sit left of the centre, where the data input arrives
    width = max(width, 56.0, 2 * (8 + sum(b.width + 3 for b in badges) + 12))
    return Box(key, data["kind"], lines, _tooltip(data), width, height, badges=badges,
               stacked=bool(data.get("members")), highlighted=data["name"] in options.highlight)


def _badges(view: nx.MultiDiGraph, consumers: dict[str, list[str]], fan_out: dict[str, int]) -> dict:
    colors = {source: BADGE_COLORS[i % len(BADGE_COLORS)] for i, source in enumerate(fan_out)}
    badges: dict[str, list[Badge]] = {key: [] for key in view.nodes}
    for source, count in fan_out.items():
        name = view.nodes[source]["name"]
        tooltip = f"{name} is a condition of {count} nodes; each carries a badge of this colour instead of an edge"
        badges[source].append(Badge(f"→{count}", colors[source], tooltip))
    for consumer, sources in consumers.items():
        badges[consumer] += [
            Badge(_shortened(view.nodes[source]["name"]), colors[source],
                  f"condition from {view.nodes[source]['name']} (a badge instead of an edge)")
            for source in sources
        ]
    return badges


BADGE_LEGEND = "→N: a condition used by N nodes; each of them carries a badge of its colour instead of an edge"


def _shortened(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def _layer_gaps(arrangement: Arrangement, direction: str, shapes: bool) -> list[float]:
    """Room between layers: a line of text top to bottom, the widest shape label left to right."""
    if direction == "TB":
        return [42.0 if shapes else 30.0] * len(arrangement.layers)
    widest = [0.0] * len(arrangement.layers)
    if shapes:
        for chain in arrangement.chains:
            layer = arrangement.vertices[chain.vertices[0]].layer
            widest[layer] = max(widest[layer], text_width(_shape_label(chain.data), LABEL_SIZE))
    return [max(40.0, w + 24.0) for w in widest]


def _shape_label(data: dict) -> str:
    return format_shapes([data["shape"]])


def _depths(arrangement: Arrangement, gaps: list[float]) -> list[tuple[float, float]]:
    """Start and size of each layer along the depth axis."""
    spans, start = [], 0.0
    for layer, gap in zip(arrangement.layers, gaps, strict=True):
        size = max((arrangement.vertices[v].depth for v in layer), default=0.0)
        spans.append((start, size))
        start += size + gap
    return spans


# --------------------------------------------------------------------------------------------- output


def _point(breadth: float, depth: float, direction: str) -> tuple[float, float]:
    return (breadth, depth) if direction == "TB" else (depth, breadth)


def _route(arrangement: Arrangement, chain: Chain, spans: list[tuple[float, float]], direction: str,
           wrapping: Wrapping | None) -> Route:
    """From the source's exit side through each dummy's layer to the target's entry side (round the
    column breaks of a wrapped drawing)."""
    position, points = arrangement.position, []
    for i, vertex in enumerate(chain.vertices):
        node = arrangement.vertices[vertex]
        start, size = spans[node.layer]
        if i == 0:
            points.append((position[vertex] + chain.out_offset, start + (size + node.depth) / 2))
        elif i == len(chain.vertices) - 1:
            points.append((position[vertex] + chain.in_offset, start + (size - node.depth) / 2))
        else:
            points += [(position[vertex], start), (position[vertex], start + size)]
    if wrapping is not None:
        points = wrapping.detour(points, [arrangement.vertices[vertex].layer for vertex in chain.vertices])
    return Route(chain.source, chain.target, [_point(b, d, direction) for b, d in points], chain.data["condition"])


def path_commands(route: Route, direction: str) -> list[tuple[str, list[tuple[float, float]]]]:
    """The route as ``("C", [control1, control2, end])`` curves and ``("L", [end])`` lines; curves
    leave and enter along the depth axis, so arrowheads point straight into their box."""
    commands = []
    for i, ((x0, y0), (x1, y1)) in enumerate(zip(route.points, route.points[1:], strict=False)):
        if i % 2:
            commands.append(("L", [(x1, y1)]))
        elif direction == "TB":
            middle = (y0 + y1) / 2
            commands.append(("C", [(x0, middle), (x1, middle), (x1, y1)]))
        else:
            middle = (x0 + x1) / 2
            commands.append(("C", [(middle, y0), (middle, y1), (x1, y1)]))
    return commands


def _on_curve(start: tuple[float, float], control: list[tuple[float, float]], t: float) -> tuple[float, float]:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = start, *control
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def _label_route(route: Route, text: str, direction: str, near_target: bool | None) -> None:
    """Put the label on the edge's last curve (``near_target``), its first (False), or the middle of its
    first (None)."""
    commands = path_commands(route, direction)
    if near_target:
        start, control, t = route.points[-2], commands[-1][1], 0.72
    else:
        start, control, t = route.points[0], commands[0][1], 0.5 if near_target is None else 0.28
    x, y = _on_curve(start, control, t)
    route.label = text
    if direction == "TB":
        # on the outside of the bend, so the text does not sit on its own curve
        from_right = start[0] > control[-1][0] + 4
        route.label_x, route.label_y = (x - 5 if from_right else x + 5), y + 3.5
        route.label_anchor = "end" if from_right else "start"
    else:
        route.label_x, route.label_y, route.label_anchor = x, y - 4, "middle"


def _label_place(view: nx.MultiDiGraph, fan_ins: dict[str, int], source: str, target: str,
                 condition: bool) -> bool | None:
    """Where neighbouring edges are far apart: near the target for conditions and for edges that fan
    out of their source, near the source for edges gathering into a target, else in the middle."""
    fan_out = view.out_degree(source)
    fan_in = fan_ins[target]
    if condition or (fan_out > 1 and fan_in <= 1):
        return True
    if fan_in > 1 and fan_out == 1:
        return False
    return None


def _place_badges(box: Box) -> None:
    left = box.x - box.width / 2 + 8
    for badge in box.badges:
        badge.x, badge.y = left + badge.width / 2, box.y - box.height / 2
        left += badge.width + 3


def label_box(route: Route) -> tuple[float, float, float, float]:
    """The rectangle ``(left, top, width, height)`` that an edge's label covers, with a little padding;
    renderers paint it white behind the text so the label stays readable over edges.

    Example:
        >>> label_box(Route("a", "b", [(0.0, 0.0)], False, "(4,)", 10.0, 20.0))
        (8.0, 10.5, 21.34, 13.0)
    """
    width = text_width(route.label, LABEL_SIZE)
    left = route.label_x - {"start": 0.0, "middle": 0.5, "end": 1.0}[route.label_anchor] * width
    return left - 2.0, route.label_y - LABEL_SIZE + 0.5, width + 4.0, LABEL_SIZE + 3.0


def _bounds(boxes: list[Box], routes: list[Route]) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for box in boxes:
        xs += [box.x - box.width / 2, box.x + box.width / 2 + (6 if box.stacked else 0)]
        ys += [box.y - box.height / 2 - (BADGE_HEIGHT / 2 if box.badges else 0), box.y + box.height / 2 + 6]
    for route in routes:
        xs += [x for x, _ in route.points]
        ys += [y for _, y in route.points]
        if route.label:
            left, top, width, height = label_box(route)
            xs += [left, left + width]
            ys += [top, top + height]
    return min(xs), min(ys), max(xs), max(ys)


def _translate(boxes: list[Box], routes: list[Route], dx: float, dy: float) -> None:
    for box in boxes:
        box.x, box.y = box.x + dx, box.y + dy
        for badge in box.badges:
            badge.x, badge.y = badge.x + dx, badge.y + dy
    for route in routes:
        route.points = [(x + dx, y + dy) for x, y in route.points]
        route.label_x, route.label_y = route.label_x + dx, route.label_y + dy


def _wrap(arrangement: Arrangement, spans: list[tuple[float, float]]) -> tuple[list, Wrapping | None]:
    """Wrap a deep, narrow drawing into columns: shift each layer's positions and span (see
    :mod:`freia_graph.viz.wrap`); returns the new spans and the wrapping (None when not wrapped)."""
    vertices, position = arrangement.vertices, arrangement.position
    low = min(position[v] - vertex.breadth / 2 for v, vertex in enumerate(vertices))
    high = max(position[v] + vertex.breadth / 2 for v, vertex in enumerate(vertices))
    wrapping = wrap_layers(spans, low, high)
    if wrapping is None:
        return spans, None
    for v, vertex in enumerate(vertices):
        position[v] += wrapping.breadth_shift[vertex.layer]
    return [(start + shift, size) for (start, size), shift in zip(spans, wrapping.depth_shift, strict=True)], wrapping


def _add_legend(layout: Layout, legend: str) -> None:
    """A line of text under the drawing, widening the canvas if it needs to."""
    layout.legend, layout.legend_y = legend, layout.height - MARGIN / 2 + LABEL_SIZE
    layout.height += LABEL_SIZE + MARGIN / 2
    layout.width = max(layout.width, text_width(legend, LABEL_SIZE) + 2 * MARGIN)


def _view(graph: nx.MultiDiGraph, options: LayoutOptions):
    view = collapse_runs(graph, options.min_repeats) if options.collapse else graph
    view = cap_nodes(view, options.max_nodes)
    return badge_conditions(view, options.conditions, options.badge_threshold)


def compute_layout(graph: nx.MultiDiGraph, options: LayoutOptions | None = None) -> Layout:
    """Lay out a graph in the format of :func:`freia_graph.viz.to_networkx`.

    Example:
        >>> graph = nx.MultiDiGraph()
        >>> for i, (name, kind) in enumerate([("x", "input"), ("f", "invertible"), ("z", "output")]):
        ...     graph.add_node(name, kind=kind, name=name, module="F" if kind == "invertible" else None,
        ...                    params=0, index=i, input_dims=[(4,)], condition_dims=[], output_dims=[(4,)])
        >>> nx.add_path(graph, ["x", "f", "z"], out_port=0, in_port=0, shape=(4,), condition=False)
        >>> layout = compute_layout(graph)
        >>> [(box.key, box.x == layout.boxes[0].x) for box in layout.boxes]
        [('x', True), ('f', True), ('z', True)]
    """
    options = options or LayoutOptions()
    view, consumers, fan_out = _view(graph, options)
    badges = _badges(view, consumers, fan_out)
    boxes = {key: _make_box(key, data, badges[key], options) for key, data in view.nodes(data=True)}
    if not boxes:
        return Layout([], [], 2 * MARGIN, 2 * MARGIN, options.direction)
    tall = options.direction == "TB"
    arrangement = arrange(view, {k: (b.width, b.height) if tall else (b.height, b.width) for k, b in boxes.items()})
    spans = _depths(arrangement, _layer_gaps(arrangement, options.direction, options.shapes))
    spans, wrapping = _wrap(arrangement, spans) if options.wrap else (spans, None)
    for key, vertex in arrangement.vertex_of.items():
        start, size = spans[arrangement.vertices[vertex].layer]
        boxes[key].x, boxes[key].y = _point(arrangement.position[vertex], start + size / 2, options.direction)
        _place_badges(boxes[key])
    routes = []
    fan_ins = {key: 0 for key in view}  # data edges into each node, counted once (not once per edge)
    for _, target, condition in view.edges(data="condition"):
        fan_ins[target] += not condition
    for chain in arrangement.chains:
        route = _route(arrangement, chain, spans, options.direction, wrapping)
        if options.shapes:
            place = _label_place(view, fan_ins, chain.source, chain.target, chain.data["condition"])
            _label_route(route, _shape_label(chain.data), options.direction, place)
        routes.append(route)
    left, top, right, bottom = _bounds(list(boxes.values()), routes)
    _translate(list(boxes.values()), routes, MARGIN - left, MARGIN - top)
    layout = Layout(list(boxes.values()), routes, right - left + 2 * MARGIN, bottom - top + 2 * MARGIN,
                    options.direction)
    if fan_out:
        _add_legend(layout, BADGE_LEGEND)
    return layout


def layout_of(inn: Any, options: dict) -> Layout:
    """Convenience for the renderers: convert, validate the options, lay out."""
    from .export import abbreviated_graph

    checked = LayoutOptions(**options)
    graph = abbreviated_graph(inn, checked.max_nodes, checked.min_repeats if checked.collapse else None)
    return compute_layout(graph, checked)
