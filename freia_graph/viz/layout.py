"""A layered drawing of a graph, computed in pure Python (no Graphviz).

The classic Sugiyama steps on the simplified view of the graph (see :mod:`freia_graph.viz.simplify`):

1. *Layers*: longest path from the inputs; condition sources move down next to their first consumer.
2. *Dummies*: an edge spanning several layers becomes a chain of dummy vertices, one per layer.
3. *Order*: barycenter sweeps, down and up, keep the order with the fewest crossings.
4. *Coordinates*: each vertex moves towards the ports it connects to, solved per layer exactly as an
   isotonic regression that keeps the order and the minimum gaps (pool-adjacent-violators).

Everything is computed along two abstract axes, *breadth* (within a layer) and *depth* (across layers),
then mapped to x and y for top-to-bottom (``"TB"``) or left-to-right (``"LR"``) drawings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .simplify import badge_conditions, collapse_runs
from .style import BADGE_COLORS, format_count, format_shapes, text_width

__all__ = ["LayoutOptions", "Layout", "Box", "Route", "Badge", "TextLine", "compute_layout"]

MARGIN = 16.0
PAD_X, PAD_Y = 10.0, 6.0
NODE_GAP, DUMMY_GAP, DUMMY_BREADTH = 24.0, 10.0, 8.0
LABEL_SIZE, BADGE_SIZE, BADGE_HEIGHT = 10.0, 9.0, 14.0
PORT_SPREAD = 0.8
SWEEPS, PLACEMENT_ROUNDS = 12, 6
CONDITION_WEIGHT, DUMMY_WEIGHT, LONELY_WEIGHT = 0.2, 2.0, 0.01


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
    """

    direction: str = "TB"
    collapse: bool = True
    min_repeats: int = 3
    conditions: str = "auto"
    badge_threshold: int = 3
    params: bool = True
    shapes: bool = True
    highlight: tuple[str, ...] = ()

    def __post_init__(self) -> None:
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
    """A small coloured tag naming a condition (on a consumer) or its fan-out (on the source)."""

    text: str
    color: str
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
    """A finished drawing: boxes and routes in pixels, and the canvas size."""

    boxes: list[Box]
    routes: list[Route]
    width: float
    height: float
    direction: str


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
        f"inputs: {format_shapes(data['input_dims'])}",
        f"conditions: {format_shapes(data['condition_dims'])}",
        f"outputs: {format_shapes(data['output_dims'])}",
    ]
    if data.get("members"):
        shown = data["members"][:12]
        lines.append("members: " + ", ".join(shown) + (", …" if len(data["members"]) > 12 else ""))
    return "\n".join(lines)


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
        badges[source].append(Badge(f"→{count}", colors[source]))
    for consumer, sources in consumers.items():
        badges[consumer] += [Badge(_shortened(view.nodes[source]["name"]), colors[source]) for source in sources]
    return badges


def _shortened(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


# --------------------------------------------------------------------------------------------- layers


def _assign_layers(view: nx.MultiDiGraph) -> dict[str, int]:
    index = nx.get_node_attributes(view, "index")
    order = list(nx.lexicographical_topological_sort(view, key=lambda key: index[key]))
    layer = {}
    for key in order:
        layer[key] = max((layer[source] + 1 for source in view.predecessors(key)), default=0)
    for key in reversed(order):
        if view.nodes[key]["kind"] in ("condition", "feed_forward") and view.out_degree(key):
            layer[key] = min(layer[target] for target in view.successors(key)) - 1
    return layer


@dataclass
class _Vertex:
    """A vertex of the proper layered graph: a box, or a dummy on a long edge (``box`` is None)."""

    layer: int
    breadth: float
    depth: float
    box: Box | None = None
    up: list[tuple[int, float, float, float]] = field(default_factory=list)  # (vertex, its offset, own, weight)
    down: list[tuple[int, float, float, float]] = field(default_factory=list)


def _spread(index: int, count: int, size: float) -> float:
    return ((index + 1) / (count + 1) - 0.5) * size * PORT_SPREAD


def _in_offsets(view: nx.MultiDiGraph, key: str, size: float) -> dict[tuple, float]:
    """Offsets along a box's entry side: data inputs spread over the middle, conditions at the far end."""
    edges = sorted(view.in_edges(key, keys=True, data=True), key=lambda e: (e[3]["condition"], e[3]["in_port"]))
    data_ports = max(len(view.nodes[key]["input_dims"]), 1)
    offsets = {}
    conditions = 0
    for source, _, edge_key, data in edges:
        if data["condition"]:
            offsets[(source, edge_key)] = size / 2 - 10 - 8 * conditions
            conditions += 1
        else:
            offsets[(source, edge_key)] = _spread(data["in_port"], data_ports, size)
    return offsets


def _connect(vertices: list[_Vertex], upper: int, lower: int, offsets: tuple[float, float], weight: float):
    vertices[upper].down.append((lower, offsets[1], offsets[0], weight))
    vertices[lower].up.append((upper, offsets[0], offsets[1], weight))


def _build_vertices(view, boxes, layer, direction):
    """Proper layered graph: a vertex per box plus dummies; returns vertices, vertex of each box, and the
    vertex chain of each edge."""
    vertices, vertex_of = [], {}
    for key, box in boxes.items():
        breadth, depth = (box.width, box.height) if direction == "TB" else (box.height, box.width)
        vertex_of[key] = len(vertices)
        vertices.append(_Vertex(layer[key], breadth, depth, box))
    chains = []
    for target in view.nodes:
        in_offsets = _in_offsets(view, target, vertices[vertex_of[target]].breadth)
        for source, _, edge_key, data in view.in_edges(target, keys=True, data=True):
            chains.append(_add_chain(vertices, vertex_of, view, (source, target, edge_key, data), in_offsets))
    return vertices, vertex_of, chains


def _add_chain(vertices, vertex_of, view, edge, in_offsets):
    source, target, edge_key, data = edge
    first, last = vertex_of[source], vertex_of[target]
    ports = max(len(view.nodes[source]["output_dims"]), 1)
    out_offset = _spread(data["out_port"], ports, vertices[first].breadth)
    weight = CONDITION_WEIGHT if data["condition"] else 1.0
    chain = [first]
    for layer in range(vertices[first].layer + 1, vertices[last].layer):
        chain.append(len(vertices))
        vertices.append(_Vertex(layer, DUMMY_BREADTH, 0.0))
    chain.append(last)
    in_offset = in_offsets[(source, edge_key)]
    for i, (upper, lower) in enumerate(zip(chain, chain[1:], strict=False)):
        offsets = (out_offset if i == 0 else 0.0, in_offset if lower == last else 0.0)
        dummy_weight = DUMMY_WEIGHT if vertices[upper].box is None or vertices[lower].box is None else 1.0
        _connect(vertices, upper, lower, offsets, weight * dummy_weight)
    return source, target, data, chain, out_offset, in_offset


# ---------------------------------------------------------------------------------------------- order


def _initial_order(vertices: list[_Vertex], roots: list[int]) -> list[list[int]]:
    """Layers filled in depth-first order from the roots, so that branches start out side by side."""
    layers: list[list[int]] = [[] for _ in range(max(v.layer for v in vertices) + 1)]
    seen = set()
    for root in roots:
        stack = [root]
        while stack:
            vertex = stack.pop()
            if vertex in seen:
                continue
            seen.add(vertex)
            layers[vertices[vertex].layer].append(vertex)
            stack += [lower for lower, *_ in reversed(vertices[vertex].down)]
    return layers


def _port_fraction(vertex: _Vertex, offset: float) -> float:
    return offset / max(vertex.breadth, 1.0) * 0.5


def _crossings(vertices: list[_Vertex], layers: list[list[int]]) -> int:
    rank = {vertex: i for layer in layers for i, vertex in enumerate(layer)}
    total = 0
    for layer in layers:
        segments = [
            (rank[u] + _port_fraction(vertices[u], own), rank[v] + _port_fraction(vertices[v], other))
            for u in layer for v, other, own, _ in vertices[u].down
        ]
        total += sum(
            1 for i, (a1, b1) in enumerate(segments) for a2, b2 in segments[i + 1:] if (a1 - a2) * (b1 - b2) < 0
        )
    return total


def _barycenter(vertices: list[_Vertex], vertex: int, reference: dict[int, int], rank: int, downward: bool) -> float:
    links = vertices[vertex].up if downward else vertices[vertex].down
    if not links:
        return rank
    return sum(reference[v] + _port_fraction(vertices[v], off) for v, off, _, _ in links) / len(links)


def _sweep(vertices: list[_Vertex], layers: list[list[int]], downward: bool) -> None:
    indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
    for index in indices:
        reference = {v: i for i, v in enumerate(layers[index - 1 if downward else index + 1])}
        keys = {v: _barycenter(vertices, v, reference, i, downward) for i, v in enumerate(layers[index])}
        layers[index].sort(key=keys.__getitem__)


def _order(vertices: list[_Vertex], roots: list[int]) -> list[list[int]]:
    layers = _initial_order(vertices, roots)
    best, best_crossings = [list(layer) for layer in layers], _crossings(vertices, layers)
    for sweep in range(SWEEPS):
        if best_crossings == 0:
            break
        _sweep(vertices, layers, downward=sweep % 2 == 0)
        crossings = _crossings(vertices, layers)
        if crossings < best_crossings:
            best, best_crossings = [list(layer) for layer in layers], crossings
    return best


# ---------------------------------------------------------------------------------------- coordinates


def _isotonic(targets: list[float], weights: list[float]) -> list[float]:
    """The nondecreasing sequence closest to ``targets`` in weighted least squares (pool adjacent
    violators)."""
    blocks: list[list[float]] = []  # [weighted sum, weight, count]
    for target, weight in zip(targets, weights, strict=True):
        blocks.append([target * weight, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, weight, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += weight
            blocks[-1][2] += count
    return [total / weight for total, weight, count in blocks for _ in range(int(count))]


def _gap(vertices: list[_Vertex], left: int, right: int) -> float:
    dummy = vertices[left].box is None or vertices[right].box is None
    return (vertices[left].breadth + vertices[right].breadth) / 2 + (DUMMY_GAP if dummy else NODE_GAP)


def _place(vertices, layer: list[int], position: list[float], use_up: bool, use_down: bool) -> None:
    targets, weights = [], []
    for vertex in layer:
        links = (vertices[vertex].up if use_up else []) + (vertices[vertex].down if use_down else [])
        weight = sum(w for *_, w in links)
        if weight == 0:
            targets.append(position[vertex])
            weights.append(LONELY_WEIGHT)
        else:
            targets.append(sum((position[v] + off - own) * w for v, off, own, w in links) / weight)
            weights.append(weight)
    offsets = [0.0]
    for left, right in zip(layer, layer[1:], strict=False):
        offsets.append(offsets[-1] + _gap(vertices, left, right))
    shifted = _isotonic([t - o for t, o in zip(targets, offsets, strict=True)], weights)
    for vertex, value, offset in zip(layer, shifted, offsets, strict=True):
        position[vertex] = value + offset


def _positions(vertices: list[_Vertex], layers: list[list[int]]) -> list[float]:
    position = [0.0] * len(vertices)
    for layer in layers:
        _place(vertices, layer, position, use_up=False, use_down=False)
    for _ in range(PLACEMENT_ROUNDS):
        for layer in layers[1:]:
            _place(vertices, layer, position, use_up=True, use_down=False)
        for layer in reversed(layers[:-1]):
            _place(vertices, layer, position, use_up=False, use_down=True)
    for layer in layers:
        _place(vertices, layer, position, use_up=True, use_down=True)
    return position


def _straighten(vertices, layers, position, chains) -> None:
    """Give each long edge one straight run where its neighbours leave room: in line with its source
    port, else with its target port, else where it is on average."""
    slot = {vertex: (index, i) for index, layer in enumerate(layers) for i, vertex in enumerate(layer)}
    for _, _, _, chain, out_offset, in_offset in chains:
        dummies = chain[1:-1]
        if not dummies:
            continue
        low, high = -math.inf, math.inf
        for dummy in dummies:
            index, i = slot[dummy]
            layer = layers[index]
            if i > 0:
                low = max(low, position[layer[i - 1]] + _gap(vertices, layer[i - 1], dummy))
            if i + 1 < len(layer):
                high = min(high, position[layer[i + 1]] - _gap(vertices, dummy, layer[i + 1]))
        if low > high:
            continue
        wishes = (position[chain[0]] + out_offset, position[chain[-1]] + in_offset)
        average = sum(position[d] for d in dummies) / len(dummies)
        chosen = next((w for w in wishes if low <= w <= high), min(max(average, low), high))
        for dummy in dummies:
            position[dummy] = chosen


def _layer_gaps(vertices, layers, chains, direction: str, shapes: bool) -> list[float]:
    if direction == "TB":
        return [42.0 if shapes else 30.0] * len(layers)
    widest = [0.0] * len(layers)
    if shapes:
        for _, _, data, chain, _, _ in chains:
            layer = vertices[chain[0]].layer
            widest[layer] = max(widest[layer], text_width(_shape_label(data), LABEL_SIZE))
    return [max(40.0, w + 24.0) for w in widest]


def _shape_label(data: dict) -> str:
    return format_shapes([data["shape"]])


def _depths(vertices, layers, gaps) -> list[tuple[float, float]]:
    """Start and size of each layer along the depth axis."""
    spans, start = [], 0.0
    for layer, gap in zip(layers, gaps, strict=True):
        size = max((vertices[v].depth for v in layer), default=0.0)
        spans.append((start, size))
        start += size + gap
    return spans


# --------------------------------------------------------------------------------------------- output


def _point(breadth: float, depth: float, direction: str) -> tuple[float, float]:
    return (breadth, depth) if direction == "TB" else (depth, breadth)


def _route(vertices, position, spans, edge, direction) -> Route:
    source, target, data, chain, out_offset, in_offset = edge
    points = []
    for i, vertex in enumerate(chain):
        node = vertices[vertex]
        start, size = spans[node.layer]
        if i == 0:
            points.append((position[vertex] + out_offset, start + (size + node.depth) / 2))
        elif i == len(chain) - 1:
            points.append((position[vertex] + in_offset, start + (size - node.depth) / 2))
        else:
            points += [(position[vertex], start), (position[vertex], start + size)]
    return Route(source, target, [_point(b, d, direction) for b, d in points], data["condition"])


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


def _label_route(route: Route, text: str, direction: str, fan_out: int, fan_in: int) -> None:
    """Put the label where neighbouring edges are far apart: near the target when the source fans out,
    near the source when the target gathers several edges, in the middle otherwise."""
    commands = path_commands(route, direction)
    if fan_out > 1 and fan_in == 1:
        start, t = route.points[-2], 0.72
        control = commands[-1][1]
    else:
        start, t = route.points[0], 0.28 if fan_in > 1 and fan_out == 1 else 0.5
        control = commands[0][1]
    x, y = _on_curve(start, control, t)
    route.label = text
    if direction == "TB":
        route.label_x, route.label_y, route.label_anchor = x + 5, y + 3.5, "start"
    else:
        route.label_x, route.label_y, route.label_anchor = x, y - 4, "middle"


def _place_badges(box: Box) -> None:
    left = box.x - box.width / 2 + 8
    for badge in box.badges:
        badge.x, badge.y = left + badge.width / 2, box.y - box.height / 2
        left += badge.width + 3


def _bounds(boxes: list[Box], routes: list[Route]) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for box in boxes:
        xs += [box.x - box.width / 2, box.x + box.width / 2 + (6 if box.stacked else 0)]
        ys += [box.y - box.height / 2 - (BADGE_HEIGHT / 2 if box.badges else 0), box.y + box.height / 2 + 6]
    for route in routes:
        xs += [x for x, _ in route.points]
        ys += [y for _, y in route.points]
        if route.label:
            width = text_width(route.label, LABEL_SIZE)
            left = route.label_x if route.label_anchor == "start" else route.label_x - width / 2
            xs += [left, left + width]
            ys += [route.label_y - LABEL_SIZE, route.label_y + 2]
    return min(xs), min(ys), max(xs), max(ys)


def _translate(boxes: list[Box], routes: list[Route], dx: float, dy: float) -> None:
    for box in boxes:
        box.x, box.y = box.x + dx, box.y + dy
        for badge in box.badges:
            badge.x, badge.y = badge.x + dx, badge.y + dy
    for route in routes:
        route.points = [(x + dx, y + dy) for x, y in route.points]
        route.label_x, route.label_y = route.label_x + dx, route.label_y + dy


def _view(graph: nx.MultiDiGraph, options: LayoutOptions):
    view = collapse_runs(graph, options.min_repeats) if options.collapse else graph
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
    vertices, vertex_of, chains = _build_vertices(view, boxes, _assign_layers(view), options.direction)
    roots = sorted(vertex_of.values(), key=lambda v: (vertices[v].layer, view.nodes[vertices[v].box.key]["index"]))
    layers = _order(vertices, roots)
    position = _positions(vertices, layers)
    _straighten(vertices, layers, position, chains)
    spans = _depths(vertices, layers, _layer_gaps(vertices, layers, chains, options.direction, options.shapes))
    for key, vertex in vertex_of.items():
        start, size = spans[vertices[vertex].layer]
        boxes[key].x, boxes[key].y = _point(position[vertex], start + size / 2, options.direction)
        _place_badges(boxes[key])
    routes = []
    for edge in chains:
        route = _route(vertices, position, spans, edge, options.direction)
        if options.shapes:
            fan = (view.out_degree(edge[0]), view.in_degree(edge[1]))
            _label_route(route, _shape_label(edge[2]), options.direction, *fan)
        routes.append(route)
    left, top, right, bottom = _bounds(list(boxes.values()), routes)
    _translate(list(boxes.values()), routes, MARGIN - left, MARGIN - top)
    return Layout(list(boxes.values()), routes, right - left + 2 * MARGIN, bottom - top + 2 * MARGIN,
                  options.direction)


def layout_of(inn: Any, options: dict) -> Layout:
    """Convenience for the renderers: convert, validate the options, lay out."""
    from .export import to_networkx

    return compute_layout(to_networkx(inn), LayoutOptions(**options))
