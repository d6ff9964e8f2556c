"""Modules are called in the form their ``forward`` accepts, and a module's failure names its node.

FrEIA calls modules by keyword, so FrEIA-era modules declare other signatures; calling them positionally would
fail, or pass ``rev`` as ``jac`` and silently run the wrong direction. Each signature is checked with exact
values, in a graph and in a sequence, forward and reverse.
"""

from __future__ import annotations

import math
import traceback

import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.framework.call_form import CallForm, call_form
from freia_graph.testing.calling import call

LOG2 = math.log(2.0)


class _Doubling(Fm.InvertibleModule):
    """z = 2x (+ the condition when given): exact values make a swapped direction visible."""

    def run(self, x_or_z, c, rev, jac):
        (x,) = x_or_z
        shift = c[0] if c else 0.0
        out = (x - shift) / 2.0 if rev else 2.0 * x + shift
        log_det = x.new_full((x.shape[0],), x[0].numel() * LOG2)
        return (out,), (-log_det if rev else log_det)

    def output_dims(self, input_dims):
        return input_dims


class TutorialTemplate(_Doubling):  # FrEIA's custom-module template
    def forward(self, x, rev=False, jac=True):
        return self.run(x, None, rev, jac)


class SwappedOrder(_Doubling):  # FrEIA's Haar/IRevNet/Flatten/Reshape order
    def forward(self, x, c=None, jac=True, rev=False):
        return self.run(x, c, rev, jac)


class ListDefault(_Doubling):  # FrEIA's _BaseCouplingBlock default
    def forward(self, x, c=[], rev=False, jac=True):  # noqa: B006 - the signature under test
        assert isinstance(c, list), "the module's own default must apply"
        return self.run(x, c, rev, jac)


class StarArgs(_Doubling):
    def forward(self, x, *args, rev=False, jac=True, **kwargs):
        return self.run(x, kwargs.get("c"), rev, jac)


class Contract(_Doubling):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        return self.run(x_or_z, c, rev, jac)


SIGNATURES = [TutorialTemplate, SwappedOrder, ListDefault, StarArgs, Contract]
CONDITIONED = [SwappedOrder, StarArgs, Contract]


def _graph(block: type, conditioned: bool) -> Ff.GraphINN:
    x = Ff.InputNode(3, name="x")
    nodes = [x]
    conditions = None
    if conditioned:
        conditions = Ff.ConditionNode(3, name="c")
        nodes.append(conditions)
    node = Ff.Node(x, block, {}, conditions=conditions, name="block")
    return Ff.GraphINN([*nodes, node, Ff.OutputNode(node, name="z")])


def _sequence(block: type, conditioned: bool) -> Ff.SequenceINN:
    inn = Ff.SequenceINN(3)
    if conditioned:
        inn.append(block, cond=0, cond_shape=(3,))
    else:
        inn.append(block)
    return inn


@pytest.mark.parametrize("conditioned", [False, True], ids=["plain", "conditioned"])
@pytest.mark.parametrize("make", [_graph, _sequence], ids=["graph", "sequence"])
@pytest.mark.parametrize("block", SIGNATURES, ids=lambda block: block.__name__)
def test_every_signature_runs_the_right_direction_with_exact_values(block, make, conditioned):
    if conditioned and block not in CONDITIONED:
        pytest.skip("this signature takes no conditions")
    inn = make(block, conditioned)
    x = torch.tensor([[1.0, -2.0, 3.0]])
    c = [torch.tensor([[0.5, 0.5, 0.5]])] if conditioned else None
    shift = c[0] if conditioned else 0.0
    z, log_det = inn(x, c=c)
    torch.testing.assert_close(z, 2.0 * x + shift)
    torch.testing.assert_close(log_det, torch.tensor([3 * LOG2]))
    x_back, log_det_rev = inn(z, c=c, rev=True)
    torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(log_det_rev, torch.tensor([-3 * LOG2]))


@pytest.mark.parametrize(("block", "conditioned", "form"), [
    (Contract, False, CallForm.POSITIONAL),
    (Contract, True, CallForm.POSITIONAL),
    (TutorialTemplate, False, CallForm.KEYWORD_WITHOUT_C),
    (SwappedOrder, False, CallForm.KEYWORD_WITHOUT_C),
    (SwappedOrder, True, CallForm.KEYWORD),
    (ListDefault, False, CallForm.KEYWORD_WITHOUT_C),
])
def test_the_form_is_decided_once_from_the_signature(block, conditioned, form):
    inn = _graph(block, conditioned)
    assert [step.call for step in inn.plans[0].steps] == [form]
    assert call_form(block([(3,)]), conditioned) is form


def test_our_blocks_keep_the_fast_positional_call():
    inn = _graph(Contract, conditioned=False)
    assert "modules[0]([s0], None, rev, jac)" in inn._runner(False).source


@pytest.mark.parametrize("make", [_graph, _sequence], ids=["graph", "sequence"])
def test_conditions_for_a_forward_without_c_fail_at_construction(make):
    with pytest.raises(TypeError, match=r"TutorialTemplate.*has no parameter 'c'"):
        make(TutorialTemplate, conditioned=True)


def test_a_forward_without_rev_is_refused_naming_the_node():
    class NoReverse(_Doubling):
        def forward(self, x, c=None):
            return self.run(x, c, False, True)

    with pytest.raises(TypeError, match=r"Node 'block' \(NoReverse\).*no parameter 'rev'"):
        _graph(NoReverse, conditioned=False)


@pytest.mark.parametrize("block", SIGNATURES, ids=lambda block: block.__name__)
def test_the_testing_tools_call_every_signature(block):
    (z,), log_det = call(block([(3,)]), [torch.ones(2, 3)], rev=True)
    torch.testing.assert_close(z, torch.full((2, 3), 0.5))


class _Broken(Fm.InvertibleModule):
    def forward(self, x_or_z, c=None, rev=False, jac=True):
        if rev:
            raise RuntimeError("inverse exploded")
        return tuple(x_or_z), 0.0

    def output_dims(self, input_dims):
        return input_dims


def _notes(error: BaseException) -> str:
    return "\n".join(getattr(error, "__notes__", []))


def test_an_error_inside_a_module_names_the_node_direction_and_shapes():
    x = Ff.InputNode(2, 3, name="x")
    p = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="perm")
    bad = Ff.Node(p, _Broken, {}, name="broken")
    inn = Ff.GraphINN([x, p, bad, Ff.OutputNode(bad, name="z")])
    z, _ = inn(torch.randn(4, 2, 3))
    with pytest.raises(RuntimeError, match="inverse exploded") as caught:
        inn(z, rev=True)
    assert "Node 'broken' (_Broken), reverse, inputs of shape (4, 2, 3)" in _notes(caught.value)
    # the generated code's frame shows its source line
    formatted = "".join(traceback.format_exception(caught.value))
    assert "= add(modules[1]([s0], None, rev, jac)" in formatted


def test_an_error_inside_a_nested_graph_names_both_nodes():
    inner_x = Ff.InputNode(3, name="inner_x")
    bad = Ff.Node(inner_x, _Broken, {}, name="broken")
    inner = Ff.GraphINN([inner_x, bad, Ff.OutputNode(bad, name="inner_z")], force_tuple_output=True)
    x = Ff.InputNode(3, name="x")
    sub = Ff.Node(x, inner, None, name="sub")
    inn = Ff.GraphINN([x, sub, Ff.OutputNode(sub, name="z")])
    with pytest.raises(RuntimeError) as caught:
        inn(torch.randn(2, 3), rev=True)
    notes = _notes(caught.value)
    assert "Node 'broken'" in notes and "Node 'sub' (GraphINN), reverse" in notes


def test_an_error_inside_a_sequence_names_the_position():
    inn = Ff.SequenceINN(3)
    inn.append(Fm.PermuteRandom, seed=0)
    inn.append(_Broken)
    with pytest.raises(RuntimeError) as caught:
        inn(torch.randn(2, 3), rev=True)
    assert "module 1 (_Broken) of the SequenceINN, reverse, inputs of shape (2, 3)" in _notes(caught.value)


def test_a_feed_forward_node_reading_the_flow_in_a_reverse_cycle_is_refused():
    x = Ff.InputNode(4, name="x")
    summary = Ff.FeedForwardNode(x, 4, torch.nn.Identity, {}, name="summary")
    coupled = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": torch.nn.Linear}, conditions=summary,
                      name="coupled")
    with pytest.raises(ValueError, match="cycle when run in reverse: 'coupled' -> 'summary' -> 'coupled'"):
        Ff.GraphINN([x, summary, coupled, Ff.OutputNode(coupled, name="z")])


def test_a_port_feeds_one_invertible_consumer_and_many_feed_forward_readers():
    x = Ff.InputNode(4, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [2, 2]}, name="split")
    readers = [Ff.FeedForwardNode(split.out0, 2, torch.nn.Identity, {}, name=f"read{i}") for i in range(3)]
    twice = Ff.Node(split.out0, Fm.PermuteRandom, {"seed": 0}, name="twice")
    with pytest.raises(ValueError, match=r"'split'.out0 \(shape \(2,\)\) is consumed 2 times"):
        Ff.GraphINN([x, split, *readers, twice, Ff.Node(split.out0, Fm.PermuteRandom, {}, name="third"),
                     Ff.OutputNode(twice)])


def _mixture_graph() -> Ff.GraphINN:
    components, dims = 3, 2
    x = Ff.InputNode(dims, name="x")
    w = Ff.ConditionNode(components, name="w")
    mu = Ff.ConditionNode(components, dims, name="mu")
    u = Ff.ConditionNode(components, dims * (dims + 1) // 2, name="U")
    index = Ff.ConditionNode(0, name="i")
    gmm = Ff.Node(x, Fm.GaussianMixtureModel, {}, conditions=[w, mu, u, index], name="gmm")
    return Ff.GraphINN([x, w, mu, u, index, gmm, Ff.OutputNode(gmm, name="z")]).double()


@pytest.mark.parametrize("choice", ["indices", "seed", "every component"])
def test_an_index_condition_takes_integer_indices_a_seed_or_none(choice):
    torch.manual_seed(0)
    inn, batch = _mixture_graph(), 5
    w = Fm.GaussianMixtureModel.normalize_weights(torch.randn(batch, 3, dtype=torch.float64))
    mu, u = torch.randn(batch, 3, 2, dtype=torch.float64), torch.randn(batch, 3, 3, dtype=torch.float64)
    index = {"indices": torch.randint(0, 3, (batch,)), "seed": 1234, "every component": None}[choice]
    x = torch.randn(batch, 2, dtype=torch.float64)
    z, log_det = inn(x, c=[w, mu, u, index])
    x_back, log_det_rev = inn(z, c=[w, mu, u, index], rev=True)
    if choice == "every component":  # one x under each component, as in FrEIA
        assert z.shape == (batch, 3, 2)
        torch.testing.assert_close(x_back, x.unsqueeze(1).expand(-1, 3, -1))
    else:
        torch.testing.assert_close(x_back, x)
    torch.testing.assert_close(log_det_rev, -log_det)


def test_an_index_condition_for_a_module_that_takes_none_is_refused():
    x, index = Ff.InputNode(4, name="x"), Ff.ConditionNode(0, name="i")
    with pytest.raises(ValueError, match=r"Node 'coupling' condition 0 is an index condition"):
        Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": torch.nn.Linear}, conditions=index, name="coupling")


def test_sequence_output_dims_without_argument_gives_the_last_shape():
    inn = Ff.SequenceINN(2, 4, 4)
    inn.append(Fm.HaarDownsampling)
    assert inn.output_dims() == [(8, 2, 2)]
    assert inn.output_dims([(2, 4, 4)]) == [(8, 2, 2)]


def test_call_form_is_read_per_forward_function_not_cached_past_an_instance_override():
    """The form is cached per class's forward; a forward replaced on one instance is read from that instance."""
    plain = Fm.PermuteRandom([(4,)], seed=0)
    overridden = Fm.PermuteRandom([(4,)], seed=0)
    overridden.forward = lambda x, rev=False, jac=True: ((x[0],), 0.0)  # FrEIA-style, keywords only
    assert call_form(plain, False) is CallForm.POSITIONAL
    assert call_form(overridden, False) is CallForm.KEYWORD_WITHOUT_C
    assert call_form(plain, False) is CallForm.POSITIONAL
