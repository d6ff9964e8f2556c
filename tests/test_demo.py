"""The demo runs end to end (with few steps) and writes every file it promises."""

import argparse
import io
import json
import sys

import pytest

from freia_graph import demo


def build_parser() -> argparse.ArgumentParser:
    """The demo's options as ``freia-graph demo`` has them."""
    parser = argparse.ArgumentParser(prog="freia-graph")
    demo.add_arguments(parser.add_subparsers(dest="command").add_parser("demo", help=demo.__doc__.splitlines()[0]))
    return parser


def test_demo_writes_pictures_and_metrics(tmp_path, capsys):
    args = build_parser().parse_args(["demo", "--out", str(tmp_path / "out"), "--steps", "40"])
    assert args.run(args) == 0
    out = tmp_path / "out"
    for name, start in [("graph.svg", b"<svg"), ("graph.png", b"\x89PNG"), ("samples.png", b"\x89PNG"),
                        ("loss.png", b"\x89PNG")]:
        assert (out / name).read_bytes().startswith(start)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 40 and metrics["round_trip_error"] < 1e-3 and metrics["log_det_error"] < 1e-8
    assert metrics["final_train_loss"] < 1.9  # it learned something in 40 steps
    assert "round-trip error" in capsys.readouterr().out


def test_demo_help_is_the_docstring_first_line():
    first_line = demo.__doc__.splitlines()[0]
    assert first_line.endswith(".") and first_line in " ".join(build_parser().format_help().split())


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_demo_refuses_nonpositive_steps(steps, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--steps", steps])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_is_off_unless_writing_to_a_terminal(monkeypatch):
    assert demo.progress_bar(3).disable  # pytest captures stdout and stderr: no terminal
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = demo.progress_bar(500)
    assert not bar.disable and bar.mininterval >= 1.0
    for _ in bar:
        pass
    assert terminal.getvalue().count("\r") <= 3  # first and last update only: 500 quick steps, one second
