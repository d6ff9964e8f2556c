"""Checks around a call: the call's dtype against the parameters' (before any module runs, cached so the
steady state pays one comparison) and the ``check_finite`` debugging mode that names the first bad node."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import freia_graph.framework as Ff
import freia_graph.framework.graph_inn as graph_inn_module
import freia_graph.framework.sequence_inn as sequence_inn_module
import freia_graph.modules as Fm
from freia_graph.framework.calls import MAX_NESTING_DEPTH
from freia_graph.modules import InvertibleModule


class Scale(InvertibleModule):
    """Multiplies by a learned positive vector; counts its calls; casts its parameter to the input's dtype,
    so that graphs of mixed dtypes really run."""

    def __init__(self, dims_in, log_det_value: float | None = None):
        super().__init__(dims_in)
        self.log_scale = nn.Parameter(torch.full(dims_in[0], 0.1))
        self.log_det_value, self.calls = log_det_value, 0

    def forward(self, x, c=None, rev=False, jac=True):
        self.calls += 1
        log_scale = self.log_scale.to(x[0].dtype)
        log_det = log_scale.sum().expand(x[0].shape[0]) if self.log_det_value is None else self.log_det_value
        if rev:
            return (x[0] * torch.exp(-log_scale),), -log_det
        return (x[0] * torch.exp(log_scale),), log_det

    def output_dims(self, input_dims):
        return input_dims


def two_branch_graph() -> Ff.GraphINN:
    x = Ff.InputNode(4, name="x")
    split = Ff.Node(x, Fm.Split, {"section_sizes": [2, 2]}, name="split")
    a = Ff.Node(split.out0, Scale, {}, name="a")
    b = Ff.Node(split.out1, Scale, {}, name="b")
    merge = Ff.Node([a.out0, b.out0], Fm.Concat, {}, name="merge")
    return Ff.GraphINN([x, split, a, b, merge, Ff.OutputNode(merge, name="z")])


def chain() -> Ff.SequenceINN:
    inn = Ff.SequenceINN(4)
    for _ in range(3):
        inn.append(Scale)
    return inn


MODELS = {"graph": two_branch_graph, "sequence": chain}


def calls(inn: nn.Module) -> int:
    return sum(module.calls for module in inn.modules() if isinstance(module, Scale))


# --------------------------------------------------------------------------------------------- dtype


@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_a_call_of_another_dtype_fails_before_any_module_runs(model, rev):
    inn = MODELS[model]()
    label = "reverse input 'z'" if model == "graph" and rev else "input 'x'"
    with pytest.raises(ValueError, match=f"^{label} is torch.float64, but the graph's parameters are "
                                         r"torch.float32; call inn.to\(torch.float64\)") as caught:
        inn(torch.zeros(2, 4, dtype=torch.float64), rev=rev)
    assert "torch.float32" in str(caught.value) and calls(inn) == 0


@pytest.mark.parametrize("model", sorted(MODELS))
def test_the_remembered_dtype_follows_conversions(model):
    inn = MODELS[model]()
    inn(torch.zeros(2, 4))
    inn.double()
    assert inn(torch.zeros(2, 4, dtype=torch.float64))[0].dtype == torch.float64
    with pytest.raises(ValueError, match="is torch.float32, but the graph's parameters are torch.float64"):
        inn(torch.zeros(2, 4))
    for module in inn.modules():  # converted one by one, behind the graph's back: no false error
        if isinstance(module, Scale):
            module.float()
    assert inn(torch.zeros(2, 4))[0].dtype == torch.float32


@pytest.mark.parametrize("model", sorted(MODELS))
def test_mixed_dtypes_and_no_parameters_give_no_false_errors(model):
    inn = MODELS[model]()
    next(module for module in inn.modules() if isinstance(module, Scale)).double()
    for dtype in (torch.float32, torch.float64):
        inn(torch.zeros(2, 4, dtype=dtype))
    x = Ff.InputNode(4, name="x")
    permute = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="permute")
    no_parameters = Ff.GraphINN([x, permute, Ff.OutputNode(permute, name="z")])
    for dtype in (torch.float32, torch.float64, torch.float16):
        assert no_parameters(torch.zeros(2, 4, dtype=dtype))[0].dtype == dtype


@pytest.mark.parametrize("model", sorted(MODELS))
def test_autocast_calls_are_not_refused(model):
    inn = MODELS[model]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert inn(torch.zeros(2, 4, dtype=torch.bfloat16))[0].dtype == torch.bfloat16


def test_sequence_appends_refresh_the_remembered_dtype():
    inn = chain()
    inn(torch.zeros(2, 4))
    inn.append(Scale(inn.dims_in).double())
    inn(torch.zeros(2, 4, dtype=torch.float64))  # mixed now: not checked


def test_check_inputs_false_skips_the_dtype_check():
    inn = Ff.SequenceINN(4, check_inputs=False)
    inn.append(Scale)
    assert inn(torch.zeros(2, 4, dtype=torch.float64))[0].dtype == torch.float64


# -------------------------------------------------------------------------------------- check_finite


def poisoned(model: str, position: int) -> nn.Module:
    inn = MODELS[model]()
    with torch.no_grad():
        [module for module in inn.modules() if isinstance(module, Scale)][position].log_scale.fill_(float("nan"))
    return inn


FINITE_CASES = {
    ("graph", False): r"^Node 'b' \(Scale, forward\): non-finite value \(NaN or inf\) in 'b'.out0$",
    ("graph", True): r"^Node 'b' \(Scale, reverse\): non-finite value \(NaN or inf\) in input 0 "
                     r"\(the value of 'split'.out1\)$",
    ("sequence", False): r"^module 1 \(Scale, forward\): non-finite value \(NaN or inf\) in its output$",
    ("sequence", True): r"^module 1 \(Scale, reverse\): non-finite value \(NaN or inf\) in its output$",
}


@pytest.mark.parametrize(("model", "rev"), sorted(FINITE_CASES))
def test_check_finite_names_the_first_bad_node_direction_and_port(model, rev):
    inn = poisoned(model, 1)
    x = torch.ones(2, 4)
    inn(x, rev=rev)  # silent without the check (and the first call's contract checks pass)
    with pytest.raises(ValueError, match=FINITE_CASES[(model, rev)]):
        inn(x, rev=rev, check_finite=True)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_check_finite_names_a_bad_log_det_and_a_bad_input(model):
    inn = MODELS[model]()
    bad = [module for module in inn.modules() if isinstance(module, Scale)][0]
    bad.log_det_value = float("nan")
    with pytest.raises(ValueError, match="non-finite value .* in its log-det"):
        inn(torch.ones(2, 4), check_finite=True)
    x = torch.ones(2, 4)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="^the call's tensors: non-finite value .* in input 'x'"):
        MODELS[model]()(x, check_finite=True)


def test_check_finite_covers_intermediate_outputs_and_feed_forward_nodes():
    x = Ff.InputNode(4, name="x")
    label = Ff.ConditionNode(2, name="label")
    embedding = Ff.FeedForwardNode(label, 3, nn.Linear, {"in_features": 2, "out_features": 3}, name="embedding")
    coupling = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": lambda i, o: nn.Linear(i, o)},
                       conditions=embedding, name="coupling")
    inn = Ff.GraphINN([x, label, embedding, coupling, Ff.OutputNode(coupling, name="z")])
    with torch.no_grad():
        inn.get_module_by_name("embedding").bias.fill_(float("nan"))
    with pytest.raises(ValueError, match=r"^Node 'embedding' \(Linear, forward\): .* in 'embedding'.out0"):
        inn(torch.ones(2, 4), c=[torch.ones(2, 2)], check_finite=True, intermediate_outputs=True)


@pytest.mark.parametrize("model", sorted(MODELS))
def test_check_finite_off_does_no_checking_work(model, monkeypatch):
    inn = MODELS[model]()
    for rev in (False, True):
        inn(torch.ones(2, 4), rev=rev)  # first calls: contract checks

    def forbidden(*args, **kwargs):
        raise AssertionError("finite checks ran although check_finite is off")

    for where in (graph_inn_module, sequence_inn_module):
        monkeypatch.setattr(where, "check_finite_values", forbidden, raising=False)
    monkeypatch.setattr(graph_inn_module.GraphINN, "_checked_modules", forbidden)
    monkeypatch.setattr(sequence_inn_module, "CheckedModule", forbidden)
    for rev in (False, True):
        inn(torch.ones(2, 4), rev=rev)
        inn(torch.ones(2, 4), rev=rev)


# ------------------------------------------------------------------------------------------- nesting


def nest(depth: int) -> Ff.GraphINN:
    """``depth`` graphs, each the only node of the next; the innermost holds a SequenceINN."""
    inner = Ff.SequenceINN(2, force_tuple_output=True)
    inner.append(Scale)
    for _ in range(depth - 1):
        x = Ff.InputNode(2, name="x")
        node = Ff.Node(x, inner, None, name="inner")
        inner = Ff.GraphINN([x, node, Ff.OutputNode(node, name="z")], force_tuple_output=True)
    return inner


def test_nesting_up_to_the_limit_runs_and_beyond_it_is_refused_when_built():
    inn = nest(MAX_NESTING_DEPTH)
    assert inn.nesting_depth == MAX_NESTING_DEPTH
    x = torch.randn(3, 2)
    for check_finite in (True, False):  # the first call (contract checks) and the finite checks are deepest
        (z,), _ = inn(x, check_finite=check_finite)
        (x_back,), _ = inn(z, rev=True, check_finite=check_finite)
        torch.testing.assert_close(x_back, x)
    x_node = Ff.InputNode(2, name="x")
    with pytest.raises(ValueError, match=f"would nest graphs {MAX_NESTING_DEPTH + 1} levels deep; at most "
                                         f"{MAX_NESTING_DEPTH} are supported"):
        outer = Ff.Node(x_node, inn, None, name="one_too_many")  # declaring is fine, building refuses
        Ff.GraphINN([x_node, outer, Ff.OutputNode(outer, name="z")])
    chain = Ff.SequenceINN(2, force_tuple_output=True)
    with pytest.raises(ValueError, match="at most 100 are supported"):
        chain.append(inn)
