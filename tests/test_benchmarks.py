"""benchmarks/bench_peers.py runs with freia_graph alone (every peer reported as skipped) and builds equal flows."""

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_peers.py"


def load_bench_peers():
    """The script as a module (registered in sys.modules, which its dataclasses need)."""
    if "bench_peers" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_peers", PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_peers"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_peers"]


@pytest.fixture
def bench_peers(monkeypatch):
    """The benchmark module as if no peer were installed and no FrEIA HEAD Python existed."""
    module = load_bench_peers()
    monkeypatch.setattr(module, "PEER_MODULES", dict.fromkeys(module.PEER_MODULES))
    monkeypatch.setattr(module, "FREIA_HEAD_PYTHON", "")
    threads = torch.get_num_threads()
    yield module
    torch.set_num_threads(threads)


def tiny(module):
    return replace(module.QUICK, batch=6, affine_dim=4, affine_blocks=1, affine_hidden=8, spline_dim=4,
                   spline_blocks=1, bins=3, spline_hidden=8, image=(3, 4, 4), image_batch=2, levels=2,
                   blocks_per_level=1, conv_hidden=4, conditional_dim=4, condition_dim=2, conditional_blocks=1,
                   conditional_hidden=8)


def test_every_case_runs_with_freia_graph_alone(bench_peers):
    results = [bench_peers.measure_case(name, tiny(bench_peers), list(bench_peers.LIBRARIES), 1,
                                        torch.device("cpu"), budget=0.0) for name in bench_peers.CASES]
    for result in results:
        assert list(result["parameters"]) == ["freia_graph"] and result["parameters"]["freia_graph"] > 0
        assert [row["operation"] for row in result["rows"]] == list(bench_peers.OPERATIONS)
        assert all(list(row["seconds"]) == ["freia_graph"] and row["seconds"]["freia_graph"] > 0
                   for row in result["rows"])
        assert any(note.startswith("zuko skipped: not installed") for note in result["notes"])
    report = bench_peers.render(results, "header")
    assert report.count("| train step |") == len(bench_peers.CASES)
    assert "| — | — | — | — | — |" in report


def test_quick_command_line_says_what_it_skipped(bench_peers):
    report = bench_peers.main(["--quick", "--cases", "conditional", "--repeats", "1"])
    assert "QUICK mode" in report and "1 thread(s)" in report
    assert "FrEIA HEAD skipped" in report and "nflows skipped: not installed" in report


@pytest.mark.parametrize("case", ["affine", "spline", "conditional"])
def test_installed_peers_build_the_same_parameter_count(case):
    module = load_bench_peers()
    peers = [name for name, found in module.PEER_MODULES.items() if found is not None]
    if not peers:
        pytest.skip("no peer library installed (pip install -e '.[bench]')")
    result = module.measure_case(case, tiny(module), list(module.LIBRARIES), 1, torch.device("cpu"), budget=0.0)
    counts = {name: count for name, count in result["parameters"].items() if name != "FrEIA HEAD"}
    assert len(set(counts.values())) == 1, counts  # FrEIA HEAD's splines predict 2 more values per element
