"""FrEIA checkpoint fixtures for Fixed1x1Conv, FixedLinearTransform and HouseholderPerm(fixed=True)
(see ``fixture_format.py``; run with FrEIA installed)."""

import torch

from tests.modules.freia_checkpoints.fixture_format import main

_generator = torch.Generator().manual_seed(1)
MATRIX = torch.eye(3) + 0.3 * torch.randn(3, 3, generator=_generator)
OFFSET = torch.randn(3, generator=_generator)

CASES = [
    {"name": "fixed_linear_transform", "block": "FixedLinearTransform", "dims_in": [[3]],
     "kwargs": {"M": MATRIX, "b": OFFSET}},
    {"name": "fixed_linear_transform_no_offset", "block": "FixedLinearTransform", "dims_in": [[3]],
     "kwargs": {"M": MATRIX},
     "by_version": {"0.2": {"saves_other_layout": "FrEIA 0.2 has no b entry then; we save HEAD's 0-dim b"}}},
    {"name": "fixed_1x1_conv", "block": "Fixed1x1Conv", "dims_in": [[3, 4, 4]], "kwargs": {"M": MATRIX}},
    # FrEIA never changes the fixed matrix W (it is the product of the reflections Vs), so no perturbation
    {"name": "householder_perm_fixed", "block": "HouseholderPerm", "dims_in": [[4]],
     "kwargs": {"n_reflections": 3, "fixed": True}, "perturb": 0.0},
]

if __name__ == "__main__":
    main(CASES)
