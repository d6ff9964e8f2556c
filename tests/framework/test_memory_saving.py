"""Memory-saving backprop gives the normal mode's gradients (outputs and log-det) and keeps constant memory.

Each case runs the same model (shared parameters) in the normal mode and in memory-saving mode, on the
same inputs, and compares the gradients w.r.t. inputs, conditions and every parameter in float64.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from freia_graph.framework.memory_saving import MemorySavingRun, _grad
from freia_graph.presets import multiscale_flow
from freia_graph.testing import perturb_parameters, saved_tensor_bytes
from freia_graph.testing.strategies import graph_inputs, graphs
from tests.framework.graphs import GRAPHS, build

TOLERANCE = 1e-10


def _loss(outputs, log_det: torch.Tensor, outputs_weight: float = 1.0) -> torch.Tensor:
    """A loss that weighs every output element and every sample's log-det differently."""
    outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
    total = sum(((o.flatten(1) * torch.linspace(-1, 2, o[0].numel(), dtype=o.dtype)).sin()).sum() for o in outputs)
    weights = torch.linspace(0.5, 1.5, log_det.shape[0], dtype=log_det.dtype)
    return outputs_weight * total + (log_det * weights).sum()


def _gradients(model, memory_saving, inputs, conditions, rev=False, outputs_weight=1.0, seed=None):
    model.memory_saving = memory_saving
    model.zero_grad(set_to_none=True)
    inputs = [t.clone().requires_grad_() for t in inputs]
    conditions = [t.clone().requires_grad_() for t in conditions]
    if seed is not None:
        torch.manual_seed(seed)
    outputs, log_det = model(inputs, c=conditions or None, rev=rev)
    _loss(outputs, log_det, outputs_weight).backward()
    tensors = inputs + conditions + [p for p in model.parameters() if p.requires_grad]
    return [t.grad for t in tensors], (outputs, log_det)


def _assert_same_gradients(model, inputs, conditions, memory_saving=True, **kwargs) -> None:
    expected, (outputs, log_det) = _gradients(model, False, inputs, conditions, **kwargs)
    got, (outputs_saving, log_det_saving) = _gradients(model, memory_saving, inputs, conditions, **kwargs)
    assert log_det_saving.grad_fn is not None and "MemorySaving" in type(log_det_saving.grad_fn).__name__
    torch.testing.assert_close(log_det_saving, log_det, rtol=TOLERANCE, atol=TOLERANCE)
    assert len(got) == len(expected)
    for index, (a, b) in enumerate(zip(got, expected)):
        assert (a is None) == (b is None), f"gradient {index}: one mode has none"
        if a is not None:
            torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE, msg=f"gradient {index} differs")
    model.memory_saving = False


@pytest.mark.parametrize("memory_saving", [True, 2])
@pytest.mark.parametrize("rev", [False, True])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_gradients_match_normal_mode(name, rev, memory_saving):
    inn, inputs, conditions = build(name)
    if rev:
        with torch.no_grad():
            outputs = inn(inputs, c=conditions or None)[0]
        inputs = [outputs] if isinstance(outputs, torch.Tensor) else list(outputs)
    _assert_same_gradients(inn, inputs, conditions, memory_saving, rev=rev)


def test_log_det_only_loss():
    inn, inputs, conditions = build("conditional")
    _assert_same_gradients(inn, inputs, conditions, outputs_weight=0.0)


def _chain(depth: int, width: int = 6, hidden: int = 16, dropout: float = 0.0, conditioned: bool = True):
    def subnet(c_in, c_out):
        return nn.Sequential(nn.Linear(c_in, hidden), nn.Dropout(dropout), nn.Tanh(), nn.Linear(hidden, c_out))

    inn = Ff.SequenceINN(width)
    for index in range(depth):
        inn.append(Fm.ActNorm)
        cond = {"cond": 0, "cond_shape": (3,)} if conditioned and index % 2 else {}
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet, clamp=2.0, **cond)
        inn.append(Fm.PermuteRandom, seed=index)
    return inn.double()


@pytest.mark.parametrize("backwards", [False, True])
@pytest.mark.parametrize("memory_saving", [True, 3])
def test_sequence_gradients_match_normal_mode(memory_saving, backwards):
    torch.manual_seed(0)
    inn = _chain(4)
    x, c = torch.randn(5, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    with torch.no_grad():
        inn(x, c=c)  # ActNorm's data-dependent initialisation
    perturb_parameters(inn, scale=0.3, seed=1)
    model = inn[::-1] if backwards else inn
    _assert_same_gradients(model, [x], [c], memory_saving)


@pytest.mark.parametrize("tensor_hooks", [False, True])
def test_gradients_accumulate_over_backward_calls_as_in_normal_mode(monkeypatch, tensor_hooks):
    """Gradient accumulation (``.grad`` already set after the first micro-batch): each parameter's hooks run
    once per backward (a tensor hook with a gradient), and two micro-batches sum to the normal mode's
    gradients. Without tensor hooks the second micro-batch adds each step's gradients in place."""
    import freia_graph.framework.memory_saving as memory_saving

    in_place = []
    original = memory_saving._added_in_place
    monkeypatch.setattr(memory_saving, "_added_in_place", lambda ctx: in_place.append(original(ctx)) or in_place[-1])
    torch.manual_seed(0)
    inn = _chain(3)
    x, c = torch.randn(10, 6, dtype=torch.float64), torch.randn(10, 3, dtype=torch.float64)
    with torch.no_grad():
        inn(x, c=c)
    perturb_parameters(inn, scale=0.3, seed=1)
    parameters = list(inn.parameters())
    fired: dict[int, int] = {}
    for parameter in parameters:
        parameter.register_post_accumulate_grad_hook(lambda p: fired.__setitem__(id(p), fired.get(id(p), 0) + 1))
        if tensor_hooks:
            parameter.register_hook(lambda grad: grad.clamp(-1e6, 1e6))  # needs a gradient, not None
    results = []
    for mode in (False, True):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=True)
        fired.clear()
        for half in (slice(0, 5), slice(5, 10)):
            _loss(*inn(x[half], c=c[half])).backward()
        assert sorted(fired.values()) == [2] * len(parameters), "every hook once per backward"
        results.append([p.grad.clone() for p in parameters])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)
    first, second = in_place
    assert not first and len(second) == (0 if tensor_hooks else len(parameters))


def test_first_call_initialises_actnorm_as_normal_mode():
    torch.manual_seed(0)
    normal, saving = _chain(3), None
    saving = copy.deepcopy(normal)
    x, c = torch.randn(5, 6, dtype=torch.float64) * 3 + 1, torch.randn(5, 3, dtype=torch.float64)
    expected, _ = _gradients(normal, False, [x], [c])
    got, _ = _gradients(saving, True, [x], [c])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def test_dropout_in_subnets_gives_the_same_gradients():
    torch.manual_seed(0)
    inn = _chain(3, dropout=0.3)
    x, c = torch.randn(8, 6, dtype=torch.float64), torch.randn(8, 3, dtype=torch.float64)
    with torch.no_grad():
        inn(x, c=c)
    perturb_parameters(inn, scale=0.3, seed=1)
    _assert_same_gradients(inn, [x], [c], seed=123)


def test_multiscale_image_graph():
    torch.manual_seed(0)
    flow = multiscale_flow((2, 8, 8), levels=2, blocks_per_level=2, actnorm=True, dims_c=[(3,)],
                           subnet_constructor=lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1))
    flow = flow.double()
    x, c = torch.randn(3, 2, 8, 8, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    with torch.no_grad():
        flow(x, c=c)
    perturb_parameters(flow, scale=0.05, seed=2)  # larger makes gradients ~1e4
    _assert_same_gradients(flow, [x], [c])


class LayoutRecorder(Fm.InvertibleModule):
    """Doubles its input, keeping the input's memory layout going forward but returning NCHW in reverse,
    and records the strides of every input it is called with under grad."""

    def __init__(self, dims_in, dims_c=None):
        super().__init__(dims_in, dims_c)
        self.scale = nn.Parameter(torch.tensor(2.0))
        self.strides: list[tuple[int, ...]] = []

    def forward(self, x_or_z, c=None, rev=False, jac=True):
        x = x_or_z[0]
        self.strides.append(x.stride())
        if rev:
            return ((x / self.scale).contiguous(),), 0.0
        return (x * self.scale,), 0.0

    def output_dims(self, input_dims):
        return input_dims


def test_rebuilt_activations_keep_the_forward_memory_layout():
    """A channels-last activation rebuilt by a reverse that returns NCHW is recomputed channels-last, as
    forward ran it (same kernels, same speed)."""
    inn = Ff.SequenceINN(3, 4, 4, memory_saving=True)
    inn.append(LayoutRecorder)
    inn.append(LayoutRecorder)
    x = torch.randn(2, 3, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    z, _ = inn(x)
    forward_strides = [block.strides[:] for block in inn]
    z.square().sum().backward()
    for block, strides in zip(inn, forward_strides):
        recomputed = block.strides[-1]
        assert recomputed == strides[0] == x.stride(), (recomputed, strides)
    (rebuilt,), _ = inn[0]([x.detach()], rev=True)
    assert rebuilt.stride() != x.stride()  # what backward would recompute from, were the layout not restored


@pytest.mark.parametrize("input_requires_grad", [False, True])
def test_steps_nothing_needs_are_not_rebuilt(monkeypatch, input_requires_grad):
    """The squeeze that starts an image flow, on data that needs no gradient, has no backward to run: it is
    neither inverted nor recomputed (it is when the data needs a gradient)."""
    backward_calls = []
    resamplings = {name: getattr(Fm.HaarDownsampling, name) for name in ("_down", "_up")}

    def counting(name):
        def resample(self, x):
            backward_calls.append(name)
            return resamplings[name](self, x)
        return resample

    torch.manual_seed(0)
    inn = Ff.SequenceINN(2, 4, 4, memory_saving=True)
    inn.append(Fm.HaarDownsampling)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1))
    inn = inn.double()
    perturb_parameters(inn, scale=0.3, seed=1)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    for name in resamplings:  # on the class, so that the fast path's check still sees the vetted methods
        monkeypatch.setattr(Fm.HaarDownsampling, name, counting(name))
    gradients = []
    for mode in (False, True):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=True)
        inputs = x.clone().requires_grad_(input_requires_grad)
        loss = _loss(*inn(inputs))
        backward_calls.clear()
        loss.backward()
        gradients.append([inputs.grad] + [p.grad for p in inn.parameters()])
    # in backward, memory-saving mode: the squeeze's input rebuilt (_up) and its gradient (_up) only if needed
    assert backward_calls == (["_up", "_up"] if input_requires_grad else [])
    for a, b in zip(*gradients):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def test_nested_memory_saving_region(monkeypatch):
    runs = []
    original = MemorySavingRun.run
    monkeypatch.setattr(MemorySavingRun, "run", staticmethod(lambda *args: runs.append(1) or original(*args)))
    torch.manual_seed(0)
    inner = _chain(3, conditioned=False)
    inner.memory_saving, inner.force_tuple_output = True, True
    x = Ff.InputNode(6, name="x")
    a = Ff.Node(x, Fm.AllInOneBlock, {"subnet_constructor": lambda i, o: nn.Linear(i, o)}, name="a")
    region = Ff.Node(a, inner, None, name="region")
    outer = Ff.GraphINN([x, a, region, Ff.OutputNode(region, name="z")]).double()
    inputs = [torch.randn(4, 6, dtype=torch.float64)]
    with torch.no_grad():
        outer(inputs)
    perturb_parameters(outer, scale=0.3, seed=3)
    expected, _ = _gradients(outer, False, inputs, [])
    assert runs, "the nested region did not run in memory-saving mode"
    inner.memory_saving = False
    plain, _ = _gradients(outer, False, inputs, [])
    for a_grad, b_grad in zip(expected, plain):
        torch.testing.assert_close(a_grad, b_grad, rtol=TOLERANCE, atol=TOLERANCE)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_graphs(data):
    inn = data.draw(graphs(max_nodes=8, max_depth=1))
    inputs, conditions = data.draw(graph_inputs(inn, batch_size=2))
    conditions = [c for c in conditions if c.is_floating_point()]
    if len(conditions) != len(inn.dims_c):
        return  # index conditions cannot take gradients; other tests cover integer conditions
    _assert_same_gradients(inn, inputs, conditions, data.draw(st.sampled_from([True, 1, 2])))


def _saved_bytes(model, x: torch.Tensor) -> int:
    """Bytes autograd saves during one forward pass (then the backward runs, releasing them)."""
    saved, (outputs, log_det) = saved_tensor_bytes(model, x)
    _loss(outputs, log_det).backward()
    return saved


@pytest.mark.parametrize("make", ["chain", "graph"])
def test_saved_memory_is_constant_in_depth(make):
    def model(depth):
        torch.manual_seed(0)
        if make == "chain":
            return _chain(depth, hidden=32, conditioned=False)
        nodes = [Ff.InputNode(6, name="x")]
        for index in range(depth):
            nodes.append(Ff.Node(nodes[-1], Fm.ActNorm, {}, name=f"actnorm{index}"))
            nodes.append(Ff.Node(nodes[-1], Fm.RNVPCouplingBlock, {"subnet_constructor": lambda i, o: nn.Sequential(
                nn.Linear(i, 32), nn.Tanh(), nn.Linear(32, o))}, name=f"coupling{index}"))
        return Ff.GraphINN(nodes + [Ff.OutputNode(nodes[-1], name="z")]).double()

    x = torch.randn(64, 6, dtype=torch.float64, requires_grad=True)
    normal = {depth: _saved_bytes(model(depth), x) for depth in (2, 8)}
    saving = {}
    for depth in (2, 8):
        inn = model(depth)
        inn.memory_saving = True
        saving[depth] = _saved_bytes(inn, x)
    assert normal[8] > 3 * normal[2]  # linear in depth
    assert saving[8] == saving[2]  # only the outputs
    assert saving[8] < normal[2]


def test_inexact_inverse_is_refused_unless_allowed():
    with pytest.raises(ValueError, match="IResNetLayer.*allow_inexact_inverse"):
        Ff.SequenceINN(4, memory_saving=True).append(Fm.IResNetLayer, internal_size=8)
    x = Ff.InputNode(4, name="x")
    layer = Ff.Node(x, Fm.IResNetLayer, {"internal_size": 8}, name="layer")
    nodes = [x, layer, Ff.OutputNode(layer, name="z")]
    with pytest.raises(ValueError, match="Node 'layer'"):
        Ff.GraphINN(nodes, memory_saving=True)
    inn = Ff.GraphINN(nodes, memory_saving=True, allow_inexact_inverse=True)
    z, log_det = inn(torch.randn(3, 4))
    (z.sum() + log_det.sum()).backward()


@pytest.mark.parametrize("value", [0, -1, 1.5, "yes"])
def test_bad_memory_saving_argument(value):
    with pytest.raises(ValueError, match="memory_saving"):
        Ff.SequenceINN(4, memory_saving=value)


def test_eval_and_no_grad_run_the_normal_plan():
    inn, inputs, conditions = build("conditional")
    inn.memory_saving = True
    with torch.no_grad():
        _, log_det = inn(inputs, c=conditions)
    assert log_det.grad_fn is None
    inn.eval()
    _, log_det = inn(inputs, c=conditions)
    assert "MemorySaving" not in type(log_det.grad_fn).__name__


def test_torch_compile_runs_the_region_eagerly():
    inn, inputs, conditions = build("chain")
    expected, _ = _gradients(inn, False, inputs, conditions)
    inn.memory_saving = True
    torch.compiler.reset()
    compiled = torch.compile(inn, backend="eager")
    inputs = [t.clone().requires_grad_() for t in inputs]
    inn.zero_grad(set_to_none=True)
    outputs, log_det = compiled(inputs)
    _loss(outputs, log_det).backward()
    got = [inputs[0].grad] + [p.grad for p in inn.parameters()]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def test_torch_compile_fullgraph_refuses_with_the_reason():
    inn, inputs, _ = build("chain")
    inn.memory_saving = True
    torch.compiler.reset()  # forget code compiled by other tests
    compiled = torch.compile(inn, fullgraph=True, backend="eager")
    with pytest.raises(Exception, match="memory-saving backprop runs eagerly"):
        compiled([inputs[0].clone().requires_grad_()])


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no GPU"))])
def test_devices(device):
    inn, inputs, conditions = build("conditional")
    inn.to(device)
    _assert_same_gradients(inn, [t.to(device) for t in inputs], [t.to(device) for t in conditions])


def test_distributed_data_parallel_gets_the_gradients(tmp_path):
    """DDP (one gloo process) all-reduces the gradients that memory-saving backprop returns."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    inn, inputs, conditions = build("chain")
    expected, _ = _gradients(inn, False, inputs, conditions)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        inn.memory_saving = True
        model = DistributedDataParallel(inn)
        inn.zero_grad(set_to_none=True)
        x = inputs[0].clone().requires_grad_()
        _loss(*model(x)).backward()
        got = [x.grad] + [p.grad for p in inn.parameters()]
    finally:
        dist.destroy_process_group()
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def test_without_log_det():
    inn, inputs, conditions = build("conditional")
    gradients = []
    for mode in (False, True):
        inn.memory_saving = mode
        inn.zero_grad(set_to_none=True)
        x = inputs[0].clone().requires_grad_()
        z, _ = inn(x, c=conditions, jac=False)
        z.sin().sum().backward()
        gradients.append([x.grad] + [p.grad for p in inn.parameters()])
    for a, b in zip(*gradients):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=TOLERANCE, atol=TOLERANCE)


def test_engine_call_matches_autograd_grad(monkeypatch):
    # plain tensors skip torch.autograd.grad's argument checks: same gradients, None for an unused input
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    unused = torch.randn(2, dtype=torch.float64, requires_grad=True)
    roots = (w.sin() * w).chunk(2)
    root_grads = [torch.randn(2, dtype=torch.float64) for _ in roots]
    expected = torch.autograd.grad(roots, [w, unused], root_grads, retain_graph=True, allow_unused=True)
    monkeypatch.setattr(torch.autograd, "grad", None)  # the engine path must not need it
    got = _grad(roots, [w, unused], root_grads)
    assert got[1] is None
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="shape"):  # the engine still checks each root's gradient
        _grad([w * 2], [w], [torch.ones(3, dtype=torch.float64)])


def test_tensor_subclass_takes_autograd_grad():
    class Traced(torch.Tensor):
        calls: list = []

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            cls.calls.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    w = torch.randn(3, requires_grad=True)
    traced = w.as_subclass(Traced)
    root = traced * 3
    Traced.calls.clear()
    (grad,) = _grad([root], [traced], [torch.ones(3)])
    assert torch.autograd.grad in Traced.calls  # handled as torch.autograd.grad handles subclasses
    torch.testing.assert_close(grad.as_subclass(torch.Tensor), torch.full((3,), 3.0))
