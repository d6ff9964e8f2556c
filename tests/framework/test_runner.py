"""The generated runner: its source is shown in tracebacks while it lives and leaves linecache with it."""

from __future__ import annotations

import gc
import linecache
import traceback

import pytest
import torch

import freia_graph.framework as Ff
from freia_graph.modules import InvertibleModule


class Failing(InvertibleModule):
    def forward(self, x, c=None, rev=False, jac=True):
        raise RuntimeError("boom")

    def output_dims(self, input_dims):
        return input_dims


def plan_entries() -> set[str]:
    return {name for name in linecache.cache if "freia_graph_plans" in name}


def test_tracebacks_show_the_generated_line():
    x = Ff.InputNode(2, name="x")
    bad = Ff.Node(x, Failing, {}, name="bad")
    inn = Ff.GraphINN([x, bad, Ff.OutputNode(bad, name="z")], check_inputs=False)
    with pytest.raises(RuntimeError, match="boom") as caught:
        inn(torch.zeros(1, 2))
    text = "".join(traceback.format_exception(caught.value))
    assert "log_dets[0] = modules[0]([s0], None, rev, jac)" in text


def test_linecache_entries_appear_on_failure_and_go_with_their_runners():
    gc.collect()
    before = plan_entries()
    x = Ff.InputNode(2)
    inn = Ff.GraphINN([x, Ff.OutputNode(x)])
    inn(torch.zeros(1, 2), intermediate_outputs=True)  # builds a recording runner too
    assert plan_entries() == before  # building and running register nothing
    graphs = []
    for size in range(2, 12):
        x = Ff.InputNode(size)
        bad = Ff.Node(x, Failing, {})
        graphs.append(Ff.GraphINN([x, bad, Ff.OutputNode(bad)], check_inputs=False))
        with pytest.raises(RuntimeError):
            graphs[-1](torch.zeros(1, size))
    assert plan_entries() - before  # the graphs share one source, hence one entry
    del graphs
    gc.collect()
    assert plan_entries() <= before
