"""The registry of blocks that the shared property suite (test_block_properties.py) runs over.

Each family adds its cases in ``tests/modules/cases/<family>.py`` as ``CASES = [BlockCase(...), ...]``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any

from torch import nn


def linear_subnet(c_in: int, c_out: int) -> nn.Module:
    """A small fully connected subnet, the usual test constructor for vector couplings."""
    return nn.Sequential(nn.Linear(c_in, 16), nn.Tanh(), nn.Linear(16, c_out))


def conv_subnet(c_in: int, c_out: int) -> nn.Module:
    """A small convolutional subnet for image couplings."""
    return nn.Sequential(nn.Conv2d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, c_out, 3, padding=1))


@dataclass(frozen=True)
class BlockCase:
    """One block, its shapes and constructor arguments.

    ``compiles`` says whether ``torch.compile(fullgraph=True)`` must succeed; where it is False,
    ``compile_reason`` says why it cannot.  ``float32_atol`` is the round-trip tolerance in float32.
    ``check_kwargs`` are passed on to ``check_module_contract`` (e.g. a looser log-det tolerance for
    blocks whose log-det is an approximation).
    """

    module: type
    dims_in: list[tuple[int, ...]]
    dims_c: list[tuple[int, ...]] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    compiles: bool = True
    compile_reason: str = ""
    float32_atol: float = 1e-4
    check_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        shapes = "+".join("x".join(map(str, d)) for d in self.dims_in)
        cond = ("|c" + "+".join("x".join(map(str, d)) for d in self.dims_c)) if self.dims_c else ""
        return f"{self.module.__name__}{'-' + self.name if self.name else ''}[{shapes}{cond}]"


def all_cases() -> list[BlockCase]:
    """Every family's cases, in a deterministic order."""
    from tests.modules import cases

    found: list[BlockCase] = []
    for info in sorted(pkgutil.iter_modules(cases.__path__), key=lambda i: i.name):
        found.extend(importlib.import_module(f"tests.modules.cases.{info.name}").CASES)
    return found
