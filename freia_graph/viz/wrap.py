"""Long, narrow drawings wrapped into several columns (rows, left to right), like text in a newspaper.

A long chain drawn expanded is one column thousands of pixels tall. When a drawing is much deeper than
it is broad, its layers are cut into consecutive runs, each run placed beside the previous one; an edge
from the end of one run to the start of the next leaves its source, runs along the gutter between the
runs and enters its target from above (from the left for ``"LR"`` drawings). Everything here works on
the abstract axes of :mod:`freia_graph.viz.layered`: *breadth* within a layer, *depth* across layers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["WRAP_DEPTH", "COLUMN_GAP", "Wrapping", "wrap_layers"]

WRAP_DEPTH = 1200.0
"""Drawings at most this deep (pixels along the depth axis) are never wrapped."""
COLUMN_GAP = 72.0
"""Room between two columns: shape labels beside the edges, and the gutter for edges between columns."""
_TURN = 14.0


@dataclass(frozen=True)
class Wrapping:
    """Where each layer goes: its column, and the shifts that move it there along breadth and depth."""

    column: list[int]
    breadth_shift: list[float]
    depth_shift: list[float]
    gutters: list[float]

    def detour(self, points: list[tuple[float, float]], layers: list[int]) -> list[tuple[float, float]]:
        """An edge's points (``(breadth, depth)``, already shifted) with a way round each column break.

        ``layers`` are the layers of the edge's vertices: the first and last contribute one point each,
        dummies in between two (see ``_route`` in :mod:`freia_graph.viz.layout`), so the segment between
        vertex ``i`` and ``i + 1`` runs from point ``2i`` to point ``2i + 1``. A segment that crosses into
        the next column gets two more points, so curves and straight runs keep alternating.

        Example:
            >>> wrapping = Wrapping([0, 1], [0.0, 200.0], [0.0, -100.0], [150.0])
            >>> wrapping.detour([(50.0, 40.0), (250.0, 0.0)], [0, 1])
            [(50.0, 40.0), (150.0, 54.0), (150.0, -14.0), (250.0, 0.0)]
        """
        result = [points[0]]
        for i in range(len(layers) - 1):
            start, end = points[2 * i], points[2 * i + 1]
            column = self.column[layers[i]]
            if self.column[layers[i + 1]] != column:
                gutter = self.gutters[column]
                result += [(gutter, start[1] + _TURN), (gutter, end[1] - _TURN)]
            result += points[2 * i + 1 : 2 * i + 3]
        return result


def wrap_layers(spans: list[tuple[float, float]], low: float, high: float) -> Wrapping | None:
    """Cut the layers into columns when the drawing is much deeper than broad; None when it is not.

    Args:
        spans: the start and size of each layer along the depth axis, in order.
        low: the smallest breadth coordinate of the drawing.
        high: the largest breadth coordinate of the drawing.

    Returns:
        The columns, about as many as make the wrapped drawing square, or None when the drawing is at
        most :data:`WRAP_DEPTH` deep or would need fewer than two columns.

    Example:
        >>> spans = [(100.0 * i, 60.0) for i in range(30)]  # 30 layers, 2960 pixels deep
        >>> wrapping = wrap_layers(spans, 0.0, 150.0)
        >>> max(wrapping.column) + 1, wrapping.column[:12]
        (4, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
        >>> wrap_layers(spans[:5], 0.0, 150.0) is None
        True
    """
    depth = spans[-1][0] + spans[-1][1] if spans else 0.0
    pitch = high - low + COLUMN_GAP
    columns = round(math.sqrt(depth / pitch)) if pitch > 0 else 1
    if depth <= WRAP_DEPTH or columns < 2:
        return None
    target, column, column_start = depth / columns, 0, spans[0][0]
    column_of, starts = [], [column_start]
    for start, size in spans:
        if start > column_start and start + size - column_start > target and column < columns - 1:
            column, column_start = column + 1, start
            starts.append(start)
        column_of.append(column)
    return Wrapping(
        column=column_of,
        breadth_shift=[c * pitch for c in column_of],
        depth_shift=[-starts[c] for c in column_of],
        gutters=[high + c * pitch + COLUMN_GAP / 2 for c in range(len(starts))],
    )
