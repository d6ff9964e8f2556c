"""Fixtures for the blocks whose FrEIA layout and maths freia_graph already shares (0.2 and HEAD alike).

They lock the match in: couplings (also conditional), the learned permutations and the reshapes.
Run from the project root with FrEIA installed:

    python -m tests.modules.freia_checkpoints.make_matching_blocks --version 0.2   # or head
"""

from __future__ import annotations

from tests.modules.freia_checkpoints.fixture_format import main

__all__ = ["CASES"]

CASES = [
    {"name": "glow-fc", "block": "GLOWCouplingBlock", "dims_in": [(4,)], "subnet": "fc"},
    {"name": "glow-fc-cond", "block": "GLOWCouplingBlock", "dims_in": [(4,)], "dims_c": [(3,)], "subnet": "fc",
     "kwargs": {"clamp": 1.5}},
    {"name": "glow-conv-cond", "block": "GLOWCouplingBlock", "dims_in": [(3, 4, 4)], "dims_c": [(2, 4, 4)],
     "subnet": "conv"},
    {"name": "rnvp-fc", "block": "RNVPCouplingBlock", "dims_in": [(5,)], "subnet": "fc"},
    {"name": "rnvp-conv-cond", "block": "RNVPCouplingBlock", "dims_in": [(2, 3, 3)], "dims_c": [(1, 3, 3)],
     "subnet": "conv"},
    {"name": "nice-fc", "block": "NICECouplingBlock", "dims_in": [(4,)], "subnet": "fc"},
    {"name": "nice-fc-cond", "block": "NICECouplingBlock", "dims_in": [(4,)], "dims_c": [(2,)], "subnet": "fc"},
    {"name": "gin-fc", "block": "GINCouplingBlock", "dims_in": [(4,)], "subnet": "fc"},
    {"name": "gin-conv-cond", "block": "GINCouplingBlock", "dims_in": [(2, 3, 3)], "dims_c": [(1, 3, 3)],
     "subnet": "conv"},
    {"name": "affine-one-sided-fc", "block": "AffineCouplingOneSided", "dims_in": [(5,)], "subnet": "fc"},
    {"name": "affine-one-sided-fc-cond", "block": "AffineCouplingOneSided", "dims_in": [(4,)], "dims_c": [(3,)],
     "subnet": "fc"},
    {"name": "conditional-affine-fc", "block": "ConditionalAffineTransform", "dims_in": [(4,)], "dims_c": [(3,)],
     "subnet": "fc"},
    {"name": "conditional-affine-conv", "block": "ConditionalAffineTransform", "dims_in": [(2, 3, 3)],
     "dims_c": [(2, 3, 3)], "subnet": "conv"},
    {"name": "permute-random", "block": "PermuteRandom", "dims_in": [(6,)], "kwargs": {"seed": 3}},
    {"name": "permute-random-image", "block": "PermuteRandom", "dims_in": [(4, 2, 2)], "kwargs": {"seed": 1}},
    {"name": "householder-learned", "block": "HouseholderPerm", "dims_in": [(5,)], "kwargs": {"n_reflections": 3}},
    {"name": "flatten", "block": "Flatten", "dims_in": [(2, 3, 3)]},
    {"name": "reshape", "block": "Reshape", "dims_in": [(2, 3, 3)], "kwargs": {"output_dims": [6, 3]}},
    {"name": "invertible-sigmoid", "block": "InvertibleSigmoid", "dims_in": [(4,)]},
    {"name": "haar-downsampling", "block": "HaarDownsampling", "dims_in": [(2, 4, 4)]},
    {"name": "haar-downsampling-ordered", "block": "HaarDownsampling", "dims_in": [(2, 4, 4)],
     "kwargs": {"order_by_wavelet": True, "rebalance": 0.5}},
    {"name": "haar-upsampling", "block": "HaarUpsampling", "dims_in": [(8, 2, 2)]},
]

if __name__ == "__main__":
    main(CASES)
