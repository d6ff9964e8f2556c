"""Large and hostile graphs: displays stay small (rows, cells and drawn nodes are capped, side-by-side
repeats are stacked), and names or kinds cannot break the SVG or drive the terminal."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import networkx as nx
import pytest

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph import viz
from freia_graph.viz.display import MAX_ROWS


def wide_graph(pieces: int) -> Ff.GraphINN:
    """A split into ``pieces`` parts, a block on each, all concatenated again: pieces + 4 nodes."""
    x = Ff.InputNode(2 * pieces, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [2] * pieces}, name="split")
    blocks = [Ff.Node(split.port(i), Fm.PermuteRandom, {"seed": i}, name=f"perm{i}") for i in range(pieces)]
    merge = Ff.Node([block.out0 for block in blocks], Fm.Concat, {}, name="merge")
    return Ff.GraphINN([x, split, *blocks, merge, Ff.OutputNode(merge, name="z")])


@pytest.fixture(scope="module")
def wide():
    return {pieces: wide_graph(pieces) for pieces in (150, 300)}


def drawn_nodes(svg: str) -> int:
    return svg.count('<g class="node ')


def test_summaries_of_wide_graphs_are_capped_and_do_not_grow(wide):
    texts = {pieces: str(inn) for pieces, inn in wide.items()}
    assert abs(len(texts[300]) - len(texts[150])) < 10  # only a few counts grow
    title, header, *rows = texts[300].splitlines()
    assert title.startswith("GraphINN: 304 nodes (1 input, 0 conditions, 1 output)")
    assert len(rows) == MAX_ROWS + 1 and rows[MAX_ROWS - 10].strip().startswith("… 244 more nodes")
    merge = next(row for row in rows if " merge " in row)
    assert "perm0, perm1, perm2, … +297 more" in merge and len(merge) < 300
    full = viz.summary(wide[300], max_rows=None).splitlines()
    assert len(full) == 2 + 304 and full[-1].split()[:2] == ["303", "z"]


def test_pictures_of_wide_graphs_stack_side_by_side_repeats(wide):
    svgs = {pieces: viz.to_svg(inn) for pieces, inn in wide.items()}
    assert drawn_nodes(svgs[300]) == 5 and "PermuteRandom ×300 in parallel" in svgs[300]
    assert len(svgs[300]) - len(svgs[150]) < 10
    bundle = wide[300]._repr_mimebundle_()
    assert bundle["image/svg+xml"] == svgs[300] and bundle["text/plain"] == str(wide[300])


@pytest.mark.parametrize("collapse", [True, False])
def test_pictures_draw_at_most_max_nodes(wide, collapse):
    svg = viz.to_svg(wide[300], max_nodes=40, collapse=collapse)
    left_out = 304 - 39 if not collapse else 0
    assert drawn_nodes(svg) == (40 if left_out else 5)
    if left_out:
        assert f"… {left_out:,} more nodes" in svg
    ElementTree.fromstring(svg)
    chain = Ff.SequenceINN(4)
    for i in range(120):
        chain.append(Fm.PermuteRandom, seed=i)
    svg = viz.to_svg(chain, collapse=False, max_nodes=30)
    assert drawn_nodes(svg) == 30 and "… 93 more nodes" in svg  # 122 nodes: input, 120 blocks, output


def test_max_nodes_is_validated():
    with pytest.raises(ValueError, match="max_nodes must be a positive int or None"):
        viz.to_svg(wide_graph(3), max_nodes=0)


def test_svg_escapes_every_attribute_from_a_networkx_graph():
    graph = nx.MultiDiGraph(source="graph")
    hostile = 'x" onload="alert(1)'
    for index, key in enumerate(["a", "b"]):
        graph.add_node(key, kind=hostile, name=f"<{key}>&", module="M", params=0, index=index,
                       input_dims=[(2,)], condition_dims=[], output_dims=[(2,)])
    graph.add_edge("a", "b", out_port=0, in_port=0, shape=(2,), condition=False)
    svg = viz.to_svg(graph)
    root = ElementTree.fromstring(svg)  # well-formed
    classes = [element.get("class") for element in root.iter() if element.get("class", "").startswith("node ")]
    assert classes == [f"node {hostile}"] * 2 and "onload" not in root.attrib


def test_control_characters_in_names_are_shown_escaped():
    name = "red" + chr(27) + "[31m" + chr(7)
    x = Ff.InputNode(2, name=name)
    permute = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="p" + chr(0))
    inn = Ff.GraphINN([x, permute, Ff.OutputNode(permute, name="z")])
    for text in (str(inn), inn._repr_mimebundle_()["text/plain"], str(permute)):
        assert all(ch == "\n" or ch.isprintable() for ch in text)
        assert "red\\x1b[31m\\x07" in text
    assert "p\\x00" in str(inn)
