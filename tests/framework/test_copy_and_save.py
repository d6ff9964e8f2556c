"""Copies and saves of whole graphs: deep chains copy, pickle and save at any depth (nodes are stored flat),
and graphs built with lambdas save, because only the built modules are kept."""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import sys
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules import InvertibleModule

CHAIN_LENGTH = 500  # linked nodes recursed ~5 frames per node: far beyond the default limit of 1000
HEADROOM = 250  # frames allowed above the caller: a flat copy needs a fixed few dozen, at any length


class Shift(InvertibleModule):
    """Adds a learned vector; cheap, so long chains build quickly."""

    def __init__(self, dims_in, shift: float = 0.5):
        super().__init__(dims_in)
        self.shift = nn.Parameter(torch.full(dims_in[0], shift))

    def forward(self, x, c=None, rev=False, jac=True):
        return (x[0] - self.shift if rev else x[0] + self.shift,), 0.0

    def output_dims(self, input_dims):
        return input_dims


def long_chain(length: int = CHAIN_LENGTH) -> Ff.GraphINN:
    x = Ff.InputNode(2, name="x")
    nodes, node = [x], x
    for i in range(length):
        node = Ff.Node(node, Shift, {"shift": 0.001 * i}, name=f"shift_{i}")
        nodes.append(node)
    return Ff.GraphINN(nodes + [Ff.OutputNode(node, name="z")])


@contextlib.contextmanager
def recursion_headroom(frames: int) -> Iterator[None]:
    """Lower the recursion limit to ``frames`` above the current depth: what passes uses a bounded depth."""
    depth, frame = 0, sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def torch_round_trip(module: nn.Module) -> nn.Module:
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def averaged(module: nn.Module) -> nn.Module:
    return torch.optim.swa_utils.AveragedModel(module).module


COPIES: dict[str, Callable[[nn.Module], nn.Module]] = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda module: pickle.loads(pickle.dumps(module)),
    "torch.save": torch_round_trip,
    "AveragedModel": averaged,
}


@pytest.fixture(scope="module")
def chain_and_result():
    inn = long_chain()
    x = torch.randn(3, 2)
    return inn, x, inn(x)[0]


@pytest.mark.parametrize("how", sorted(COPIES))
def test_a_long_chain_copies_with_bounded_recursion(how, chain_and_result):
    inn, x, expected = chain_and_result
    with recursion_headroom(HEADROOM):
        clone = COPIES[how](inn)
    assert clone is not inn and len(clone.node_list) == len(inn.node_list)
    torch.testing.assert_close(clone(x)[0], expected)
    torch.testing.assert_close(clone(expected, rev=True)[0], x)
    # the copy has its own nodes and parameters, linked like the original's
    assert all(a is not b and a.name == b.name for a, b in zip(clone.node_list, inn.node_list))
    assert clone.node_list[1].inputs[0][0] is clone.node_list[0]
    assert clone.get_module_by_name("shift_7") is clone.module_list[7]
    assert clone.module_list[0].shift is not inn.module_list[0].shift


def test_copied_nodes_sort_in_declaration_order_after_older_nodes(chain_and_result):
    inn, _, _ = chain_and_result
    clone = copy.deepcopy(inn)
    assert Ff.collect_nodes(clone.node_list[-1]) == clone.node_list
    later = Ff.InputNode(2, name="later")
    assert later.serial > max(node.serial for node in clone.node_list)


def test_a_graph_built_with_lambdas_saves_and_loads():
    x = Ff.InputNode(4, name="x")
    label = Ff.ConditionNode(3, name="label")
    embedding = Ff.FeedForwardNode(label, 2, lambda: nn.Linear(3, 2), name="embedding")
    coupling = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": lambda c_in, c_out: nn.Linear(c_in, c_out)},
                       conditions=embedding, name="coupling")
    inn = Ff.GraphINN([x, label, embedding, coupling, Ff.OutputNode(coupling, name="z")]).double()
    for parameter in inn.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    data, condition = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    expected = inn(data, c=[condition])
    loaded = torch_round_trip(inn)
    z, log_det = loaded(data, c=[condition])
    torch.testing.assert_close(z, expected[0])
    torch.testing.assert_close(log_det, expected[1])
    assert loaded.get_node_by_name("coupling").module_args is None  # the lambda is not kept


def test_sequence_inn_copies_and_averages():
    inn = Ff.SequenceINN(2)
    for i in range(CHAIN_LENGTH):
        inn.append(Shift, shift=0.001 * i)
    x = torch.randn(3, 2)
    with recursion_headroom(HEADROOM):
        clones = [how(inn) for how in COPIES.values()]
    for clone in clones:
        torch.testing.assert_close(clone(x)[0], inn(x)[0])
