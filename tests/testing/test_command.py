"""``freia-graph check`` passes a correct block, stops at the first failing stage with a readable verdict,
bounds shrinking, and answers every bad argument with exit code 2 and one line, without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from freia_graph.cli import build_parser, main
from freia_graph.testing import command

from .planted import Coupling

ROOT = Path(__file__).resolve().parents[2]


class WrongOnlyInPairs(Coupling):
    """Correct, except that the log-det is off by one for batches of exactly two samples: the contract
    (batches of 4 and 1) cannot see it, the random graphs (batches of 2) can."""

    def log_det(self, scale, rev):
        log_det = super().log_det(scale, rev)
        return log_det + 1.0 if scale.shape[0] == 2 else log_det


def _check(capsys, *arguments: str) -> tuple[int, str]:
    code = main(["check", *arguments, "--examples", "10"])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("condition", [[], ["--cond", "3"]], ids=["plain", "conditional"])
def test_a_correct_block_passes(capsys, condition):
    code, report = _check(capsys, "tests.testing.planted:Coupling", "--dims", "6", *condition)
    assert code == 0, report
    assert "ok    log_det " in report and "no failure in 10 random graphs" in report
    assert report.rstrip().splitlines()[-1].startswith("PASSED: tests.testing.planted:Coupling")


def test_a_contract_violation_stops_before_the_graph_search(capsys):
    code, report = _check(capsys, "tests.testing.planted:WrongLogDetSign", "--dims", "6")
    assert code == 1
    assert "FAILED [log_det] WrongLogDetSign(dims_in=[(6,)])" in report
    assert "Random graphs" not in report
    verdict = report.rstrip().splitlines()[-1]
    assert verdict.startswith("FAILED: tests.testing.planted:WrongLogDetSign breaks the contract: [log_det]")


def test_a_failure_only_in_graphs_is_shrunk_to_a_small_graph(capsys):
    code, report = _check(capsys, "tests.testing.test_command:WrongOnlyInPairs", "--dims", "6")
    assert code == 1, report
    assert "ok    log_det " in report  # the contract holds
    graph = report.split("FAILED on this graph (shrunk):\n")[1].split("\n  [")[0]
    assert "WrongOnlyInPairs1 = WrongOnlyInPairs(x0) -> (6,)" in graph
    assert len(graph.splitlines()) <= 4
    assert "caused by [log_det] node 'WrongOnlyInPairs1'" in report
    assert "hypothesis" not in report.lower()
    assert "a random graph containing it fails" in report.rstrip().splitlines()[-1]


def test_shrinking_stops_when_its_budget_is_spent(capsys, monkeypatch):
    monkeypatch.setattr(command.SearchBudget, "default", classmethod(lambda cls, thorough: cls(10, 8, 0.0)))
    code, report = _check(capsys, "tests.testing.test_command:WrongOnlyInPairs", "--dims", "6")
    assert code == 1, report
    assert "FAILED on this graph (shrinking stopped after 0 s of CPU, --thorough shrinks longer):" in report
    assert "WrongOnlyInPairs(x0" in report


def test_skipping_a_property_from_the_command_line(capsys):
    code, report = _check(
        capsys, "tests.testing.planted:ParameterWithoutGradient", "--dims", "6", "--skip", "gradients=unused on purpose"
    )
    assert code == 0, report
    assert "skip  gradients            unused on purpose" in report


def test_thorough_runs_the_long_search():
    args = build_parser().parse_args(["check", "tests.testing.planted:Coupling", "--dims", "6", "--thorough"])
    assert args.thorough and command.SearchBudget.default(args.thorough).examples == 500
    assert command.SearchBudget.default(False).examples < 100


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module into an empty current directory (not on sys.path); undone after the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if entry not in ("", str(tmp_path))])
    names = []

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_a_module_in_the_current_directory_is_found(capsys, user_module):
    user_module("my_blocks_for_check", "from tests.testing.planted import Coupling as MyBlock\n")
    code, report = _check(capsys, "my_blocks_for_check:MyBlock", "--dims", "4")
    assert code == 0, report


BAD_ARGUMENTS = {
    "no class": (["tests.testing.planted", "--dims", "6"], "expected PACKAGE.MODULE:CLASS"),
    "no module": (["no_such_package.module:Block", "--dims", "6"], "no module named 'no_such_package'"),
    "missing class": (["tests.testing.planted:Nope", "--dims", "6"], "has no class 'Nope'"),
    "not invertible": (["torch.nn:Linear", "--dims", "6"], "not a subclass of freia_graph.InvertibleModule"),
    "dims 0": (["tests.testing.planted:Coupling", "--dims", "0"], "--dims: expected a positive integer, got 0"),
    "dims -3": (["tests.testing.planted:Coupling", "--dims", "-3"], "--dims: expected a positive integer, got -3"),
    "dims huge": (["tests.testing.planted:Coupling", "--dims", "100000000"], "accept at most 4096"),
    "image too big": (["tests.testing.planted:Coupling", "--dims", "3", "64", "64"], "12,288 values per sample"),
    "cond 0": (["tests.testing.planted:Coupling", "--dims", "6", "--cond", "0"], "--cond: expected a positive"),
    "examples 0": (["tests.testing.planted:Coupling", "--dims", "6", "--examples", "0"], "--examples: expected"),
    "kwargs list": (["tests.testing.planted:Coupling", "--dims", "6", "--kwargs", "[1,2]"], "a JSON object"),
    "kwargs bad json": (["tests.testing.planted:Coupling", "--dims", "6", "--kwargs", "{x"], "not valid JSON"),
    "unknown skip": (["tests.testing.planted:Coupling", "--dims", "6", "--skip", "speed=x"], "unknown property"),
    "no dims": (["tests.testing.planted:Coupling"], "required: --dims"),
}


def _assert_one_line_error(code: int, captured, expected: str, command_name: str = "check") -> None:
    assert code == 2
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"freia-graph {command_name}: error: "), captured.err
    assert expected in lines[0]


@pytest.mark.parametrize("arguments, expected", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS)
def test_bad_arguments_exit_with_2_and_one_line(capsys, arguments, expected):
    _assert_one_line_error(main(["check", *arguments]), capsys.readouterr(), expected)


def test_a_module_that_raises_on_import_is_a_bad_argument(capsys, user_module):
    user_module("broken_blocks_for_check", "import math\n\nRATIO = 1 / 0\n")
    code = main(["check", "broken_blocks_for_check:Block", "--dims", "4"])
    _assert_one_line_error(code, capsys.readouterr(), "importing broken_blocks_for_check raised ZeroDivisionError")


@pytest.mark.parametrize("out", ["a_file.txt", "a_file.txt/below", "/proc/freia_graph_demo"])
def test_demo_refuses_an_output_folder_it_cannot_use(capsys, tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file.txt").write_text("keep me")
    code = main(["demo", "--out", out, "--steps", "1"])
    _assert_one_line_error(code, capsys.readouterr(), f"--out {out}", "demo")
    assert (tmp_path / "a_file.txt").read_text() == "keep me"


def test_python_dash_m_freia_graph_runs_the_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    arguments = [sys.executable, "-m", "freia_graph", "check", "torch.nn:Linear", "--dims", "4"]
    result = subprocess.run(arguments, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("freia-graph check: error: torch.nn:Linear is not a subclass")
