"""``freia-graph check`` passes a correct block, fails a planted bug with a readable report."""

from __future__ import annotations

import pytest

from freia_graph.cli import main


def _check(capsys, *arguments: str) -> tuple[int, str]:
    code = main(["check", *arguments, "--examples", "10"])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("condition", [[], ["--cond", "3"]], ids=["plain", "conditional"])
def test_a_correct_block_passes(capsys, condition):
    code, report = _check(capsys, "tests.testing.planted:Coupling", "--dims", "6", *condition)
    assert code == 0, report
    assert "ok    log_det " in report and "no failure in 10 random graphs" in report
    assert report.rstrip().endswith("PASSED: tests.testing.planted:Coupling")


def test_a_planted_bug_fails_with_the_property_and_a_small_graph(capsys):
    code, report = _check(capsys, "tests.testing.planted:WrongLogDetSign", "--dims", "6")
    assert code == 1
    assert "FAILED [log_det] WrongLogDetSign(dims_in=[(6,)])" in report
    graph = report.split("FAILED on this graph (shrunk):\n")[1].split("\n  [")[0]
    assert "WrongLogDetSign1 = WrongLogDetSign(x0) -> (6,)" in graph
    assert len(graph.splitlines()) <= 4
    assert "caused by [log_det] node 'WrongLogDetSign1'" in report


def test_skipping_a_property_from_the_command_line(capsys):
    code, report = _check(
        capsys, "tests.testing.planted:ParameterWithoutGradient", "--dims", "6", "--skip", "gradients=unused on purpose"
    )
    assert code == 0, report
    assert "skip  gradients            unused on purpose" in report


BAD_TARGETS = ["tests.testing.planted", "no_such_package.module:Block", "tests.testing.planted:Nope"]


@pytest.mark.parametrize("target", BAD_TARGETS)
def test_bad_targets_exit_with_2(capsys, target):
    code, report = _check(capsys, target, "--dims", "6")
    assert code == 2
    assert report.startswith("freia-graph check: ")
