"""SequenceINN: the chain, its conditions, indexing and slicing, and bad use."""

import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules import InvertibleModule
from freia_graph.testing import check_invertible, check_log_det, perturb_parameters
from tests.framework.graphs import conv_subnet, subnet


def conditional_chain() -> Ff.SequenceINN:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(6)
    inn.append(Fm.GLOWCouplingBlock, cond=0, cond_shape=(3,), subnet_constructor=subnet)
    inn.append(Fm.PermuteRandom, seed=0)
    inn.append(Fm.AllInOneBlock, cond=1, cond_shape=[2], subnet_constructor=subnet)
    inn.append(Fm.GLOWCouplingBlock, cond=0, subnet_constructor=subnet)
    return perturb_parameters(inn.double(), scale=0.3)


def image_chain() -> Ff.SequenceINN:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(2, 4, 4)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=conv_subnet)
    inn.append(Fm.HaarDownsampling)
    inn.append(Fm.Flatten)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet)
    return perturb_parameters(inn.double(), scale=0.3)


def test_conditional_chain_inverts_with_exact_log_det():
    inn = conditional_chain()
    x = torch.randn(4, 6, dtype=torch.float64)
    c = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)]
    check_invertible(inn, x, c, atol=1e-9, rtol=1e-9)
    check_log_det(inn, x, c, atol=1e-8, rtol=1e-8)
    assert inn.dims_c == [(3,), (2,)]


def test_image_chain_shapes_and_exactness():
    inn = image_chain()
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    assert inn.shapes == [(2, 4, 4), (2, 4, 4), (8, 2, 2), (32,), (32,)]
    z, _ = inn(x)
    assert z.shape == (3, 32)
    check_invertible(inn, x, atol=1e-9, rtol=1e-9)
    check_log_det(inn, x, atol=1e-8, rtol=1e-8)


def test_tensor_or_one_tuple_and_force_tuple_output():
    inn = image_chain()
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    assert torch.equal(inn(x)[0], inn((x,))[0])
    inn.force_tuple_output = True
    outputs, _ = inn([x])
    assert isinstance(outputs, tuple) and len(outputs) == 1


def test_slices_share_modules_and_a_reversed_slice_runs_backwards():
    inn = conditional_chain()
    x = torch.randn(4, 6, dtype=torch.float64)
    c = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)]
    head, tail = inn[:2], inn[2:]
    assert head[0] is inn[0] and len(head) == 2 and len(tail) == 2
    z_head, ld_head = head(x, c)
    z, ld_tail = tail(z_head, c)
    z_full, ld_full = inn(x, c)
    torch.testing.assert_close(z, z_full)
    torch.testing.assert_close(ld_head + ld_tail, ld_full)
    backwards = inn[::-1]
    x_back, ld_back = backwards(z_full, c)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(ld_back, -ld_full)
    assert [type(m) for m in backwards] == [type(m) for m in inn]
    torch.testing.assert_close(backwards(x_back, c, rev=True)[0], z_full)


def test_iteration_len_and_setitem_validates():
    inn = conditional_chain()
    assert len(inn) == 4 and list(inn) == list(inn.module_list)
    replacement = Fm.PermuteRandom([(6,)], seed=5).double()
    inn[1] = replacement
    assert inn[1] is replacement
    with pytest.raises(ValueError, match=r"built for inputs \[\(5,\)\]"):
        inn[1] = Fm.PermuteRandom([(5,)])


class NoneLogDet(InvertibleModule):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        return (x_or_z[0] + (-1.0 if rev else 1.0),), None

    def output_dims(self, input_dims):
        return input_dims


def test_modules_returning_none_without_jac():
    inn = Ff.SequenceINN(3)
    inn.append(NoneLogDet)
    inn.append(NoneLogDet)
    x = torch.randn(2, 3)
    z, log_det = inn(x, jac=False)
    assert torch.equal(log_det, torch.zeros(2))
    torch.testing.assert_close(inn(z, rev=True, jac=False)[0], x)


APPEND_ERRORS = {
    "cond without shape": (lambda inn: inn.append(Fm.GLOWCouplingBlock, cond=0, subnet_constructor=subnet),
                           ValueError, "condition 0 is new, so cond_shape is needed"),
    "cond index gap": (lambda inn: inn.append(Fm.GLOWCouplingBlock, cond=2, cond_shape=(3,), subnet_constructor=subnet),
                       ValueError, "cond must be an index from 0 to 0"),
    "shape without cond": (lambda inn: inn.append(Fm.PermuteRandom, cond_shape=(3,)), ValueError, "without cond"),
    "cond to unconditional": (lambda inn: inn.append(Fm.Flatten, cond=0, cond_shape=(3,)), ValueError,
                              "takes no conditions"),
    "wrong instance": (lambda inn: inn.append(Fm.PermuteRandom([(5,)])), ValueError, r"built for inputs \[\(5,\)\]"),
    "not a module": (lambda inn: inn.append(torch.nn.Linear), TypeError, "expected an InvertibleModule"),
    "kwargs with instance": (lambda inn: inn.append(Fm.PermuteRandom([(6,)]), seed=1), TypeError, "must be empty"),
    "several outputs": (lambda inn: inn.append(Fm.Split), ValueError, "has 2 outputs"),
}


@pytest.mark.parametrize("case", sorted(APPEND_ERRORS))
def test_bad_appends(case):
    make, error, message = APPEND_ERRORS[case]
    with pytest.raises(error, match=message):
        make(Ff.SequenceINN(6))


def test_bad_calls_fail_before_modules_run():
    inn = conditional_chain()
    x = torch.randn(4, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(batch, 6\), got \(4, 5\)"):
        inn(x[:, :5], [torch.randn(4, 3), torch.randn(4, 2)])
    with pytest.raises(ValueError, match=r"condition: expected 2 tensor\(s\)"):
        inn(x, [torch.randn(4, 3, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"condition 'c\[1\]' has batch size 3"):
        inn(x, [torch.randn(4, 3, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)])
    with pytest.raises(ValueError, match=r"slice must have step 1 or -1"):
        inn[::2]


def test_sequence_nests_in_a_graph():
    inner = conditional_chain()
    inner.force_tuple_output = True
    x, c0, c1 = Ff.InputNode(6), Ff.ConditionNode(3), Ff.ConditionNode(2)
    node = Ff.Node(x, inner, None, conditions=[c0, c1])
    graph = Ff.GraphINN([x, c0, c1, node, Ff.OutputNode(node)])
    data = torch.randn(2, 6, dtype=torch.float64)
    conditions = [torch.randn(2, 3, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64)]
    z, log_det = graph(data, c=conditions)
    z_inner, log_det_inner = inner(data, conditions)
    torch.testing.assert_close(z, z_inner[0])
    torch.testing.assert_close(log_det, log_det_inner)


@pytest.mark.parametrize("make", [conditional_chain, image_chain], ids=["conditional", "image"])
def test_dims_out_are_the_shapes_a_call_returns_both_ways(make):
    inn = make()
    x = torch.randn(2, *inn.dims_in[0], dtype=torch.float64)
    conditions = [torch.randn(2, *shape, dtype=torch.float64) for shape in inn.dims_c] or None
    z, _ = inn(x, c=conditions)
    assert inn.dims_out == [tuple(z.shape[1:])]
    backwards = inn[::-1]
    assert backwards.dims_in == inn.dims_out and backwards.dims_out == inn.dims_in
