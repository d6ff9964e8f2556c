"""Malformed graphs fail at construction, and wrong calls fail before any module runs, with messages that
name the node, the port and the shapes."""

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules import InvertibleModule
from tests.framework.graphs import glow, subnet


class Shrink(InvertibleModule):
    """Lies about its output size."""

    def output_dims(self, input_dims):
        return [(input_dims[0][0] - 1,)]


class Unconditional(InvertibleModule):
    def __init__(self, dims_in):
        super().__init__(dims_in)

    def output_dims(self, input_dims):
        return input_dims


def unconsumed_output():
    x = Ff.InputNode(6, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [4, 2]}, name="split")
    return [x, split, Ff.OutputNode(split.out0, name="z")]


def consumed_twice():
    x = Ff.InputNode(6, name="x")
    a = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="a")
    b = Ff.Node(x, Fm.PermuteRandom, {"seed": 1}, name="b")
    return [x, a, b, Ff.OutputNode(a, name="za"), Ff.OutputNode(b, name="zb")]


def cycle():
    x = Ff.InputNode(4, name="x")
    merge = Ff.Node([x, Ff.InputNode(4, name="placeholder")], Fm.Concat, {}, name="merge")
    split = Ff.Node(merge, Fm.Split, {"section_sizes": [4, 4]}, name="split")
    loop = Ff.Node(split.out1, Fm.PermuteRandom, {"seed": 0}, name="loop")
    merge.inputs[1] = (loop, 0)  # rewire after declaration: declaration order alone cannot make a cycle
    return [x, merge, split, loop, Ff.OutputNode(split.out0, name="z")]


def missing_from_node_list():
    x = Ff.InputNode(4, name="x")
    a = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="forgotten")
    return [x, Ff.OutputNode(a, name="z")]


def condition_as_input():
    c = Ff.ConditionNode(4, name="cond")
    return lambda: Ff.Node(c, Fm.PermuteRandom, {"seed": 0}, name="a")


def duplicate_names():
    x = Ff.InputNode(4, name="same")
    a = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="same")
    return [x, a, Ff.OutputNode(a, name="z")]


def disconnected_input():
    x = Ff.InputNode(4, name="x")
    lonely = Ff.InputNode(4, name="lonely")
    return [x, lonely, Ff.OutputNode(x, name="z")]


GRAPH_ERRORS = {
    "unconsumed output": (unconsumed_output, ValueError, r"'split'\.out1 \(shape \(2,\)\) is not consumed"),
    "consumed twice": (consumed_twice, ValueError, r"'x'\.out0 \(shape \(6,\)\) is consumed 2 times.*'a'.*'b'"),
    "cycle": (cycle, ValueError, r"cycle: .*'merge'.*'split'.*'loop'"),
    "missing node": (missing_from_node_list, ValueError, r"'forgotten' is not in node_list"),
    "duplicate names": (duplicate_names, ValueError, r"duplicate node name 'same'"),
    "disconnected input": (disconnected_input, ValueError, r"'lonely'\.out0 \(shape \(4,\)\) is not consumed"),
    "no output": (lambda: [Ff.InputNode(2, name="x")], ValueError, "no OutputNode"),
    "not a node": (lambda: [Ff.InputNode(2), "oops"], TypeError, r"node_list\[1\] is a str"),
}


@pytest.mark.parametrize("case", sorted(GRAPH_ERRORS))
def test_malformed_graphs_fail_at_construction(case):
    make, error, message = GRAPH_ERRORS[case]
    nodes = make()
    with pytest.raises(error, match=message):
        Ff.GraphINN(nodes)


DECLARATION_ERRORS = {
    "condition as input": (
        lambda: Ff.Node(Ff.ConditionNode(4, name="cond"), Fm.PermuteRandom, {}, name="a"),
        TypeError, r"Node 'a' input 0: 'cond' is a ConditionNode; pass it as conditions",
    ),
    "input as condition": (
        lambda: glow(Ff.InputNode(4), "a", conditions=Ff.InputNode(2, name="x2")),
        TypeError, r"Node 'a' condition 0: .*'x2'\.out0 belongs to a InputNode",
    ),
    "condition to unconditional module": (
        lambda: Ff.Node(Ff.InputNode(4), Unconditional, {}, conditions=Ff.ConditionNode(2), name="u"),
        ValueError, r"Node 'u': Unconditional takes no conditions .* \[\(2,\)\]",
    ),
    "instance with wrong dims": (
        lambda: Ff.Node(Ff.InputNode(6), Fm.PermuteRandom([(4,)]), None, name="p"),
        ValueError, r"Node 'p': the PermuteRandom instance was built for inputs \[\(4,\)\], .* \[\(6,\)\]",
    ),
    "instance with module_args": (
        lambda: Ff.Node(Ff.InputNode(4), Fm.PermuteRandom([(4,)]), {"seed": 1}, name="p"),
        TypeError, r"Node 'p': module_args must be None",
    ),
    "output_dims changes size": (
        lambda: Ff.Node(Ff.InputNode(4), Shrink, {}, name="s"),
        ValueError, r"Node 's' \(Shrink\): output_dims gives \[\(3,\)\] \(3 elements.*\[\(4,\)\] \(4 elements",
    ),
    "port out of range": (
        lambda: Ff.Node(Ff.Node(Ff.InputNode(6, name="x"), Fm.Split, {}, name="sp").out2, Fm.PermuteRandom, {},
                        name="p"),
        ValueError, r"'sp' has no output 2 \(outputs: out0, out1\)",
    ),
    "port tuple out of range": (
        lambda: Ff.Node((Ff.InputNode(6, name="x"), 1), Fm.PermuteRandom, {}, name="p"),
        ValueError, r"Node 'p' input 0: 'x' has 1 output\(s\)",
    ),
    "not a port": (
        lambda: Ff.Node("x", Fm.PermuteRandom, {}, name="p"),
        TypeError, r"Node 'p' input 0: expected a node, \(node, index\) or node.outN, got 'x'",
    ),
    "module shape error names the node": (
        lambda: Ff.Node([Ff.InputNode(2, 4), Ff.InputNode(3, 5)], Fm.Concat, {}, name="cat"),
        ValueError, r"Node 'cat' \(Concat\) with input shapes \[\(2, 4\), \(3, 5\)\]",
    ),
    "not a module class": (
        lambda: Ff.Node(Ff.InputNode(2), nn.Linear, {}, name="lin"),
        TypeError, r"Node 'lin': module_type must be an InvertibleModule",
    ),
    "bare tuple dims": (
        lambda: Fm.PermuteRandom((4,)),
        TypeError, r"pass \[\(4,\)\] instead",
    ),
    "output of an output node": (
        lambda: Ff.OutputNode(Ff.OutputNode(Ff.InputNode(2), name="z"), name="zz"),
        TypeError, r"OutputNode 'z' has no outputs",
    ),
    "feed-forward without conditions": (
        lambda: Ff.FeedForwardNode([], 4, nn.Linear, {"in_features": 2, "out_features": 4}, name="ff"),
        ValueError, r"FeedForwardNode 'ff' needs at least one condition",
    ),
}


@pytest.mark.parametrize("case", sorted(DECLARATION_ERRORS))
def test_malformed_declarations_fail_on_their_line(case):
    make, error, message = DECLARATION_ERRORS[case]
    with pytest.raises(error, match=message):
        make()


def test_failed_declaration_leaves_no_trace():
    x = Ff.InputNode(4, name="x")
    with pytest.raises(ValueError):
        Ff.Node(x, Shrink, {}, name="s")
    assert x.outputs == []


def two_input_graph():
    x1, x2 = Ff.InputNode(3, name="x1"), Ff.InputNode(2, 2, name="x2")
    c = Ff.ConditionNode(2, name="c")
    a = glow(x1, "a", conditions=c)
    flat = Ff.Node(x2, Fm.Flatten, {}, name="flat")
    return Ff.GraphINN([x1, x2, c, a, flat, Ff.OutputNode(a, name="z1"), Ff.OutputNode(flat, name="z2")])


CALL_ERRORS = {
    "too few inputs": (lambda x1, x2, c: ([x1], [c]), ValueError, r"expected 2 tensor\(s\) for \['x1', 'x2'\], got 1"),
    "wrong shape": (lambda x1, x2, c: ([x1, x2.flatten(1)], [c]), ValueError,
                    r"input 'x2' must have shape \(batch, 2, 2\), got \(5, 4\)"),
    "batch mismatch": (lambda x1, x2, c: ([x1, x2[:3]], [c]), ValueError,
                       r"input 'x2' has batch size 3, but input 'x1' has 5"),
    "condition batch": (lambda x1, x2, c: ([x1, x2], [c[:2]]), ValueError,
                        r"condition 'c' has batch size 2, but input 'x1' has 5"),
    "dtype mismatch": (lambda x1, x2, c: ([x1, x2.double()], [c]), ValueError, r"input 'x2' is torch.float64"),
    "integer tensors": (lambda x1, x2, c: ([x1.long(), x2.long()], [c.long()]), TypeError, "floating point"),
    "missing condition": (lambda x1, x2, c: ([x1, x2], None), ValueError, r"condition: expected 1 tensor\(s\)"),
    "not a tensor": (lambda x1, x2, c: ([x1, x2.tolist()], [c]), TypeError, r"input 'x2' must be a tensor"),
    "unknown dict key": (lambda x1, x2, c: ({"x1": x1, "y": x2}, [c]), ValueError,
                         r"missing \['x2'\], unknown \['y'\]"),
    "wrong container": (lambda x1, x2, c: ("x", [c]), TypeError, "must be a tensor, a list of tensors or a dict"),
}


@pytest.mark.parametrize("case", sorted(CALL_ERRORS))
def test_wrong_calls_fail_before_any_module_runs(case, monkeypatch):
    inn = two_input_graph()
    ran = []
    for module in inn.module_list:
        monkeypatch.setattr(module, "forward", lambda *a, **k: ran.append(1))
    make, error, message = CALL_ERRORS[case]
    inputs, conditions = make(torch.randn(5, 3), torch.randn(5, 2, 2), torch.randn(5, 2))
    with pytest.raises(error, match=message):
        inn(inputs, c=conditions)
    assert ran == []


def test_reverse_call_checks_output_shapes():
    inn = two_input_graph()
    with pytest.raises(ValueError, match=r"reverse input 'z2' must have shape \(batch, 4\)"):
        inn([torch.randn(5, 3), torch.randn(5, 2, 2)], c=torch.randn(5, 2), rev=True)


def test_checks_can_be_switched_off():
    inn = two_input_graph()
    inn.check_inputs = False
    (z1, z2), _ = inn([torch.randn(5, 3), torch.randn(5, 2, 2)], c=torch.randn(5, 2))
    assert z2.shape == (5, 4)


def test_feed_forward_output_shape_is_checked():
    c = Ff.ConditionNode(3, name="c")
    ff = Ff.FeedForwardNode(c, 5, nn.Linear, {"in_features": 3, "out_features": 4}, name="embed")
    x = Ff.InputNode(4)
    a = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": subnet}, conditions=ff)
    inn = Ff.GraphINN([x, c, ff, a, Ff.OutputNode(a)])
    message = r"FeedForwardNode 'embed' output 0 must have shape \(batch, 5\), got \(2, 4\)"
    with pytest.raises(ValueError, match=message):
        inn(torch.randn(2, 4), c=torch.randn(2, 3))
