"""Layered placement (the Sugiyama steps), in pure Python, along two abstract axes: *breadth* (within a
layer) and *depth* (across layers).

1. *Layers*: longest path from the inputs; condition sources move down next to their first consumer.
2. *Dummies*: an edge spanning several layers becomes a chain of dummy vertices, one per layer.
3. *Order*: barycenter sweeps, down and up, keep the order with the fewest crossings (counted as
   inversions, with each edge's port position as a tie-breaker).
4. *Coordinates*: each vertex moves towards the ports it connects to, solved per layer exactly as an
   isotonic regression that keeps the order and the minimum gaps (pool-adjacent-violators); then each
   long edge is straightened where its neighbours leave room.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import networkx as nx

__all__ = ["Chain", "Arrangement", "arrange", "assign_layers"]

NODE_GAP, DUMMY_GAP, DUMMY_BREADTH = 24.0, 10.0, 8.0
PORT_SPREAD = 0.8
SWEEPS, PATIENCE, PLACEMENT_ROUNDS, SETTLED = 12, 4, 6, 0.5
CONDITION_WEIGHT, DUMMY_WEIGHT, LONELY_WEIGHT = 0.2, 2.0, 0.01


def assign_layers(view: nx.MultiDiGraph) -> dict[str, int]:
    index = nx.get_node_attributes(view, "index")
    order = list(nx.lexicographical_topological_sort(view, key=lambda key: index[key]))
    layer = {}
    for key in order:
        layer[key] = max((layer[source] + 1 for source in view.predecessors(key)), default=0)
    for key in reversed(order):
        if view.nodes[key]["kind"] in ("condition", "feed_forward") and view.out_degree(key):
            layer[key] = min(layer[target] for target in view.successors(key)) - 1
    return layer


class _Link(NamedTuple):
    """One end's view of a segment: the vertex at the other end, the port offsets (in pixels along the
    breadth) at that vertex and at this one, the segment's weight, and both offsets as fractions of the
    vertices' breadths (for ordering by rank)."""

    vertex: int
    offset: float
    own_offset: float
    weight: float
    fraction: float
    own_fraction: float


@dataclass
class _Vertex:
    """A vertex of the proper layered graph: a node, or a dummy on a long edge (``key`` is None)."""

    layer: int
    breadth: float
    depth: float
    key: str | None = None
    up: list[_Link] = field(default_factory=list)
    down: list[_Link] = field(default_factory=list)


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


def _port_fraction(vertex: _Vertex, offset: float) -> float:
    return offset / max(vertex.breadth, 1.0) * 0.5


def _connect(vertices: list[_Vertex], upper: int, lower: int, offsets: tuple[float, float], weight: float):
    fractions = _port_fraction(vertices[upper], offsets[0]), _port_fraction(vertices[lower], offsets[1])
    vertices[upper].down.append(_Link(lower, offsets[1], offsets[0], weight, fractions[1], fractions[0]))
    vertices[lower].up.append(_Link(upper, offsets[0], offsets[1], weight, fractions[0], fractions[1]))


def _build_vertices(view, sizes, layer):
    """Proper layered graph: a vertex per node plus dummies; returns vertices, vertex of each node, and
    the vertex chain of each edge."""
    vertices, vertex_of = [], {}
    for key, (breadth, depth) in sizes.items():
        vertex_of[key] = len(vertices)
        vertices.append(_Vertex(layer[key], breadth, depth, key))
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
        dummy_weight = DUMMY_WEIGHT if vertices[upper].key is None or vertices[lower].key is None else 1.0
        _connect(vertices, upper, lower, offsets, weight * dummy_weight)
    return Chain(source, target, data, chain, out_offset, in_offset)


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
            stack += [link.vertex for link in reversed(vertices[vertex].down)]
    return layers


def _crossings(vertices: list[_Vertex], layers: list[list[int]]) -> int:
    """Pairs of segments that cross between neighbouring layers, counted as inversions."""
    rank = {vertex: i for layer in layers for i, vertex in enumerate(layer)}
    total = 0
    for layer in layers:
        segments = sorted(
            (rank[u] + link.own_fraction, rank[link.vertex] + link.fraction) for u in layer for link in vertices[u].down
        )
        ends: list[float] = []
        for _, end in segments:
            total += len(ends) - bisect.bisect_right(ends, end)
            bisect.insort(ends, end)
    return total


def _barycenter(vertices: list[_Vertex], vertex: int, reference: dict[int, int], rank: int, downward: bool) -> float:
    links = vertices[vertex].up if downward else vertices[vertex].down
    if not links:
        return rank
    return sum(reference[link.vertex] + link.fraction for link in links) / len(links)


def _sweep(vertices: list[_Vertex], layers: list[list[int]], downward: bool) -> None:
    indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
    for index in indices:
        reference = {v: i for i, v in enumerate(layers[index - 1 if downward else index + 1])}
        keys = {v: _barycenter(vertices, v, reference, i, downward) for i, v in enumerate(layers[index])}
        layers[index].sort(key=keys.__getitem__)


def _order(vertices: list[_Vertex], roots: list[int]) -> list[list[int]]:
    layers = _initial_order(vertices, roots)
    best, best_crossings, best_sweep = [list(layer) for layer in layers], _crossings(vertices, layers), 0
    for sweep in range(SWEEPS):
        if best_crossings == 0 or sweep - best_sweep >= PATIENCE:
            break
        _sweep(vertices, layers, downward=sweep % 2 == 0)
        crossings = _crossings(vertices, layers)
        if crossings < best_crossings:
            best, best_crossings, best_sweep = [list(layer) for layer in layers], crossings, sweep
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
    dummy = vertices[left].key is None or vertices[right].key is None
    return (vertices[left].breadth + vertices[right].breadth) / 2 + (DUMMY_GAP if dummy else NODE_GAP)


def _place(vertices, layer: list[int], gaps: list[float], position: list[float], up: bool, down: bool) -> None:
    """Move a layer's vertices as close as the minimum gaps allow to where their links pull them."""
    targets, weights = [], []
    for vertex, gap in zip(layer, gaps, strict=True):
        links = (vertices[vertex].up if up else []) + (vertices[vertex].down if down else [])
        weight = sum(link.weight for link in links)
        if weight == 0:
            targets.append(position[vertex] - gap)
            weights.append(LONELY_WEIGHT)
        else:
            pull = sum((position[link.vertex] + link.offset - link.own_offset) * link.weight for link in links)
            targets.append(pull / weight - gap)
            weights.append(weight)
    for vertex, value, gap in zip(layer, _isotonic(targets, weights), gaps, strict=True):
        position[vertex] = value + gap


def _positions(vertices: list[_Vertex], layers: list[list[int]]) -> list[float]:
    position = [0.0] * len(vertices)
    gaps = []
    for layer in layers:
        total = [0.0]
        for left, right in zip(layer, layer[1:], strict=False):
            total.append(total[-1] + _gap(vertices, left, right))
        gaps.append(total)
    for layer, gap in zip(layers, gaps, strict=True):
        _place(vertices, layer, gap, position, up=False, down=False)
    for _ in range(PLACEMENT_ROUNDS):
        before = list(position)
        for index in range(1, len(layers)):
            _place(vertices, layers[index], gaps[index], position, up=True, down=False)
        for index in range(len(layers) - 2, -1, -1):
            _place(vertices, layers[index], gaps[index], position, up=False, down=True)
        if max(abs(a - b) for a, b in zip(before, position, strict=True)) < SETTLED:
            break
    for layer, gap in zip(layers, gaps, strict=True):
        _place(vertices, layer, gap, position, up=True, down=True)
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


class Chain(NamedTuple):
    """An edge of the view as a path of vertices, with the port offsets at both ends."""

    source: str
    target: str
    data: dict
    vertices: list[int]
    out_offset: float
    in_offset: float


@dataclass
class Arrangement:
    """The result of :func:`arrange`: vertices (nodes and dummies), the vertex of each node, the vertex
    chain of each edge, the order of each layer, and each vertex's position along the breadth axis."""

    vertices: list[_Vertex]
    vertex_of: dict[str, int]
    chains: list[Chain]
    layers: list[list[int]]
    position: list[float]


def arrange(view: nx.MultiDiGraph, sizes: dict[str, tuple[float, float]]) -> Arrangement:
    """Place every node of ``view`` (keys of ``sizes``, each ``(breadth, depth)``) in layers.

    Example:
        >>> view = nx.MultiDiGraph()
        >>> for i, (key, kind) in enumerate([("x", "input"), ("f", "invertible"), ("z", "output")]):
        ...     view.add_node(key, kind=kind, index=i, input_dims=[(4,)], output_dims=[(4,)])
        >>> nx.add_path(view, ["x", "f", "z"], out_port=0, in_port=0, condition=False)
        >>> arrangement = arrange(view, {"x": (60, 30), "f": (100, 40), "z": (60, 30)})
        >>> arrangement.layers, len(set(arrangement.position))
        ([[0], [1], [2]], 1)
    """
    vertices, vertex_of, chains = _build_vertices(view, sizes, assign_layers(view))
    roots = sorted(vertex_of.values(), key=lambda v: (vertices[v].layer, view.nodes[vertices[v].key]["index"]))
    layers = _order(vertices, roots)
    position = _positions(vertices, layers)
    _straighten(vertices, layers, position, chains)
    return Arrangement(vertices, vertex_of, chains, layers, position)
