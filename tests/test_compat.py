"""freia_graph.compat.alias_freia: FrEIA code runs unmodified. Each test runs in a clean interpreter,
because the alias lasts for the whole process."""

import subprocess
import sys
import textwrap
from pathlib import Path

import freia_graph

ROOT = Path(freia_graph.__file__).resolve().parent.parent


def _run(program: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_every_freia_path_is_the_freia_graph_module_of_the_same_path():
    out = _run("""
        import importlib, sys
        from freia_graph.compat import FREIA_MODULE_PATHS, alias_freia
        alias_freia()
        alias_freia()  # idempotent
        for name in FREIA_MODULE_PATHS:
            try:
                ours = importlib.import_module("freia_graph" + name[len("FrEIA"):])
            except ModuleNotFoundError:
                assert name.startswith("FrEIA.distributions"), name
                continue
            assert sys.modules[name] is ours, name
            assert ours.__spec__.name == ours.__name__, name  # the alias leaves the module's own spec alone
            parent, _, child = name.rpartition(".")
            assert not parent or getattr(sys.modules[parent], child) is ours, name
        print(sum(isinstance(f, type(sys.meta_path[0])) for f in sys.meta_path))
    """)
    assert out.split() == ["1"]


def test_freia_programs_run_with_their_imports_unchanged():
    out = _run("""
        from freia_graph.compat import alias_freia
        alias_freia()
        import pickle, torch
        import FrEIA
        import FrEIA.framework as Ff
        import FrEIA.modules as Fm
        import FrEIA.modules.coupling_layers as coupling_layers
        from FrEIA.framework import *
        from FrEIA.framework.graph_inn import Node as GraphInnNode
        from FrEIA.modules.splines.binned import BinnedSpline
        from FrEIA.utils import sum_except_batch
        import freia_graph.modules

        assert coupling_layers.GLOWCouplingBlock is freia_graph.modules.GLOWCouplingBlock
        assert GraphInnNode is Node is Ff.Node and issubclass(BinnedSpline, coupling_layers._BaseCouplingBlock)
        def subnet(c_in, c_out):
            return torch.nn.Sequential(torch.nn.Linear(c_in, 16), torch.nn.ReLU(), torch.nn.Linear(16, c_out))

        nodes = [InputNode(4, name="x")]
        nodes.append(Node(nodes[-1], Fm.GLOWCouplingBlock, {"subnet_constructor": subnet}))
        nodes.append(Node(nodes[-1], Fm.PermuteRandom, {"seed": 0}))
        nodes.append(OutputNode(nodes[-1]))
        inn = GraphINN(nodes)
        x = torch.randn(8, 4)
        z, log_det = inn(x)
        x_rec, _ = inn(z, rev=True)
        assert torch.allclose(x_rec, x, atol=1e-5) and log_det.shape == (8,)
        assert sum_except_batch(torch.ones(2, 3)).tolist() == [3.0, 3.0]
        assert type(pickle.loads(pickle.dumps(inn))) is GraphINN
        print(FrEIA.__version__ == freia_graph.__version__, FrEIA.__name__)
    """)
    assert out.split() == ["True", "freia_graph"]


def test_unknown_freia_paths_fail_with_a_clear_message():
    out = _run("""
        from freia_graph.compat import alias_freia
        alias_freia()
        try:
            import FrEIA.modules.no_such_module
        except ModuleNotFoundError as error:
            print(error.name, "freia_graph.modules.no_such_module" in str(error))
    """)
    assert out.split() == ["FrEIA.modules.no_such_module", "True"]


def test_refuses_when_the_real_freia_is_already_imported():
    out = _run("""
        import sys, types
        real = types.ModuleType("FrEIA")  # stands in for an installed FrEIA that something imported first
        real.__file__ = "/site-packages/FrEIA/__init__.py"
        sys.modules["FrEIA"] = real
        from freia_graph.compat import alias_freia
        try:
            alias_freia()
        except ImportError as error:
            print("before anything imports FrEIA" in str(error), "/site-packages/FrEIA" in str(error))
        print(sys.modules["FrEIA"] is real)
    """)
    assert out.split() == ["True", "True", "True"]

