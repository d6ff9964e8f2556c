"""GraphINN and SequenceINN trace with torch.compile(fullgraph=True): no graph breaks in the runner."""

import pytest
import torch

import freia_graph.framework as Ff
import freia_graph.modules as Fm
from tests.framework.graphs import GRAPHS, build, subnet
from tests.framework.test_sequence_inn import conditional_chain


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", ["conditional", "split_merge", "nested"])
@pytest.mark.parametrize("rev", [False, True])
def test_graph_compiles_without_graph_breaks(name, rev):
    inn, inputs, conditions = build(name)
    with torch.no_grad():
        outputs, log_det = inn(inputs, c=conditions)
        data = outputs if rev else inputs
        expected = inn(data, c=conditions, rev=rev)
        compiled = torch.compile(inn, fullgraph=True, backend="eager")
        got = compiled(data, c=conditions, rev=rev)
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])


def test_sequence_compiles_and_trains():
    inn = conditional_chain()
    compiled = torch.compile(inn, fullgraph=True, backend="eager")
    x = torch.randn(4, 6, dtype=torch.float64)
    c = [torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)]
    z, log_det = compiled(x, c)
    (z.square().sum() - log_det.sum()).backward()
    assert all(p.grad is not None for p in inn.parameters())
    torch.testing.assert_close(z, inn(x, c)[0])


def test_graph_compiles_with_inductor_smoke():
    """One real inductor compile of a small graph (the default backend users get)."""
    inn = Ff.GraphINN(GRAPHS["chain"]())
    x = torch.randn(5, 6)
    compiled = torch.compile(inn, fullgraph=True)
    torch.testing.assert_close(compiled(x)[0], inn(x)[0], atol=1e-5, rtol=1e-5)


class CountingBackend:
    """A torch.compile backend that counts compilations and runs the traced graph eagerly."""

    def __init__(self):
        self.compilations = 0

    def __call__(self, graph_module, example_inputs):
        self.compilations += 1
        return graph_module.forward


def chain_sequence() -> Ff.SequenceINN:
    torch.manual_seed(0)
    inn = Ff.SequenceINN(6)
    inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet)
    inn.append(Fm.PermuteRandom, seed=0)
    return inn


@pytest.mark.parametrize("make", [lambda: Ff.GraphINN(GRAPHS["chain"]()), chain_sequence], ids=["graph", "sequence"])
@pytest.mark.parametrize("rev", [False, True])
def test_compiled_before_any_eager_call_compiles_once(make, rev):
    inn, backend = make(), CountingBackend()
    compiled = torch.compile(inn, fullgraph=True, backend=backend)
    x = torch.randn(5, 6)
    for _ in range(3):
        got = compiled(x, rev=rev)
    assert backend.compilations == 1
    expected = inn(x, rev=rev)  # eager afterwards: verified now, same answer
    torch.testing.assert_close(got[0], expected[0])
    torch.testing.assert_close(got[1], expected[1])
    compiled(x, rev=rev)  # what the eager call remembered (verification, the parameters' dtype) is no guard
    assert backend.compilations == 1


@pytest.mark.parametrize("make", [lambda: Ff.GraphINN(GRAPHS["chain"]()), chain_sequence], ids=["graph", "sequence"])
@pytest.mark.parametrize("rev", [False, True])
def test_dynamic_batch_does_not_recompile(make, rev):
    """Compiled training: a new batch size reuses the compiled code, forward and reverse, with gradients."""
    inn, backend = make(), CountingBackend()
    compiled = torch.compile(inn, fullgraph=True, dynamic=True, backend=backend)
    for batch in (4, 7, 16):
        x = torch.randn(batch, 6)
        out, log_det = compiled(x, rev=rev)
        (out.square().sum() - log_det.sum()).backward()
        assert out.shape == (batch, 6) and log_det.shape == (batch,)
    assert backend.compilations == 1
    torch.testing.assert_close(compiled(x, rev=rev)[0], inn(x, rev=rev)[0])


def test_marked_dynamic_batch_does_not_recompile():
    inn, backend = Ff.GraphINN(GRAPHS["chain"]()), CountingBackend()
    compiled = torch.compile(inn, fullgraph=True, backend=backend)
    for batch in (4, 9):
        x = torch.randn(batch, 6)
        torch._dynamo.mark_dynamic(x, 0)
        compiled(x)
    assert backend.compilations == 1


def conditional_flow():
    from freia_graph.distributions import Flow

    torch.manual_seed(0)
    inn = Ff.SequenceINN(6)
    for index in range(2):
        inn.append(Fm.GLOWCouplingBlock, subnet_constructor=subnet, cond=0, cond_shape=(3,))
        inn.append(Fm.PermuteRandom, seed=index)
    for parameter in inn.parameters():  # away from the identity initialisation
        parameter.data.add_(0.1 * torch.randn_like(parameter))
    return Flow(inn)


def test_compiled_sampling_and_density_compile_once_and_match_eager():
    """Flow.sample (the reverse pass) and Flow.log_prob compile fullgraph, once, for any sample count."""
    flow, backend = conditional_flow(), CountingBackend()
    sample = torch.compile(flow.sample_with_log_prob, fullgraph=True, dynamic=True, backend=backend)
    log_prob = torch.compile(flow.log_prob, fullgraph=True, dynamic=True, backend=backend)
    c = torch.randn(3)
    for count in (5, 8):
        torch.manual_seed(count)
        x, x_log_prob = sample(count, c)
        torch.manual_seed(count)
        expected_x, expected_log_prob = flow.sample_with_log_prob(count, c)
        torch.testing.assert_close(x, expected_x)
        torch.testing.assert_close(x_log_prob, expected_log_prob)
        torch.testing.assert_close(log_prob(x, c.expand(count, 3)), expected_log_prob, rtol=1e-4, atol=1e-4)
    assert backend.compilations == 2  # one per function, none for the new count


def test_importing_the_library_does_not_import_dynamo():
    """torch._dynamo costs about a second to import: only compiling (or a traced call) may load it."""
    import subprocess
    import sys

    code = ("import sys, freia_graph, freia_graph.framework, freia_graph.modules, freia_graph.distributions, "
            "freia_graph.presets; print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
