"""Registry cases for the permutation and linear-map blocks (see tests/modules/registry.py)."""

import torch

from freia_graph.modules.permutations import (
    Fixed1x1Conv,
    FixedLinearTransform,
    InvertibleConv1x1,
    InvertibleLinear,
    PermuteRandom,
)
from tests.modules.registry import BlockCase


def _well_conditioned(channels: int, seed: int) -> torch.Tensor:
    """A fixed invertible float64 matrix, so the fixed blocks' buffers are exact in the float64 checks."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(channels, channels, generator=generator, dtype=torch.float64) + 3 * torch.eye(channels)


CASES: list[BlockCase] = [
    BlockCase(PermuteRandom, [(8,)], kwargs={"seed": 0}),
    BlockCase(PermuteRandom, [(7,)], kwargs={"seed": 1}),
    BlockCase(PermuteRandom, [(4, 6, 6)], kwargs={"seed": 2}),
    BlockCase(FixedLinearTransform, [(8,)], kwargs={"M": _well_conditioned(8, 0)}),
    BlockCase(
        FixedLinearTransform, [(7,)], name="bias",
        kwargs={"M": _well_conditioned(7, 1), "b": torch.linspace(-1, 1, 7, dtype=torch.float64)},
    ),
    BlockCase(Fixed1x1Conv, [(4, 6, 6)], kwargs={"M": _well_conditioned(4, 2)}),
    BlockCase(InvertibleLinear, [(8,)], kwargs={"seed": 0}),
    BlockCase(InvertibleLinear, [(7,)], name="dense", kwargs={"seed": 1, "LU_decomposed": False}),
    BlockCase(InvertibleConv1x1, [(4, 6, 6)], kwargs={"seed": 0}),
    BlockCase(InvertibleConv1x1, [(3, 5, 5)], name="dense", kwargs={"seed": 1, "LU_decomposed": False}),
]
