"""Registry cases for the reshapes and 2x2 resamplings (see tests/modules/registry.py)."""

from freia_graph.modules import (
    Flatten,
    HaarDownsampling,
    HaarUpsampling,
    IRevNetDownsampling,
    IRevNetUpsampling,
    Reshape,
)
from tests.modules.registry import BlockCase

CASES: list[BlockCase] = [
    BlockCase(Flatten, [(2, 4, 4)]),
    BlockCase(Flatten, [(6,)], name="vector"),
    BlockCase(Reshape, [(2, 4, 4)], kwargs=dict(output_dims=(8, 2, 2))),
    BlockCase(Reshape, [(12,)], kwargs=dict(output_dims=(3, 2, 2)), name="vector-to-image"),
    BlockCase(IRevNetDownsampling, [(3, 4, 6)]),
    BlockCase(IRevNetDownsampling, [(2, 4, 4)], kwargs=dict(legacy_backend=True), name="legacy"),
    BlockCase(IRevNetUpsampling, [(8, 2, 3)]),
    BlockCase(IRevNetUpsampling, [(8, 2, 2)], kwargs=dict(legacy_backend=True), name="legacy"),
    BlockCase(HaarDownsampling, [(3, 4, 6)]),
    BlockCase(HaarDownsampling, [(2, 4, 4)], kwargs=dict(order_by_wavelet=True, rebalance=0.5), name="wav"),
    BlockCase(HaarUpsampling, [(8, 2, 3)]),
    BlockCase(HaarUpsampling, [(8, 2, 2)], kwargs=dict(order_by_wavelet=True, rebalance=-2.0), name="wav"),
]
