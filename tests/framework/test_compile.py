"""GraphINN and SequenceINN trace with torch.compile(fullgraph=True): no graph breaks in the runner."""

import pytest
import torch

import freia_graph.framework as Ff
from tests.framework.graphs import GRAPHS, build
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
