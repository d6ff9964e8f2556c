"""Checkpoints saved by real FrEIA (0.2 and GitHub HEAD) load strictly into freia_graph and compute the same.

The fixtures live in ``tests/modules/freia_checkpoints/data``; ``freia_checkpoints/fixture_format.py`` says how
they are made and ``make_*.py`` beside it are the scripts that made them (run with FrEIA installed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import freia_graph.modules as Fm
from tests.modules.freia_checkpoints.fixture_format import FIXTURE_DIR, SUBNETS, call_block

FIXTURES = sorted(FIXTURE_DIR.glob("*.pt"))


def _load(path: Path) -> dict:
    return torch.load(path, weights_only=False)


def _build(case: dict) -> torch.nn.Module:
    kwargs = {**case.get("kwargs", {}), **case.get("our_kwargs", {})}
    if case.get("subnet"):
        kwargs["subnet_constructor"] = SUBNETS[case["subnet"]]
    dims_c = [tuple(d) for d in case.get("dims_c", [])]
    if dims_c:
        kwargs["dims_c"] = dims_c
    return getattr(Fm, case["block"])([tuple(d) for d in case["dims_in"]], **kwargs).double()


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_freia_checkpoint_loads_strictly_and_matches(path: Path) -> None:
    saved = _load(path)
    case = saved["case"]
    block = _build(case)
    block.load_state_dict(saved["state_dict"], strict=True)
    atol = case.get("atol", 1e-5)
    with torch.no_grad():
        (z,), log_det = call_block(block, saved["x"], saved["c"], rev=False)
        (x_back,), log_det_rev = call_block(block, saved["z"], saved["c"], rev=True)
    compared = ((z, "z"), (log_det, "log_det"), (x_back, "x_back"), (log_det_rev, "log_det_rev"))
    if case.get("log_det_unchecked"):  # e.g. a random trace estimate: only the outputs are deterministic
        compared = compared[::2]
    for ours, key in compared:
        expected = saved[key]
        ours = torch.as_tensor(ours, dtype=expected.dtype)  # a Python float log-det would become float32
        torch.testing.assert_close(ours.expand_as(expected), expected, atol=atol, rtol=0,
                                   msg=lambda message, key=key: f"{key}: {message}")


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_state_dict_keeps_the_freia_layout(path: Path) -> None:
    """What we save, FrEIA (of the fixture's version, or HEAD for blocks whose layouts differ) can load."""
    saved = _load(path)
    case = saved["case"]
    if case.get("saves_other_layout"):
        pytest.skip(case["saves_other_layout"])
    block = _build(case)
    block.load_state_dict(saved["state_dict"], strict=True)
    ours = {key: tuple(value.shape) for key, value in block.state_dict().items()}
    theirs = {key: tuple(value.shape) for key, value in saved["state_dict"].items()}
    assert ours == theirs
