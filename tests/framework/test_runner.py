"""The generated runner: its source is shown in tracebacks while it lives and leaves linecache with it; it and the
plan interpreter (what torch.compile traces) agree on every graph."""

from __future__ import annotations

import gc
import linecache
import traceback

import pytest
import torch

import freia_graph.framework as Ff
from freia_graph.framework.runner import interpret_plan
from freia_graph.modules import InvertibleModule
from tests.framework.graphs import GRAPHS, build


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
    assert "add(modules[0]([s0], None, rev, jac), log_det, constant, jac)" in text


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


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("jac", [True, False])
def test_interpreter_matches_generated_code(name, rev, jac):
    inn, inputs, conditions = build(name)
    outputs, _ = inn(inputs, c=conditions or None)
    data = (list(outputs) if isinstance(outputs, tuple) else [outputs]) if rev else inputs
    modules = tuple(inn.module_list)
    expected = inn._runner(rev).run(modules, data, conditions, rev, jac)
    got = interpret_plan(inn.plans[rev], modules, data, conditions, rev, jac)
    for value, reference in zip(got[0], expected[0]):
        torch.testing.assert_close(value, reference, rtol=0, atol=0)
    if jac:
        torch.testing.assert_close(got[1], expected[1], rtol=0, atol=0)
        total = inn(data, c=conditions or None, rev=rev)[1]  # the runner's total is the graph's log-det
        torch.testing.assert_close(torch.as_tensor(got[1]) + torch.zeros_like(total), total)


def test_runners_are_generated_on_the_first_call_in_each_direction():
    inn, inputs, conditions = build("split_merge")
    assert inn._runners == [None, None]
    z, _ = inn(inputs)
    assert inn._runners[0] is not None and inn._runners[1] is None
    inn(z, rev=True)
    assert inn._runners[1] is not None
