"""The networkx, DOT and Mermaid exports: the same nodes and edges as the graph, names escaped."""

from __future__ import annotations

import re

import networkx as nx
import pytest

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.viz import to_dot, to_mermaid, to_networkx

NAMES = ["branching", "chain", "multiscale", "sequence"]


def test_networkx_export_describes_nodes_and_ports(graphs):
    graph = to_networkx(graphs["branching"])
    assert isinstance(graph, nx.DiGraph)
    assert list(graph.nodes) == [n.name for n in graphs["branching"].node_list]
    split, embedding = graph.nodes["split"], graph.nodes["embedding"]
    assert (split["kind"], split["module"], split["output_dims"]) == ("invertible", "Split", [(4,), (2,)])
    assert (embedding["kind"], embedding["params"]) == ("feed_forward", 16)
    glow = graphs["branching"].get_module_by_name("glow")
    assert graph.nodes["glow"]["params"] == sum(p.numel() for p in glow.parameters())
    edges = {(u, v, d["out_port"], d["in_port"], d["shape"], d["condition"]) for u, v, d in graph.edges(data=True)}
    assert ("split", "all_in_one", 1, 0, (2,), False) in edges
    assert ("embedding", "glow", 0, 0, (4,), True) in edges
    assert ("all_in_one", "merge", 0, 1, (2,), False) in edges


def test_a_node_exports_its_whole_graph(graphs):
    node = graphs["branching"].get_node_by_name("glow")
    assert list(to_networkx(node).nodes) == list(to_networkx(graphs["branching"]).nodes)
    assert list(to_networkx(node).edges) == list(to_networkx(graphs["branching"]).edges)


def test_sequence_exports_as_a_chain_with_condition_nodes(graphs):
    graph = to_networkx(graphs["sequence"])
    assert list(graph.nodes) == ["input", "c0"] + [str(i) for i in range(8)] + ["output"]
    assert nx.is_directed_acyclic_graph(graph)
    conditions = [(u, v) for u, v, d in graph.edges(data=True) if d["condition"]]
    assert conditions == [("c0", "0"), ("c0", "2"), ("c0", "4"), ("c0", "6")]
    assert graph.nodes["1"]["module"] == "PermuteRandom"


def dot_counts(text: str) -> tuple[int, int, int]:
    nodes = re.findall(r"^\s+n\d+ \[label=", text, re.MULTILINE)
    edges = re.findall(r"^\s+n\d+ -> n\d+ \[", text, re.MULTILINE)
    return len(nodes), len(edges), text.count("style=dashed")


def mermaid_counts(text: str) -> tuple[int, int, int]:
    nodes = re.findall(r"^\s+n\d+[\[\(\{]", text, re.MULTILINE)
    edges = re.findall(r"^\s+n\d+ (?:-->|-\.->)\|", text, re.MULTILINE)
    return len(nodes), len(edges), text.count("-.->")


@pytest.mark.parametrize("export, counts", [(to_dot, dot_counts), (to_mermaid, mermaid_counts)])
@pytest.mark.parametrize("name", NAMES)
def test_text_exports_count_every_node_and_edge(graphs, name, export, counts):
    graph = to_networkx(graphs[name])
    conditions = sum(d["condition"] for _, _, d in graph.edges(data=True))
    assert counts(export(graphs[name])) == (graph.number_of_nodes(), graph.number_of_edges(), conditions)
    collapsed_nodes, _, _ = counts(export(graphs[name], direction="LR", collapse=True))
    assert collapsed_nodes <= graph.number_of_nodes()


def test_text_exports_escape_names():
    x = Ff.InputNode(4, name='in "quoted" \\ <x>')
    perm = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="a|b#c]d\x02")
    inn = Ff.GraphINN([x, perm, Ff.OutputNode(perm, name="z")])
    dot = to_dot(inn)
    assert r'label="in \"quoted\" \\ <x>\n(4,)"' in dot and "\x02" not in dot
    assert dot_counts(dot) == (3, 2, 0)
    mermaid = to_mermaid(inn)
    for label in re.findall(r'"([^"]*)"', mermaid):
        assert not set(label.replace("<br/>", "")) & set("<>|")
    assert "#34;quoted#34;" in mermaid and "a#124;b#35;c]d\ufffd" in mermaid
    assert mermaid_counts(mermaid) == (3, 2, 0)


def test_exports_refuse_unknown_input():
    with pytest.raises(TypeError):
        to_networkx("not a graph")
    with pytest.raises(ValueError, match="direction"):
        to_dot(Ff.InputNode(2), direction="BT")
