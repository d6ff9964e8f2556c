"""Random graphs from ``graphs()`` invert and report exact log-dets; failures shrink and name the node."""

from __future__ import annotations

import pytest
import torch
from hypothesis import find, given, note, settings
from hypothesis import strategies as st

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.testing import ContractViolation, check_invertible, check_log_det, describe, perturb_parameters
from freia_graph.testing.strategies import BlockSpec, DrawnGraphINN, graph_inputs, graphs, is_splittable
from tests.testing.planted import Coupling, WrongLogDetSign

VECTOR_OF_SIX = st.just((6,))


def _module_nodes(inn) -> list:
    return [node for node in inn.node_list if node.module is not None]


@given(inn=graphs(), data=st.data())
def test_random_graphs_invert_and_report_exact_log_dets(inn, data):
    note(describe(inn))
    x, c = data.draw(graph_inputs(inn, batch_size=st.integers(1, 2)), label="x, c")
    z, _ = data.draw(graph_inputs(inn, batch_size=x[0].shape[0], rev=True), label="z")
    check_invertible(inn, x, c, z=z)
    check_log_det(inn, x, c)


@given(inn=graphs(max_nodes=4, inputs=(2, 2), conditions=(0, 0), images=False, max_depth=0))
def test_drawn_graphs_follow_the_options(inn):
    assert isinstance(inn, DrawnGraphINN)
    assert len(inn.input_nodes) == 2 and not inn.condition_nodes
    assert all(len(shape) == 1 for node in inn.node_list for shape in node.output_dims)
    assert len(_module_nodes(inn)) <= 4
    assert not any(isinstance(node.module, Ff.GraphINN) for node in inn.node_list)


@settings(max_examples=10)
@given(inn=graphs(blocks=[Fm.PermuteRandom], require=Coupling, input_shapes=VECTOR_OF_SIX, max_nodes=6))
def test_a_required_user_block_is_in_every_graph(inn):
    assert isinstance(_module_nodes(inn)[0].module, Coupling)


@settings(max_examples=10)
@given(inn=graphs(max_nodes=3, images=False))
def test_drawn_graphs_print_one_line_per_node(inn):
    text = repr(inn)
    assert text.startswith("GraphINN(\n")
    for node in inn.node_list:
        assert f"    {node.name} = " in text


def test_failing_graphs_shrink_to_the_faulty_block():
    blocks = [BlockSpec(Fm.PermuteRandom), BlockSpec(WrongLogDetSign, accepts=is_splittable)]

    def log_det_is_wrong(inn) -> bool:
        x = [torch.randn(2, *shape, dtype=torch.float64) for shape in inn.dims_in]
        c = [torch.randn(2, *shape, dtype=torch.float64) for shape in inn.dims_c]
        try:
            check_log_det(inn, x, c)
        except ContractViolation:
            return True
        return False

    smallest = find(graphs(blocks, images=False), log_det_is_wrong, settings=settings(max_examples=200, database=None))
    assert [type(node.module) for node in _module_nodes(smallest)] == [WrongLogDetSign], describe(smallest)
    assert len(smallest.node_list) == 3


def _faulty_chain(prefix: str, force_tuple_output: bool) -> Ff.GraphINN:
    x = Ff.InputNode(6, name=f"{prefix}x")
    permute = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name=f"{prefix}permute")
    faulty = Ff.Node(permute, WrongLogDetSign, name=f"{prefix}faulty")
    nodes = [x, permute, faulty, Ff.OutputNode(faulty, name=f"{prefix}z")]
    return Ff.GraphINN(nodes, force_tuple_output=force_tuple_output)


def _nested_faulty_chain() -> Ff.GraphINN:
    x = Ff.InputNode(6, name="x")
    inner = Ff.Node(x, _faulty_chain("inner_", True), name="inner")
    return Ff.GraphINN([x, inner, Ff.OutputNode(inner, name="z")])


@pytest.mark.parametrize(
    "build, blamed",
    [(lambda: _faulty_chain("", False), ["faulty"]), (_nested_faulty_chain, ["inner", "inner_faulty"])],
    ids=["flat", "nested"],
)
def test_graph_failures_name_the_faulty_node(build, blamed):
    torch.manual_seed(0)
    inn = perturb_parameters(build().double())
    with pytest.raises(ContractViolation, match=r"\[log_det\] GraphINN") as caught:
        check_log_det(inn, torch.randn(3, 6, dtype=torch.float64))
    for name in blamed:
        assert f"caused by [log_det] node '{name}'" in str(caught.value)


@pytest.mark.parametrize(
    "options, error",
    [
        ({"moves": ["teleport"]}, ValueError),
        ({"blocks": [object]}, TypeError),
    ],
)
def test_bad_strategy_options_raise(options, error):
    with pytest.raises(error):
        graphs(**options)


def test_checks_accept_sequence_inns():
    torch.manual_seed(0)
    sequence = Ff.SequenceINN(6)
    sequence.append(Coupling, cond=0, cond_shape=(3,))
    sequence.append(Fm.PermuteRandom, seed=0)
    sequence.append(WrongLogDetSign)
    sequence = perturb_parameters(sequence.double())
    x, c = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    check_invertible(sequence, x, [c], z=torch.randn(3, 6, dtype=torch.float64))
    with pytest.raises(ContractViolation, match=r"\[log_det\] SequenceINN\(dims_in=\[\(6,\)\], dims_c=\[\(3,\)\]\)"):
        check_log_det(sequence, x, [c])


def test_drawn_graphs_include_feed_forward_nodes_reading_the_flow():
    def reads_the_flow(inn) -> bool:
        return any(node.kind == "feed_forward" and source.kind not in ("condition", "feed_forward")
                   for node in inn.node_list for source, _ in node.conditions)

    found = find(graphs(moves=["split", "read_flow", "block"], images=False, max_depth=0), reads_the_flow,
                 settings=settings(max_examples=200, database=None))
    x, c = [torch.randn(2, *shape, dtype=torch.float64) for shape in found.dims_in], []
    perturb_parameters(found.double(), scale=0.3)
    check_invertible(found, x, c)
    check_log_det(found, x, c)
