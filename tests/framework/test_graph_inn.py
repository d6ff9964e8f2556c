"""GraphINN on graphs with every kind of node: exact inversion and log-determinants, call styles,
intermediate outputs, module answers of every allowed kind, memory release and replica safety."""

import copy
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.modules import InvertibleModule
from freia_graph.testing import check_invertible, check_log_det, perturb_parameters
from tests.framework.graphs import BATCH, GRAPHS, build, chain

NAMES = sorted(GRAPHS)


@pytest.mark.parametrize("name", NAMES)
def test_inverts_and_log_det_is_exact(name):
    inn, inputs, conditions = build(name)
    check_invertible(inn, inputs, conditions or None, atol=1e-9, rtol=1e-9)
    check_log_det(inn, inputs, conditions or None, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_numerical_log_jacobian_agrees(name):
    inn, inputs, conditions = build(name)
    _, log_det = inn(inputs, c=conditions)
    numerical = inn.log_jacobian_numerical(inputs, c=conditions)
    torch.testing.assert_close(numerical, log_det, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_caller_tensors_are_not_modified(name):
    inn, inputs, conditions = build(name)
    copies = [t.clone() for t in inputs + conditions]
    outputs, _ = inn(inputs, c=conditions)
    outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    output_copies = [t.clone() for t in outputs]
    inn(outputs, c=conditions, rev=True)
    for original, copied in zip(inputs + conditions + outputs, copies + output_copies):
        assert torch.equal(original, copied)


@pytest.mark.parametrize("name", NAMES)
def test_intermediate_outputs_mean_the_same_in_both_directions(name):
    inn, inputs, conditions = build(name)
    values, log_dets = inn(inputs, c=conditions, intermediate_outputs=True)
    outputs = [values[node.inputs[0]] for node in inn.output_nodes]
    values_rev, log_dets_rev = inn(outputs, c=conditions, rev=True, intermediate_outputs=True)
    assert set(values) == set(values_rev)
    for port, value in values.items():
        torch.testing.assert_close(values_rev[port], value, atol=1e-9, rtol=1e-9)
    assert set(log_dets) == {node for node in inn.node_list if node.kind == "invertible"}
    total = sum(log_dets.values())
    torch.testing.assert_close(total, inn(inputs, c=conditions)[1])
    for node, log_det in log_dets.items():
        assert log_det.shape == (BATCH,)
        torch.testing.assert_close(log_dets_rev[node], -log_det, atol=1e-9, rtol=1e-9)


def test_call_styles_agree():
    inn, (x1, x2), _ = build("several_inputs_and_outputs")
    (z1, z2), log_det = inn([x1, x2])
    (z1_t, z2_t), _ = inn((x1, x2))
    (z1_d, z2_d), log_det_d = inn({"x1": x1, "x2": x2})
    assert torch.equal(z1, z1_d) and torch.equal(z2, z2_d) and torch.equal(log_det, log_det_d)
    assert torch.equal(z1, z1_t)
    (x1_back, x2_back), _ = inn({"z1": z1, "z2": z2}, rev=True)
    torch.testing.assert_close(x1_back, x1)
    inn_c, (x,), (c,) = build("conditional")
    assert torch.equal(inn_c(x, c=c)[0], inn_c([x], c={"label": c})[0])


def test_jac_false_returns_zero_log_det_and_same_outputs():
    inn, inputs, conditions = build("conditional")
    z, log_det = inn(inputs, c=conditions)
    z_nojac, zeros = inn(inputs, c=conditions, jac=False)
    assert torch.equal(z, z_nojac)
    assert torch.equal(zeros, torch.zeros(BATCH, dtype=torch.float64))
    assert not torch.equal(log_det, zeros)


def test_force_tuple_output():
    nodes = chain()
    inn = Ff.GraphINN(nodes, force_tuple_output=True)
    outputs, _ = inn(torch.randn(2, 6))
    assert isinstance(outputs, tuple) and len(outputs) == 1


class ScalarLogDet(InvertibleModule):
    """Multiplies by 2; reports its log-det in a configurable style."""

    def __init__(self, dims_in, style="tensor"):
        super().__init__(dims_in)
        self.style = style

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        (x,) = x_or_z
        value = x[0].numel() * np.log(2.0) * (-1 if rev else 1)
        log_det = {
            "tensor": x.new_full((x.shape[0],), value),
            "zero_dim": torch.tensor(value, dtype=x.dtype),
            "python": float(value),
            "numpy": np.float64(value),
            "none_without_jac": None if not jac else float(value),
        }[self.style]
        return ((x / 2 if rev else x * 2),), log_det

    def output_dims(self, input_dims):
        return input_dims


@pytest.mark.parametrize("style", ["tensor", "zero_dim", "python", "numpy", "none_without_jac"])
def test_every_allowed_log_det_style_is_summed_per_sample(style):
    x = Ff.InputNode(3)
    a = Ff.Node(x, ScalarLogDet, {"style": style})
    b = Ff.Node(a, ScalarLogDet, {"style": style})
    inn = Ff.GraphINN([x, a, b, Ff.OutputNode(b)])
    data = torch.randn(4, 3)
    z, log_det = inn(data)
    torch.testing.assert_close(log_det, torch.full((4,), 6 * np.log(2.0)))
    _, log_det_rev = inn(z, rev=True)
    torch.testing.assert_close(log_det_rev, -log_det)
    assert torch.equal(inn(data, jac=False)[1], torch.zeros(4))


class BrokenContract(InvertibleModule):
    def __init__(self, dims_in, breach):
        super().__init__(dims_in)
        self.breach = breach

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        (x,) = x_or_z
        log_det = x.new_zeros(x.shape[0])
        return {
            "bare_tensor": lambda: x,
            "bare_outputs": lambda: (x, log_det),
            "two_outputs": lambda: ((x, x), log_det),
            "log_det_shape": lambda: ((x,), x.new_zeros(x.shape[0], 1)),
            "log_det_type": lambda: ((x,), "zero"),
        }[self.breach]()

    def output_dims(self, input_dims):
        return input_dims


@pytest.mark.parametrize("breach", ["bare_tensor", "bare_outputs", "two_outputs", "log_det_shape", "log_det_type"])
@pytest.mark.parametrize("rev", [False, True])
def test_a_module_breaking_the_contract_is_named(breach, rev):
    x = Ff.InputNode(2, name="x")
    ok = Ff.Node(x, Fm.PermuteRandom, {"seed": 0}, name="fine")
    bad = Ff.Node(ok, BrokenContract, {"breach": breach}, name="culprit")
    inn = Ff.GraphINN([x, ok, bad, Ff.OutputNode(bad, name="z")])
    with pytest.raises(ValueError, match="culprit"):
        inn(torch.randn(2, 2), rev=rev)


def test_values_are_released_during_the_pass():
    """Inference memory must not grow with depth: each value dies once its consumer has run."""
    seen: list[weakref.ref] = []

    class Watch(InvertibleModule):
        def forward(self, x_or_z, c=None, rev=False, jac=True):
            # seen[0] is the caller's own input; every later value must be gone once consumed
            assert all(ref() is None for ref in seen[1:]), "an earlier value is still alive"
            seen.append(weakref.ref(x_or_z[0]))
            return (x_or_z[0] * 1.5,), 0.0

        def output_dims(self, input_dims):
            return input_dims

    nodes = [Ff.InputNode(4)]
    for _ in range(12):
        nodes.append(Ff.Node(nodes[-1], Watch))
    nodes.append(Ff.OutputNode(nodes[-1]))
    inn = Ff.GraphINN(nodes, check_inputs=False)
    assert inn.plans[0].n_slots == 1 and inn.plans[1].n_slots == 1
    with torch.no_grad():
        inn(torch.randn(2, 4))
    assert len(seen) == 12


def test_replicas_run_their_own_modules():
    """DataParallel replicas copy __dict__ shallowly: modules must come from the module tree."""
    inn, inputs, _ = build("chain")
    replica = inn._replicate_for_data_parallel()
    replica.module_list = copy.deepcopy(inn.module_list)
    perturb_parameters(replica, scale=0.5, seed=7)
    assert not torch.allclose(replica(inputs)[0], inn(inputs)[0])


def test_module_list_keys_are_deterministic_across_builds_and_processes():
    keys = [list(Ff.GraphINN(GRAPHS["conditional"]()).state_dict()) for _ in range(2)]
    assert keys[0] == keys[1]
    script = "import tests.framework.graphs as g, freia_graph.framework as Ff; " \
             "print(list(Ff.GraphINN(g.GRAPHS['conditional']()).state_dict()))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(keys[0])
    assert keys[0][0].startswith("module_list.")


def test_orders_are_deterministic_and_conditions_come_first_in_reverse():
    inn, _, _ = build("conditional")
    again, _, _ = build("conditional")
    names = [[step.node.name for step in plan.invertible_steps] for plan in inn.plans]
    assert names == [[step.node.name for step in plan.invertible_steps] for plan in again.plans]
    assert names[0] == ["a", "b", "c"] and names[1] == ["c", "b", "a"]
    assert [step.node.name for step in inn.plans[1].steps if step.feed_forward] == ["embedding"]


def test_lookup_by_name_and_output_dims():
    inn, _, _ = build("split_merge")
    assert inn.get_node_by_name("split").module is inn.get_module_by_name("split")
    assert inn.get_node_by_name("nope") is None and inn.get_module_by_name("nope") is None
    assert inn.output_dims([(7,)]) == [(7,)]
    with pytest.raises(ValueError, match=r"\(7,\)"):
        inn.output_dims([(8,)])


def test_nested_graph_must_return_tuples():
    x = Ff.InputNode(4)
    inner = Ff.GraphINN([x, Ff.OutputNode(x)])
    with pytest.raises(TypeError, match="force_tuple_output"):
        Ff.Node(Ff.InputNode(4), inner, None, name="outer")


def test_training_step_reaches_every_parameter():
    inn, inputs, conditions = build("conditional")
    z, log_det = inn(inputs, c=conditions)
    (z.square().sum(1) / 2 - log_det).mean().backward()
    for name, parameter in inn.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("name", NAMES)
def test_collect_nodes_finds_the_whole_graph_from_any_node(name):
    nodes = GRAPHS[name]()
    for start in (nodes[0], nodes[len(nodes) // 2], nodes[-1]):
        assert Ff.collect_nodes(start) == sorted(nodes, key=lambda node: node.serial)
    inn = Ff.GraphINN(Ff.collect_nodes(nodes[-1]))
    assert len(inn.node_list) == len(nodes)
    with pytest.raises(TypeError, match="collect_nodes"):
        Ff.collect_nodes("x")


def test_verbose_prints_both_orders(capsys):
    Ff.GraphINN(chain(), verbose=True)
    printed = capsys.readouterr().out
    assert "forward order: x -> a -> p -> b -> z" in printed and "reverse order: z -> b -> p -> a -> x" in printed


def test_feed_forward_node_declared_late_does_not_overwrite_a_live_condition():
    """Regression (found by the random-graph property test): feed-forward nodes run first, so their
    slots must not reuse a condition's slot that a later invertible node still reads."""
    x, c = Ff.InputNode(2, name="x"), Ff.ConditionNode(2, name="c")
    glow = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": torch.nn.Linear}, conditions=c, name="glow")
    ff = Ff.FeedForwardNode(c, 1, torch.nn.Linear, {"in_features": 2, "out_features": 1}, name="ff")
    inn = Ff.GraphINN([x, c, glow, ff, Ff.OutputNode(glow, name="z")])
    data, condition = torch.randn(4, 2), torch.randn(4, 2)
    z, log_det = inn(data, c=[condition])
    torch.testing.assert_close(inn(z, c=[condition], rev=True)[0], data)


def test_pickle_and_deepcopy_keep_working_graphs():
    """The generated runners are rebuilt from the plans when unpickled."""
    import pickle

    inn, inputs, conditions = build("conditional")
    expected = inn(inputs, c=conditions)
    for clone in (pickle.loads(pickle.dumps(inn)), copy.deepcopy(inn)):
        z, log_det = clone(inputs, c=conditions)
        torch.testing.assert_close(z, expected[0])
        torch.testing.assert_close(log_det, expected[1])
        torch.testing.assert_close(clone(z, c=conditions, rev=True)[0], inputs[0])


def test_generated_runner_reads_like_a_hand_written_pass():
    inn, _, _ = build("split_merge")
    source = inn._runner(False).source
    assert source.splitlines()[0] == "def run(modules, inputs, conditions, rev, jac):"
    # each step's log-det is added as it comes (no list of them is held), numbers apart from tensors
    totals = "log_det, constant, jac)\n"
    assert f"    (s0, s1), log_det, constant = add(modules[0]([s0], None, rev, jac), {totals}" in source
    assert f"    (s0,), log_det, constant = add(modules[3]([s1, s0], None, rev, jac), {totals}" in source
    assert "log_dets" not in source


@pytest.mark.parametrize("name", NAMES)
def test_dims_out_are_the_shapes_a_forward_call_returns(name):
    inn, inputs, conditions = build(name)
    outputs, _ = inn(inputs, c=conditions or None)
    outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
    assert inn.dims_out == [tuple(z.shape[1:]) for z in outputs] == inn.output_dims(inn.dims_in)
    assert inn.dims_in == [tuple(x.shape[1:]) for x in inputs]


def test_a_vector_of_batch_size_for_a_node_of_shape_one_is_taken_as_a_column():
    # FrEIA's docs pass c = torch.randn(batch) to a ConditionNode(1)
    x, c = Ff.InputNode(2, name="x"), Ff.ConditionNode(1, name="c")
    a = Ff.Node(x, Fm.GLOWCouplingBlock, {"subnet_constructor": torch.nn.Linear}, conditions=c, name="a")
    inn = Ff.GraphINN([x, c, a, Ff.OutputNode(a, name="z")])
    data, condition = torch.randn(5, 2), torch.randn(5)
    torch.testing.assert_close(inn(data, c=condition)[0], inn(data, c=condition[:, None])[0])
    assert condition.shape == (5,)
    with pytest.raises(ValueError, match="condition 'c' has batch size 4, but input 'x' has 5"):
        inn(data, c=torch.randn(4))
