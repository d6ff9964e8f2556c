"""The format of the FrEIA checkpoint fixtures, shared by their generators and by the test that loads them.

A fixture is one block saved by real FrEIA (0.2 from PyPI, or GitHub HEAD): its constructor arguments, its
``state_dict`` after a warm-up call (data-dependent initialisation) and a perturbation away from the
identity, and what it computed on fixed inputs, forward and reverse. The test builds the same block from
freia_graph, loads the state_dict strictly and compares.

This file imports only torch, so the generators run in a throwaway environment that has FrEIA installed:

    /path/to/freia-env/bin/python -m tests.modules.freia_checkpoints.make_<family> --version 0.2
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["FIXTURE_DIR", "SUBNETS", "generate", "main", "call_block"]

FIXTURE_DIR = Path(__file__).parent / "data"


def subnet_fc(c_in: int, c_out: int) -> nn.Module:
    """The fully connected subnet every fixture uses."""
    return nn.Sequential(nn.Linear(c_in, 16), nn.Tanh(), nn.Linear(16, c_out))


def subnet_conv(c_in: int, c_out: int) -> nn.Module:
    """The convolutional subnet every image fixture uses."""
    return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, c_out, 3, padding=1))


SUBNETS: dict[str | None, Callable[[int, int], nn.Module] | None] = {None: None, "fc": subnet_fc, "conv": subnet_conv}


def call_block(block: nn.Module, x: torch.Tensor, c: Sequence[torch.Tensor], rev: bool) -> tuple[Any, Any]:
    """Call a block as FrEIA's GraphINN does (by keyword; ``c`` only when the block has conditions)."""
    if c:
        return block([x], c=list(c), rev=rev, jac=True)
    return block([x], rev=rev, jac=True)



def _build(modules: Any, case: dict[str, Any]) -> nn.Module:
    kwargs = dict(case.get("kwargs", {}))
    if case.get("subnet"):
        kwargs["subnet_constructor"] = SUBNETS[case["subnet"]]
    dims_in = [tuple(d) for d in case["dims_in"]]
    dims_c = [tuple(d) for d in case.get("dims_c", [])]
    if dims_c:
        kwargs["dims_c"] = dims_c
    return getattr(modules, case["block"])(dims_in, **kwargs)


def generate(cases: Sequence[dict[str, Any]], version: str, batch: int = 5) -> None:
    """Build every case with the installed FrEIA and save one fixture file per case.

    A case is a dict: ``name`` (file stem), ``block`` (the class name in ``FrEIA.modules``), ``dims_in``,
    optional ``dims_c``, ``kwargs`` (JSON-like constructor arguments), ``subnet`` (``"fc"``, ``"conv"`` or
    None), ``our_kwargs`` (extra arguments freia_graph needs to reproduce this FrEIA version, e.g. a
    compatibility option), ``perturb`` (scale of the noise added to every trainable floating parameter; 0.05),
    ``atol`` (tolerance of the comparison; 1e-5 in float64), ``needs_grad`` (run the recorded calls with
    autograd on), ``versions`` (the FrEIA versions that have the block; all if absent),
    ``log_det_unchecked`` (why the log-dets are not compared, e.g. a random estimate) and ``by_version``
    (fields that override the case's for one FrEIA version, e.g. ``{"head": {"our_kwargs": ...},
    "0.2": {"skip": True}}``).
    """
    import FrEIA.modules as freia_modules

    FIXTURE_DIR.mkdir(exist_ok=True)
    for case in cases:
        case = {**case, **case.get("by_version", {}).get(version, {})}
        if case.get("skip") or version not in case.get("versions", (version,)):
            continue
        torch.manual_seed(0)
        block = _build(freia_modules, case).double()
        x = torch.randn(batch, *case["dims_in"][0], dtype=torch.float64)
        c = [torch.randn(batch, *d, dtype=torch.float64) for d in case.get("dims_c", [])]
        call_block(block, x, c, rev=False)  # data-dependent initialisation (ActNorm), as in training
        with torch.no_grad():
            # Frozen parameters (FrEIA keeps some fixed buffers as parameters) never change in training.
            for parameter in (p for p in block.parameters() if p.requires_grad and p.is_floating_point()):
                parameter.add_(case.get("perturb", 0.05) * torch.randn_like(parameter))
        # Blocks whose log-det differentiates their own output (FrEIA's IResNetLayer) need autograd on.
        with torch.set_grad_enabled(bool(case.get("needs_grad"))):
            # Clones: some FrEIA blocks (Haar, IRevNet) scale their input in place in reverse.
            (z,), log_det = call_block(block, x.clone(), c, rev=False)
            (x_back,), log_det_rev = call_block(block, z.detach().clone(), c, rev=True)
        z, x_back, log_det, log_det_rev = (torch.as_tensor(t).detach() for t in (z, x_back, log_det, log_det_rev))
        path = FIXTURE_DIR / f"{case['name']}-freia{version}.pt"
        torch.save({
            "case": dict(case), "version": version, "state_dict": block.state_dict(),
            "x": x, "c": c, "z": z, "log_det": torch.as_tensor(log_det, dtype=torch.float64),
            "x_back": x_back, "log_det_rev": torch.as_tensor(log_det_rev, dtype=torch.float64),
        }, path)
        print(f"wrote {path.name}")


def main(cases: Sequence[dict[str, Any]]) -> None:
    """Command line of a generator script: ``--version`` names the FrEIA version installed (``0.2`` or ``head``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, choices=["0.2", "head"])
    generate(cases, parser.parse_args().version)
