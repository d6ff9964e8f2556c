"""Malformed graphs and declarations raise the documented ValueError or TypeError, naming what is wrong.

Random digraphs: a chain of nodes is declared (declaration order cannot make a cycle), then every
node's input is rewired to a random earlier or later node, or itself. A networkx oracle says whether
the rewired graph is valid; GraphINN must build exactly the valid ones and report cycles as cycles.
"""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm


def _chain(length: int) -> tuple[Ff.InputNode, list[Ff.Node], Ff.OutputNode]:
    x = Ff.InputNode(4, name="x")
    nodes, previous = [], x
    for index in range(length):
        previous = Ff.Node(previous, Fm.PermuteRandom, {"seed": index}, name=f"n{index}")
        nodes.append(previous)
    return x, nodes, Ff.OutputNode(previous, name="z")


def _is_valid(sources: dict[str, str]) -> bool:
    """Every port read exactly once and no cycle: the oracle, from consumer -> producer names."""
    graph = nx.DiGraph((producer, consumer) for consumer, producer in sources.items())
    producers = list(sources.values())
    return len(set(producers)) == len(producers) and nx.is_directed_acyclic_graph(graph)


@given(data=st.data(), length=st.integers(1, 6))
def test_rewired_graphs_build_exactly_when_valid(data, length):
    x, nodes, z = _chain(length)
    producers = [x, *nodes]
    consumers = [*nodes, z]
    sources = {}
    for original, consumer in zip(producers, consumers, strict=True):
        # Keeping some original edges makes valid graphs, and cycles through valid parts, common enough.
        producer = data.draw(st.just(original) | st.sampled_from(producers), label=f"{consumer.name} reads")
        consumer.inputs = [(producer, 0)]
        sources[consumer.name] = producer.name
    if _is_valid(sources):
        Ff.GraphINN([x, *nodes, z])
        return
    has_cycle = not nx.is_directed_acyclic_graph(nx.DiGraph((p, c) for c, p in sources.items()))
    with pytest.raises(ValueError, match="cycle" if has_cycle else "consumed"):
        Ff.GraphINN([x, *nodes, z])


def _subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Linear(c_in, c_out)


def _concat_of_mismatched_shapes():
    vector, image = Ff.InputNode(4), Ff.InputNode(3, 2, 2)
    Ff.Node([vector, image], Fm.Concat, {})


def _condition_from_an_input():
    x, other = Ff.InputNode(4), Ff.InputNode(2)
    Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": _subnet}, conditions=other)


def _condition_for_a_block_without_conditions():
    Ff.Node(Ff.InputNode(4), Fm.PermuteRandom, {}, conditions=Ff.ConditionNode(2))


def _missing_output_port():
    split = Ff.Node(Ff.InputNode(4), Fm.Split, {})
    Ff.Node(split.out5, Fm.PermuteRandom, {})


def _module_type_is_not_a_class():
    Ff.Node(Ff.InputNode(4), "PermuteRandom", {})


def _module_args_not_a_dict():
    Ff.Node(Ff.InputNode(4), Fm.PermuteRandom, [("seed", 0)])


def _instance_with_module_args():
    Ff.Node(Ff.InputNode(4), Fm.PermuteRandom([(4,)]), {"seed": 0})


def _instance_for_other_shapes():
    Ff.Node(Ff.InputNode(4), Fm.PermuteRandom([(5,)]))


def _nested_graph_without_tuple_output():
    x = Ff.InputNode(4, name="inner_x")
    inner = Ff.GraphINN([x, Ff.OutputNode(x, name="inner_z")])
    Ff.Node(Ff.InputNode(4), inner)


def _feed_forward_without_conditions():
    Ff.FeedForwardNode([], 4, nn.Linear, {"in_features": 2, "out_features": 4})


def _input_of_size_zero():
    Ff.InputNode(0)


def _duplicate_names():
    x = Ff.InputNode(4, name="same")
    Ff.GraphINN([x, Ff.OutputNode(x, name="same")])


def _node_missing_from_node_list():
    x = Ff.InputNode(4, name="x")
    permute = Ff.Node(x, Fm.PermuteRandom, {}, name="permute")
    Ff.GraphINN([x, Ff.OutputNode(permute, name="z")])


def _output_consumed_twice():
    x = Ff.InputNode(4, name="x")
    Ff.GraphINN([x, Ff.OutputNode(x, name="z1"), Ff.OutputNode(x, name="z2")])


def _output_never_consumed():
    x = Ff.InputNode(4, name="x")
    split = Ff.Node(x, Fm.Split, {}, name="split")
    Ff.GraphINN([x, split, Ff.OutputNode(split.out0, name="z")])


def _no_output_node():
    Ff.GraphINN([Ff.InputNode(4, name="x")])


def _not_a_node_in_node_list():
    x = Ff.InputNode(4, name="x")
    Ff.GraphINN([x, "z"])


def _call(x=None, c=None):
    x_node, c_node = Ff.InputNode(4, name="x"), Ff.ConditionNode(2, name="c")
    coupling = Ff.Node(x_node, Fm.GLOWCouplingBlock, {"subnet_constructor": _subnet}, conditions=c_node, name="g")
    inn = Ff.GraphINN([x_node, c_node, coupling, Ff.OutputNode(coupling, name="z")])
    inn(torch.randn(3, 4) if x is None else x, c=[torch.randn(3, 2)] if c is None else c)


MALFORMED = [
    (_concat_of_mismatched_shapes, ValueError, "Concat"),
    (_condition_from_an_input, TypeError, "condition"),
    (_condition_for_a_block_without_conditions, ValueError, "condition"),
    (_missing_output_port, ValueError, "output"),
    (_module_type_is_not_a_class, TypeError, "module_type"),
    (_module_args_not_a_dict, TypeError, "module_args"),
    (_instance_with_module_args, TypeError, "module_args"),
    (_instance_for_other_shapes, ValueError, r"\(5,\)"),
    (_nested_graph_without_tuple_output, TypeError, "force_tuple_output"),
    (_feed_forward_without_conditions, ValueError, "condition"),
    (_input_of_size_zero, ValueError, "positive"),
    (_duplicate_names, ValueError, "same"),
    (_node_missing_from_node_list, ValueError, "permute"),
    (_output_consumed_twice, ValueError, "consumed 2 times"),
    (_output_never_consumed, ValueError, "not consumed"),
    (_no_output_node, ValueError, "OutputNode"),
    (_not_a_node_in_node_list, TypeError, "node_list"),
    (lambda: _call(x=torch.randn(3, 5)), ValueError, r"\(batch, 4\)"),
    (lambda: _call(c=[]), ValueError, "condition"),
    (lambda: _call(c=[torch.randn(2, 2)]), ValueError, "batch size"),
    (lambda: _call(x=[torch.randn(3, 4), torch.randn(3, 4)]), ValueError, "expected 1"),
    (lambda: _call(x="not a tensor"), TypeError, "tensor"),
]


@pytest.mark.parametrize(
    "declare, error, message",
    MALFORMED,
    ids=[
        getattr(d, "__name__", "call").strip("_") if d.__name__ != "<lambda>" else f"call{i}"
        for i, (d, _, _) in enumerate(MALFORMED)
    ],
)
def test_malformed_declarations_and_calls_raise(declare, error, message):
    with pytest.raises(error, match=message):
        declare()
