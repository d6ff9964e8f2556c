"""The SVG drawings: well-formed, deterministic, complete, without overlaps, fast."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.viz import to_networkx, to_svg
from freia_graph.viz.layout import LayoutOptions, compute_layout
from freia_graph.viz.simplify import badge_conditions, collapse_runs
from freia_graph.viz.svg import graphviz_available

SVG = "{http://www.w3.org/2000/svg}"
OPTIONS = [
    {},
    {"direction": "LR"},
    {"collapse": False},
    {"collapse": False, "conditions": "edges", "params": False, "shapes": False},
    {"conditions": "badges", "direction": "LR"},
]


def drawn(svg: str) -> tuple[list, list, list]:
    """The node groups, edge groups and badges of an SVG document."""
    root = ET.fromstring(svg)
    groups = [(g.get("class") or "").split() for g in root.iter(f"{SVG}g")]
    nodes = [c for c in groups if c and c[0] == "node"]
    edges = [c for c in groups if c and c[0] == "edge"]
    badges = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "badge"]
    return nodes, edges, badges


def view_of(inn, options: dict):
    checked = LayoutOptions(**options)
    graph = to_networkx(inn)
    graph = collapse_runs(graph, checked.min_repeats) if checked.collapse else graph
    return badge_conditions(graph, checked.conditions, checked.badge_threshold)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("name", ["branching", "chain", "multiscale", "sequence"])
def test_svg_draws_every_node_and_edge_of_its_view(graphs, name, options):
    svg = to_svg(graphs[name], **options)
    view, consumers, fan_out = view_of(graphs[name], options)
    nodes, edges, badges = drawn(svg)
    assert len(nodes) == view.number_of_nodes()
    assert len(edges) == view.number_of_edges()
    assert len(badges) == sum(map(len, consumers.values())) + len(fan_out)
    assert svg == to_svg(graphs[name], **options)


@pytest.mark.parametrize("name", ["branching", "chain", "multiscale", "sequence"])
def test_expanded_view_with_edges_is_the_whole_graph(graphs, name):
    inn = graphs[name]
    nodes, edges, badges = drawn(to_svg(inn, collapse=False, conditions="edges"))
    graph = to_networkx(inn)
    assert (len(nodes), len(edges), len(badges)) == (graph.number_of_nodes(), graph.number_of_edges(), 0)
    if hasattr(inn, "node_list"):
        assert (len(nodes), len(edges)) == (len(inn.node_list), inn.graph.number_of_edges())


def test_svg_bytes_do_not_depend_on_the_process(graphs):
    script = (
        "import hashlib; from tests.viz.graphs import GRAPHS; from freia_graph.viz import to_svg; "
        "print(' '.join(hashlib.sha256(to_svg(GRAPHS[n]()).encode()).hexdigest() for n in ('branching', 'multiscale')))"
    )
    environment = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env=environment, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    here = " ".join(hashlib.sha256(to_svg(graphs[n]).encode()).hexdigest() for n in ("branching", "multiscale"))
    assert other.stdout.split() == here.split()


def overlap(a, b, gap: float = 1.0) -> bool:
    return (abs(a.x - b.x) < (a.width + b.width) / 2 + gap) and (abs(a.y - b.y) < (a.height + b.height) / 2 + gap)


@pytest.mark.parametrize("options", OPTIONS[:3], ids=["TB", "LR", "expanded"])
@pytest.mark.parametrize("name", ["branching", "chain", "multiscale"])
def test_layout_has_no_overlapping_boxes_and_edges_meet_their_boxes(graphs, name, options):
    layout = compute_layout(to_networkx(graphs[name]), LayoutOptions(**options))
    assert not [(a.key, b.key) for a, b in itertools.combinations(layout.boxes, 2) if overlap(a, b)]
    box = {b.key: b for b in layout.boxes}
    axis = 1 if layout.direction == "TB" else 0
    for route in layout.routes:
        source, target = box[route.source], box[route.target]
        source_end = (source.y + source.height / 2) if axis else (source.x + source.width / 2)
        target_end = (target.y - target.height / 2) if axis else (target.x - target.width / 2)
        assert route.points[0][axis] == pytest.approx(source_end)
        assert route.points[-1][axis] == pytest.approx(target_end)
    assert all(0 <= b.x - b.width / 2 and b.x + b.width / 2 <= layout.width for b in layout.boxes)


def test_shared_condition_becomes_badges_unless_edges_are_asked_for(graphs):
    chain = graphs["chain"]
    _, edges, badges = drawn(to_svg(chain, collapse=False))
    assert len(badges) == 19 + 1 and not [e for e in edges if "condition" in e]
    _, edges, badges = drawn(to_svg(chain, collapse=False, conditions="edges"))
    assert len(badges) == 0 and len([e for e in edges if "condition" in e]) == 19
    _, edges, badges = drawn(to_svg(chain, collapse=False, badge_threshold=20))
    assert len(badges) == 0


def test_repeated_runs_collapse_into_one_node_and_expand_on_request(graphs):
    svg = to_svg(graphs["chain"])
    nodes, _, _ = drawn(svg)
    assert len(nodes) == 4 and [n for n in nodes if "group" in n]
    assert "GLOWCouplingBlock → PermuteRandom ×19" in svg
    assert len(drawn(to_svg(graphs["chain"], min_repeats=20))[0]) == 41
    multiscale = drawn(to_svg(graphs["multiscale"]))[0]
    assert len([n for n in multiscale if "group" in n]) == 3


def test_collapse_finds_the_longest_pattern_and_leaves_short_runs():
    x = Ff.InputNode(4, name="x")
    node = Ff.Node(x, Fm.ActNorm, {}, name="first")
    for i in range(3):
        node = Ff.Node(node, Fm.PermuteRandom, {"seed": i}, name=f"p{i}")
        node = Ff.Node(node, Fm.ActNorm, {}, name=f"a{i}")
    node = Ff.Node(node, Fm.PermuteRandom, {"seed": 9}, name="last")
    inn = Ff.GraphINN(Ff.collect_nodes(Ff.OutputNode(node, name="z")))
    modules = [d["module"] for _, d in collapse_runs(to_networkx(inn)).nodes(data=True)]
    assert modules == [None, None, "ActNorm → PermuteRandom ×4"]


def test_names_are_escaped():
    nasty = ['x <b>&"', "p ]|#\x01'", "z\n&amp;"]
    x = Ff.InputNode(4, name=nasty[0])
    perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name=nasty[1])
    inn = Ff.GraphINN([x, perm, Ff.OutputNode(perm, name=nasty[2])])
    root = ET.fromstring(to_svg(inn))
    names = [g.get("data-name") for g in root.iter(f"{SVG}g")
             if (g.get("class") or "").split()[0] == "node"]
    assert names == [nasty[0], nasty[1].replace("\x01", "\ufffd"), nasty[2]]


def test_bad_options_are_refused(graphs):
    inn = graphs["branching"]
    for options, error in [({"direction": "up"}, ValueError), ({"colour": "red"}, TypeError),
                           ({"backend": "cairo"}, ValueError), ({"conditions": "none"}, ValueError),
                           ({"min_repeats": 1}, ValueError)]:
        with pytest.raises(error):
            to_svg(inn, **options)
    with pytest.raises(TypeError, match="GraphINN"):
        to_svg(42)


@pytest.mark.skipif(graphviz_available(), reason="Graphviz is installed here")
def test_graphviz_backend_only_when_available(graphs):
    with pytest.raises(RuntimeError, match="dot"):
        to_svg(graphs["branching"], backend="graphviz")
    assert to_svg(graphs["branching"], backend="auto") == to_svg(graphs["branching"])


def test_three_hundred_nodes_draw_well_under_a_second(graphs):
    inn = graphs["multiscale"]
    assert len(inn.node_list) >= 300
    times = []
    for _ in range(3):
        start = time.perf_counter()
        to_svg(inn)
        times.append(time.perf_counter() - start)
    assert sorted(times)[1] < 1.0


def _children(root, tag: str) -> list:
    return [child for child in root if child.tag == f"{SVG}{tag}"]


@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_edge_labels_sit_on_a_white_rectangle_that_covers_them(graphs, direction):
    svg = to_svg(graphs["branching"], direction=direction)
    assert "paint-order" not in svg and 'stroke="#ffffff"' not in svg  # cairosvg and others ignore both
    labelled = 0
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        if (group.get("class") or "").split()[:1] != ["edge"] or not _children(group, "text"):
            continue
        labelled += 1
        (text,), (background,) = _children(group, "text"), _children(group, "rect")
        assert background.get("fill") == "#ffffff" and background.get("class") == "label-background"
        x, y = float(text.get("x")), float(text.get("y"))
        left, top = float(background.get("x")), float(background.get("y"))
        right, bottom = left + float(background.get("width")), top + float(background.get("height"))
        width = right - left - 4.0
        start = {"start": x, "middle": x - width / 2, "end": x - width}[text.get("text-anchor")]
        assert left < start and start + width < right and top < y - 7 and y < bottom
    assert labelled > 3


def test_the_fan_out_badge_is_explained_by_a_legend_and_tooltips(graphs):
    root = ET.fromstring(to_svg(graphs["chain"], collapse=False))
    (legend,) = [t for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend.text.startswith("→N: a condition used by N nodes")
    height = float(root.get("height"))
    assert height - 20 < float(legend.get("y")) < height
    tooltips = []
    for group in root.iter(f"{SVG}g"):
        if [r for r in _children(group, "rect") if r.get("class") == "badge"]:
            tooltips.append(_children(group, "title")[0].text)
    assert len(tooltips) == 20
    assert "c is a condition of 19 nodes; each carries a badge of this colour instead of an edge" in tooltips
    assert tooltips.count("condition from c (a badge instead of an edge)") == 19
    without_badges = ET.fromstring(to_svg(graphs["chain"], conditions="edges"))
    assert not [t for t in without_badges.iter(f"{SVG}text") if t.get("class") == "legend"]
