"""Registry cases for the coupling blocks (see tests/modules/registry.py).

Images stay at most 144 values per sample: batched float64 ``slogdet`` of larger Jacobians is wrong with
two threads in the current torch CPU build (MKL ``DLASWP`` error), which would fail the log-det check.
"""

import torch

from freia_graph.modules.coupling import (
    AffineCouplingOneSided,
    ConditionalAffineTransform,
    GINCouplingBlock,
    GLOWCouplingBlock,
    NICECouplingBlock,
    RNVPCouplingBlock,
)
from tests.modules.registry import BlockCase, conv_subnet, linear_subnet

_SPLIT_COUPLINGS = (NICECouplingBlock, RNVPCouplingBlock, GLOWCouplingBlock, GINCouplingBlock, AffineCouplingOneSided)
_CLAMPED_COUPLINGS = (RNVPCouplingBlock, GLOWCouplingBlock, GINCouplingBlock, AffineCouplingOneSided)

_VECTOR = {"subnet_constructor": linear_subnet}
_IMAGE = {"subnet_constructor": conv_subnet}


def _shape_cases(block: type) -> list[BlockCase]:
    """Vectors, images, odd channel counts, an int split_len, and conditions of both kinds."""
    return [
        BlockCase(block, [(8,)], kwargs=_VECTOR),
        BlockCase(block, [(7,)], kwargs=_VECTOR, name="odd"),
        BlockCase(block, [(7,)], kwargs={**_VECTOR, "split_len": 2}, name="split_len_int"),
        BlockCase(block, [(4, 6, 6)], kwargs=_IMAGE),
        BlockCase(block, [(5, 4, 4)], kwargs=_IMAGE, name="odd"),
        BlockCase(block, [(8,)], [(3,)], kwargs=_VECTOR),
        BlockCase(block, [(7,)], [(3,), (2,)], kwargs=_VECTOR, name="two_conditions"),
        BlockCase(block, [(4, 6, 6)], [(2, 6, 6)], kwargs=_IMAGE),
    ]


def _clamp_cases(block: type) -> list[BlockCase]:
    return [
        BlockCase(block, [(8,)], kwargs={**_VECTOR, "clamp_activation": activation, "clamp": 1.5}, name=name)
        for name, activation in (("TANH", "TANH"), ("SIGMOID", "SIGMOID"), ("callable", torch.nn.functional.softsign))
    ]


CASES: list[BlockCase] = [
    *(case for block in _SPLIT_COUPLINGS for case in _shape_cases(block)),
    *(case for block in _CLAMPED_COUPLINGS for case in _clamp_cases(block)),
    BlockCase(ConditionalAffineTransform, [(8,)], [(3,)], kwargs=_VECTOR),
    BlockCase(ConditionalAffineTransform, [(7,)], [(3,), (2,)], kwargs=_VECTOR, name="two_conditions"),
    BlockCase(ConditionalAffineTransform, [(4, 6, 6)], [(2, 6, 6)], kwargs=_IMAGE),
    BlockCase(
        ConditionalAffineTransform, [(8,)], [(3,)], kwargs={**_VECTOR, "clamp_activation": "TANH"}, name="TANH"
    ),
]
