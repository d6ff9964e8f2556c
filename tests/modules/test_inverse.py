"""Inverse: runs a block backwards, as a graph node, around graphs, and checks its arguments."""

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from tests.modules.registry import linear_subnet


def _glow(dims_c=None):
    block = Fm.GLOWCouplingBlock([(6,)], dims_c, subnet_constructor=linear_subnet)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return block


def _graph(force_tuple_output=True):
    x = Ff.InputNode(6, name="x")
    glow = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": linear_subnet}, name="glow")
    return Ff.GraphINN([x, glow, Ff.OutputNode(glow, name="z")], force_tuple_output=force_tuple_output)


@pytest.mark.parametrize("conditional", [False, True])
def test_inverse_runs_the_block_backwards(conditional):
    block = _glow([(3,)] if conditional else None)
    inverse = Fm.Inverse(block)
    z, c = [torch.randn(4, 6)], ([torch.randn(4, 3)] if conditional else None)
    (x,), log_det = inverse(z, c)
    (x_expected,), log_det_expected = block(z, c, rev=True)
    assert torch.equal(x, x_expected) and torch.equal(log_det, log_det_expected)
    (z_back,), log_det_rev = inverse([x], c, rev=True)
    torch.testing.assert_close(z_back, z[0])
    torch.testing.assert_close(log_det_rev, -log_det)
    assert inverse.dims_c == block.dims_c and list(inverse.parameters()) == list(block.parameters())


def test_inverse_as_a_graph_node_undoes_the_block():
    x = Ff.InputNode(3, 8, 8, name="x")
    down = Ff.Node(x, Fm.HaarDownsampling, {"rebalance": 0.5}, name="down")
    up = Ff.Node(down, Fm.Inverse(Fm.HaarDownsampling([(3, 8, 8)], rebalance=0.5)), None, name="up")
    inn = Ff.GraphINN([x, down, up, Ff.OutputNode(up, name="out")])
    images = torch.randn(2, 3, 8, 8)
    out, log_det = inn(images)
    torch.testing.assert_close(out, images)
    torch.testing.assert_close(log_det, torch.zeros(2), atol=1e-5, rtol=0)


def test_inverse_of_a_graph_and_of_an_inverse():
    inn = _graph()
    z = torch.randn(5, 6)
    (x,), log_det = Fm.Inverse(inn)([z])
    (x_expected,), log_det_expected = inn([z], rev=True)
    torch.testing.assert_close(x, x_expected)
    torch.testing.assert_close(log_det, log_det_expected)
    (z_again,), _ = Fm.Inverse(Fm.Inverse(inn))([x])
    torch.testing.assert_close(z_again, z)


def test_inverse_reports_whether_the_wrapped_graph_returns_tuples():
    assert Fm.Inverse(_graph(force_tuple_output=False)).force_tuple_output is False
    assert Fm.Inverse(Fm.Flatten([(2, 2)])).force_tuple_output is True


def test_inverse_rejects_what_it_cannot_invert():
    with pytest.raises(TypeError, match="InvertibleModule instance"):
        Fm.Inverse(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="InvertibleModule instance"):
        Fm.Inverse(Fm.Flatten)
    inverse = Fm.Inverse(Fm.Flatten([(2, 3)]))
    assert inverse.output_dims([(6,)]) == [(2, 3)]
    with pytest.raises(ValueError, match=r"takes inputs of shapes \[\(6,\)\]"):
        inverse.output_dims([(2, 3)])
