"""Matplotlib drawings and saving pictures by file extension."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from freia_graph.viz import draw, save, to_svg  # noqa: E402
from freia_graph.viz.export import to_networkx  # noqa: E402
from freia_graph.viz.layout import LayoutOptions, compute_layout  # noqa: E402


@pytest.mark.parametrize("options", [{}, {"direction": "LR", "collapse": False}])
def test_draw_puts_every_box_and_label_on_the_axes(graphs, options):
    layout = compute_layout(to_networkx(graphs["branching"]), LayoutOptions(**options))
    figure, ax = plt.subplots(figsize=(3, 4))
    try:
        assert draw(graphs["branching"], ax=ax, **options) is ax
        texts = {text.get_text() for text in ax.texts}
        assert {box.lines[0].text for box in layout.boxes} <= texts
        assert len(ax.patches) >= len(layout.boxes) + 2 * len(layout.routes)
    finally:
        plt.close(figure)


@pytest.mark.parametrize("suffix, start", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<svg"),
                                           (".dot", b"digraph"), (".mmd", b"flowchart")])
def test_save_picks_the_format_from_the_extension(graphs, tmp_path, suffix, start):
    path = save(graphs["multiscale"], tmp_path / f"graph{suffix.upper() if suffix == '.png' else suffix}")
    assert path.read_bytes().startswith(start)
    if suffix == ".svg":
        assert path.read_text(encoding="utf-8") == to_svg(graphs["multiscale"])


def test_save_refuses_unknown_extensions(graphs, tmp_path):
    with pytest.raises(ValueError, match=".png"):
        save(graphs["branching"], tmp_path / "graph.bmp")
