"""Notebook display and text summaries: pictures where possible, text always, never an exception."""

from __future__ import annotations

import pytest

from freia_graph.viz import mimebundle, summary, to_networkx
from tests.viz.graphs import branching_graph


class Exploding:
    """Every attribute access fails, as in a half-built or corrupted object."""

    def __getattribute__(self, name):
        if name in ("__class__", "__dict__"):
            return object.__getattribute__(self, name)
        raise RuntimeError(f"cannot read {name}")


def broken_graph():
    inn = branching_graph()
    inn.node_list[3].output_dims = None  # a node corrupted after building
    return inn


@pytest.mark.parametrize("name", ["branching", "chain", "sequence"])
def test_graphs_and_sequences_show_a_picture_and_a_table(graphs, name):
    bundle = graphs[name]._repr_mimebundle_()
    assert bundle["image/svg+xml"].startswith("<svg")
    table = bundle["text/plain"]
    assert table == graphs[name].summary()
    title, header, *rows = table.splitlines()
    assert header.split()[:3] == ["#", "name", "kind"]
    assert len(rows) == to_networkx(graphs[name]).number_of_nodes()
    assert f"{sum(p.numel() for p in graphs[name].parameters()):,} parameters" in title


def test_a_node_shows_its_graph_with_itself_highlighted(graphs):
    node = graphs["branching"].get_node_by_name("glow")
    bundle = node._repr_mimebundle_()
    assert bundle["image/svg+xml"].count("highlighted") == 1
    assert 'class="node invertible highlighted" data-name="glow"' in bundle["image/svg+xml"]
    assert bundle["text/plain"].startswith("Node 'glow' (invertible, GLOWCouplingBlock): inputs split.out0 (4,)")
    assert "conditions embedding (4,)" in summary(node)


def test_include_and_exclude_select_mime_types(graphs):
    inn = graphs["branching"]
    assert list(mimebundle(inn, include={"text/plain"})) == ["text/plain"]
    assert list(mimebundle(inn, exclude={"text/plain"})) == ["image/svg+xml"]


@pytest.mark.parametrize("make", [object, Exploding, lambda: 42, lambda: [], broken_graph],
                         ids=["object", "exploding", "int", "empty list", "corrupted graph"])
def test_display_never_raises(make):
    thing = make()
    bundle = mimebundle(thing)
    assert isinstance(bundle["text/plain"], str) and bundle["text/plain"]
    assert isinstance(summary(thing), str)
    assert "image/svg+xml" not in bundle or bundle["image/svg+xml"].startswith("<svg")
