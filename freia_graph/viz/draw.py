"""Matplotlib drawings of graphs (the same layout as the SVG) and ``save`` by file extension."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .layout import MARGIN, Badge, Box, Layout, Route, layout_of
from .style import CONDITION_EDGE_COLOR, DATA_EDGE_COLOR, KIND_STYLES
from .svg import path_commands, to_svg

__all__ = ["draw", "save"]

_MAX_PIXELS = 16384  # longest side of a saved raster image
_ARROW_LENGTH, _ARROW_HALF_WIDTH = 9.8, 3.9


def _rounding(box: Box) -> float:
    style = KIND_STYLES.get(box.kind, KIND_STYLES["unknown"])
    return {"pill": box.height / 2, "round": 6.0, "square": 2.0}[style.rounding]


def _draw_rect(ax, box: Box, offset: float, line_width: float, dashed: bool, scale: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    style = KIND_STYLES.get(box.kind, KIND_STYLES["unknown"])
    radius = min(_rounding(box), box.height / 2, box.width / 2)
    ax.add_patch(FancyBboxPatch(
        (box.x - box.width / 2 + offset, box.y - box.height / 2 + offset), box.width, box.height,
        boxstyle=f"round,pad=0,rounding_size={radius}", facecolor=style.fill, edgecolor=style.stroke,
        linewidth=line_width * scale, linestyle=(0, (4, 2)) if dashed else "solid", zorder=3,
    ))


def _draw_badge(ax, badge: Badge, scale: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch(
        (badge.x - badge.width / 2, badge.y - badge.height / 2), badge.width, badge.height,
        boxstyle=f"round,pad=0,rounding_size={badge.height / 2}", facecolor=badge.color, edgecolor="none",
        zorder=5,
    ))
    ax.text(badge.x, badge.y + 3.2, badge.text, ha="center", va="baseline", fontsize=9 * scale,
            fontweight="bold", color="#ffffff", zorder=6, family="DejaVu Sans")


def _draw_box(ax, box: Box, scale: float) -> None:
    style = KIND_STYLES.get(box.kind, KIND_STYLES["unknown"])
    if box.stacked:
        for offset in (6.0, 3.0):
            _draw_rect(ax, box, offset, 1.0, False, scale)
    _draw_rect(ax, box, 0.0, 3.0 if box.highlighted else 1.5, style.dashed, scale)
    for line, x, y in box.text_positions():
        ax.text(x, y, line.text, ha="center", va="baseline", fontsize=line.size * scale,
                fontweight="bold" if line.bold else "normal", color=line.color, zorder=4, family="DejaVu Sans")
    for badge in box.badges:
        _draw_badge(ax, badge, scale)


def _draw_route(ax, route: Route, direction: str, scale: float) -> None:
    from matplotlib.patches import PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    vertices, codes = [route.points[0]], [MplPath.MOVETO]
    for command, points in path_commands(route, direction):
        vertices += points
        codes += [MplPath.CURVE4] * 3 if command == "C" else [MplPath.LINETO]
    color = CONDITION_EDGE_COLOR if route.condition else DATA_EDGE_COLOR
    ax.add_patch(PathPatch(MplPath(vertices, codes), facecolor="none", edgecolor=color, linewidth=1.4 * scale,
                           linestyle=(0, (5, 3)) if route.condition else "solid", zorder=1))
    (x0, y0), (x1, y1) = vertices[-2], vertices[-1]
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    ux, uy = (x1 - x0) / length, (y1 - y0) / length
    base_x, base_y = x1 - ux * _ARROW_LENGTH, y1 - uy * _ARROW_LENGTH
    corners = [(x1, y1), (base_x - uy * _ARROW_HALF_WIDTH, base_y + ux * _ARROW_HALF_WIDTH),
               (base_x + uy * _ARROW_HALF_WIDTH, base_y - ux * _ARROW_HALF_WIDTH)]
    ax.add_patch(Polygon(corners, closed=True, facecolor=color, edgecolor="none", zorder=2))
    if route.label:
        from matplotlib import patheffects

        ha = {"start": "left", "middle": "center", "end": "right"}[route.label_anchor]
        ax.text(route.label_x, route.label_y, route.label, ha=ha, va="baseline", fontsize=10 * scale,
                color="#37474f", zorder=2, family="DejaVu Sans",
                path_effects=[patheffects.withStroke(linewidth=3 * scale, foreground="#ffffff")])


def _new_axes(layout: Layout, managed: bool):
    """Axes filling a new figure; ``managed`` figures belong to pyplot (so notebooks show them)."""
    size = (layout.width / 72, layout.height / 72)
    if managed:
        import matplotlib.pyplot as plt

        figure = plt.figure(figsize=size)
    else:
        from matplotlib.figure import Figure

        figure = Figure(figsize=size)
    return figure.add_axes((0.0, 0.0, 1.0, 1.0))


def _points_per_unit(ax, layout: Layout) -> float:
    """How many typographic points one layout pixel spans on these axes, so text scales with boxes."""
    figure = ax.figure
    width, height = figure.get_size_inches() * 72
    position = ax.get_position()
    return min(width * position.width / layout.width, height * position.height / layout.height)


def render_layout(layout: Layout, ax) -> Any:
    """Draw a finished layout on matplotlib axes; returns the axes."""
    ax.set_xlim(0, layout.width)
    ax.set_ylim(layout.height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    scale = _points_per_unit(ax, layout)
    for route in layout.routes:
        _draw_route(ax, route, layout.direction, scale)
    for box in layout.boxes:
        _draw_box(ax, box, scale)
    if layout.legend:
        ax.text(MARGIN, layout.legend_y, layout.legend, ha="left", va="baseline", fontsize=10 * scale,
                color="#616161", family="DejaVu Sans")
    return ax


def draw(inn: Any, ax: Any = None, **options: Any) -> Any:
    """Draw a graph with matplotlib (an optional dependency: ``pip install freia_graph[viz]``).

    Args:
        inn: anything :func:`freia_graph.viz.to_svg` accepts.
        ax: axes to draw on; by default a new figure sized so that text is set at its true size.
        **options: the options of :func:`freia_graph.viz.to_svg`.

    Returns:
        The matplotlib axes.

    Example:
        >>> import matplotlib
        >>> matplotlib.use("Agg")
        >>> import freia_graph.framework as Ff
        >>> x = Ff.InputNode(4, name="x")
        >>> ax = draw(Ff.GraphINN([x, Ff.OutputNode(x, name="z")]))
        >>> len(ax.patches)  # two nodes, one edge and its arrowhead
        4
    """
    layout = layout_of(inn, options)
    return render_layout(layout, ax if ax is not None else _new_axes(layout, managed=True))


def save(inn: Any, path: str | Path, dpi: float = 144, **options: Any) -> Path:
    """Save a picture of a graph, the format chosen by the file extension.

    ``.svg`` is written by :func:`freia_graph.viz.to_svg` (no dependency); ``.png``, ``.pdf``,
    ``.jpg`` go through matplotlib; ``.dot``/``.gv`` and ``.mmd`` write :func:`to_dot` and
    :func:`to_mermaid` text.

    Args:
        inn: anything :func:`freia_graph.viz.to_svg` accepts.
        path: where to write.
        dpi: resolution of raster images (lowered where the longest side would pass 16384 pixels).
        **options: drawing options (see :func:`freia_graph.viz.to_svg`); for ``.dot`` and ``.mmd``
            those of :func:`to_dot`.

    Returns:
        The path written.

    Example:
        >>> import tempfile, freia_graph.framework as Ff
        >>> x = Ff.InputNode(4, name="x")
        >>> inn = Ff.GraphINN([x, Ff.OutputNode(x, name="z")])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     print(save(inn, Path(folder) / "graph.svg").read_text()[:4])
        <svg
    """
    from .export import to_dot, to_mermaid

    path = Path(path)
    suffix = path.suffix.lower()
    writers = {".svg": to_svg, ".dot": to_dot, ".gv": to_dot, ".mmd": to_mermaid}
    if suffix in writers:
        path.write_text(writers[suffix](inn, **options), encoding="utf-8")
    elif suffix in (".png", ".pdf", ".jpg", ".jpeg"):
        _save_figure(inn, path, dpi, options)
    else:
        raise ValueError(f"save() writes .svg, .png, .pdf, .jpg, .dot, .gv or .mmd files, got {path.name!r}")
    return path


def _save_figure(inn: Any, path: Path, dpi: float, options: dict) -> None:
    layout = layout_of(inn, options)
    ax = render_layout(layout, _new_axes(layout, managed=False))
    longest_inches = max(layout.width, layout.height) / 72
    ax.figure.savefig(path, dpi=min(dpi, _MAX_PIXELS / longest_inches), facecolor="#ffffff")
