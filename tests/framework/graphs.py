"""Small graphs that exercise every kind of node, shared by the framework tests.

Each builder returns ``(inn, inputs, conditions)`` in float64 with parameters perturbed away from their
initialisation, so that a wrong log-det cannot hide behind an identity-initialised subnet.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.testing import perturb_parameters

BATCH = 3


def subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(c_in, 16), nn.Tanh(), nn.Linear(16, c_out))


def conv_subnet(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, c_out, 3, padding=1))


def glow(port, name: str, conditions=None, constructor=subnet) -> Ff.Node:
    return Ff.Node(port, Fm.GLOWCouplingBlock, {"subnet_constructor": constructor, "clamp": 2.0},
                   conditions=conditions, name=name)


def chain() -> list:
    x = Ff.InputNode(6, name="x")
    a = glow(x, "a")
    p = Ff.Node(a, Fm.PermuteRandom, {"seed": 1}, name="p")
    b = Ff.Node(p, Fm.AllInOneBlock, {"subnet_constructor": subnet}, name="b")
    return [x, a, p, b, Ff.OutputNode(b, name="z")]


def split_merge() -> list:
    x = Ff.InputNode(7, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 3]}, name="split")
    a = glow(split.out0, "a")
    p = Ff.Node(split.out1, Fm.PermuteRandom, {"seed": 2}, name="p")
    merge = Ff.Node([p.out0, a.out0], Fm.Concat, {}, name="merge")
    b = glow(merge, "b")
    return [x, split, a, p, merge, b, Ff.OutputNode(b, name="z")]


def several_inputs_and_outputs() -> list:
    x1, x2 = Ff.InputNode(4, name="x1"), Ff.InputNode(6, name="x2")
    merge = Ff.Node([x1, x2], Fm.Concat, {}, name="merge")
    a = glow(merge, "a")
    split = Ff.Node(a, Fm.Split, {"section_sizes": [3, 7]}, name="split")
    b = glow(split.out1, "b")
    return [x1, x2, merge, a, split, b, Ff.OutputNode(split.out0, name="z1"), Ff.OutputNode(b, name="z2")]


def conditional() -> list:
    x = Ff.InputNode(6, name="x")
    label = Ff.ConditionNode(3, name="label")
    embedding = Ff.FeedForwardNode(label, 5, nn.Linear, {"in_features": 3, "out_features": 5}, name="embedding")
    a = glow(x, "a", conditions=label)
    b = glow(a, "b", conditions=embedding)
    c = Ff.Node(b, Fm.AllInOneBlock, {"subnet_constructor": subnet}, conditions=[label, embedding], name="c")
    return [x, label, embedding, a, b, c, Ff.OutputNode(c, name="z")]


def reads_the_flow() -> list:
    # FrEIA HEAD's pattern: feed-forward nodes read one branch of a split and condition couplings on the other
    x = Ff.InputNode(7, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [3, 4]}, name="split")
    a = glow(split.out0, "a")
    summary = Ff.FeedForwardNode(split.out0, 5, nn.Linear, {"in_features": 3, "out_features": 5}, name="summary")
    b = glow(split.out1, "b", conditions=summary)
    again = Ff.FeedForwardNode([summary, a], 2, _Mix, {}, name="again")
    c = glow(b, "c", conditions=again)
    merge = Ff.Node([a, c], Fm.Concat, {}, name="merge")
    return [x, split, a, summary, b, again, c, merge, Ff.OutputNode(merge, name="z")]


class _Mix(nn.Module):
    """Reads a condition and a port of the flow."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5 + 3, 2)

    def forward(self, condition: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([condition, value], dim=1))


def nested() -> list:
    inner_x = Ff.InputNode(6, name="inner_x")
    inner_c = Ff.ConditionNode(2, name="inner_c")
    inner_a = glow(inner_x, "inner_a", conditions=inner_c)
    inner_p = Ff.Node(inner_a, Fm.PermuteRandom, {"seed": 3}, name="inner_p")
    inner = Ff.GraphINN([inner_x, inner_c, inner_a, inner_p, Ff.OutputNode(inner_p, name="inner_z")],
                        force_tuple_output=True)
    x = Ff.InputNode(6, name="x")
    c = Ff.ConditionNode(2, name="c")
    a = glow(x, "a")
    sub = Ff.Node(a, inner, None, conditions=c, name="sub")
    return [x, c, a, sub, Ff.OutputNode(sub, name="z")]


def image() -> list:
    x = Ff.InputNode(2, 4, 4, name="x")
    a = glow(x, "a", constructor=conv_subnet)
    down = Ff.Node(a, Fm.HaarDownsampling, {}, name="down")
    split = Ff.Node(down, Fm.Split, {"section_sizes": [3, 5]}, name="split")
    b = glow(split.out1, "b", constructor=conv_subnet)
    flat_a, flat_b = Ff.Node(split.out0, Fm.Flatten, {}, name="flat_a"), Ff.Node(b, Fm.Flatten, {}, name="flat_b")
    merge = Ff.Node([flat_a, flat_b], Fm.Concat, {}, name="merge")
    return [x, a, down, split, b, flat_a, flat_b, merge, Ff.OutputNode(merge, name="z")]


GRAPHS: dict[str, Callable[[], list]] = {
    "chain": chain,
    "split_merge": split_merge,
    "several_inputs_and_outputs": several_inputs_and_outputs,
    "conditional": conditional,
    "reads_the_flow": reads_the_flow,
    "nested": nested,
    "image": image,
}


def build(name: str, seed: int = 0) -> tuple[Ff.GraphINN, list[torch.Tensor], list[torch.Tensor]]:
    """The named graph in float64 with perturbed parameters, and random inputs and conditions for it."""
    torch.manual_seed(seed)
    inn = Ff.GraphINN(GRAPHS[name]()).double()
    perturb_parameters(inn, scale=0.3, seed=seed)
    inputs = [torch.randn(BATCH, *shape, dtype=torch.float64) for shape in inn.dims_in]
    conditions = [torch.randn(BATCH, *shape, dtype=torch.float64) for shape in inn.dims_c]
    return inn, inputs, conditions
