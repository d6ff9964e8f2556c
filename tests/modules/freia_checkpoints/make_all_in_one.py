"""FrEIA checkpoint fixtures for AllInOneBlock (see ``fixture_format.py``; run with FrEIA installed).

FrEIA HEAD clamps the coupling's log-scale as ``clamp * tanh(a / clamp)``: its fixtures ask for our
``freia_head_clamp=True``. A hard permutation is a matrix in FrEIA 0.2 and an index vector in HEAD; we
save HEAD's form.
"""

from tests.modules.freia_checkpoints.fixture_format import main

HEAD_CLAMP = {"our_kwargs": {"freia_head_clamp": True}}
HARD_PERMUTATION = {
    "head": HEAD_CLAMP,
    "0.2": {"saves_other_layout": "FrEIA 0.2 stores a hard permutation as a matrix; we save HEAD's index vector"},
}

CASES = [
    {"name": "all_in_one_vector", "block": "AllInOneBlock", "dims_in": [[4]], "subnet": "fc",
     "by_version": HARD_PERMUTATION},
    {"name": "all_in_one_vector_clamp", "block": "AllInOneBlock", "dims_in": [[5]], "subnet": "fc",
     "kwargs": {"affine_clamping": 0.7, "global_affine_type": "SIGMOID", "global_affine_init": 1.3},
     "perturb": 0.5, "by_version": HARD_PERMUTATION},
    {"name": "all_in_one_conditional_soft_householder", "block": "AllInOneBlock", "dims_in": [[4]],
     "dims_c": [[2]], "subnet": "fc",
     "kwargs": {"permute_soft": True, "learned_householder_permutation": 2, "reverse_permutation": True,
                "global_affine_type": "EXP"},
     "by_version": {"head": HEAD_CLAMP}},
    {"name": "all_in_one_image", "block": "AllInOneBlock", "dims_in": [[4, 4, 4]], "subnet": "conv",
     "by_version": HARD_PERMUTATION},
    {"name": "all_in_one_image_soft_conditional", "block": "AllInOneBlock", "dims_in": [[4, 4, 4]],
     "dims_c": [[1, 4, 4]], "subnet": "conv", "kwargs": {"permute_soft": True, "reverse_permutation": True},
     "by_version": {"head": HEAD_CLAMP}},
    {"name": "all_in_one_gin", "block": "AllInOneBlock", "dims_in": [[4]], "subnet": "fc",
     "kwargs": {"gin_block": True}, "by_version": HARD_PERMUTATION},
]

if __name__ == "__main__":
    main(CASES)
