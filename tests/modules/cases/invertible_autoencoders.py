"""Registry cases for the invertible autoencoder layers (see tests/modules/registry.py).

InvAutoFC and InvAutoConv2D reverse with the transposed weight, which inverts the forward only for
orthogonal weights; the suite perturbs the weights, so their round-trip and log-det symmetry checks are
skipped. Their log-dets are still checked against the exact Jacobian of each direction's map.
tests/modules/test_invertible_autoencoders.py checks what they do guarantee.
"""

from freia_graph.modules.invertible_autoencoders import InvAutoAct, InvAutoActTwoSided, InvAutoConv2D, InvAutoFC
from tests.modules.registry import BlockCase

_TRANSPOSE_IS_NOT_INVERSE = {
    "skip": {
        "round_trip": "reverse applies the transposed weight, the inverse only for orthogonal weights",
        "log_det_symmetry": "reverse reports log|det W^T| = log|det W| of the map it computes, not -log|det W|",
    }
}

CASES: list[BlockCase] = [
    BlockCase(InvAutoAct, [(6,)]),
    BlockCase(InvAutoAct, [(3, 4, 4)]),
    BlockCase(InvAutoAct, [(5,)], kwargs={"slope_init": 0.3, "learnable": False}, name="fixed"),
    BlockCase(InvAutoActTwoSided, [(6,)]),
    BlockCase(InvAutoActTwoSided, [(2, 4, 4)], kwargs={"init_pos": 1.5, "init_neg": 0.2}),
    BlockCase(InvAutoFC, [(6,)], check_kwargs=_TRANSPOSE_IS_NOT_INVERSE),
    BlockCase(InvAutoConv2D, [(2, 4, 4)], check_kwargs=_TRANSPOSE_IS_NOT_INVERSE),
    BlockCase(
        InvAutoConv2D,
        [(2, 5, 5)],
        kwargs={"kernel_size": 5, "padding": 2},
        name="kernel5",
        check_kwargs=_TRANSPOSE_IS_NOT_INVERSE,
    ),
]
