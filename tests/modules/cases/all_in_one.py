"""Registry cases for AllInOneBlock (see tests/modules/registry.py)."""

from torch import nn

from freia_graph.modules.all_in_one import AllInOneBlock
from tests.modules.registry import BlockCase, conv_subnet, linear_subnet


def conv1d_subnet(c_in: int, c_out: int) -> nn.Module:
    """A convolutional subnet for sequences (C, L)."""
    return nn.Sequential(nn.Conv1d(c_in, 8, 3, padding=1), nn.Tanh(), nn.Conv1d(8, c_out, 3, padding=1))


_VECTOR = {"subnet_constructor": linear_subnet}
_IMAGE = {"subnet_constructor": conv_subnet}

# every option on its own, and the combinations that share code paths (Householder with either kind of
# permutation and with the reversed pre-permutation)
_OPTIONS: dict[str, dict] = {
    "gin": {"gin_block": True},
    "SIGMOID": {"global_affine_type": "SIGMOID", "global_affine_init": 2.0},
    "EXP": {"global_affine_type": "EXP", "global_affine_init": 0.5},
    "soft": {"permute_soft": True},
    "householder": {"learned_householder_permutation": 2},
    "householder_soft": {"learned_householder_permutation": 2, "permute_soft": True},
    "reverse": {"reverse_permutation": True},
    "reverse_householder": {"reverse_permutation": True, "learned_householder_permutation": 2},
    "clamp": {"affine_clamping": 1.0},
}

CASES: list[BlockCase] = [
    BlockCase(AllInOneBlock, [(8,)], kwargs=_VECTOR),
    BlockCase(AllInOneBlock, [(7,)], kwargs=_VECTOR, name="odd"),
    BlockCase(AllInOneBlock, [(4, 6, 6)], kwargs=_IMAGE),
    BlockCase(AllInOneBlock, [(3, 6)], kwargs={"subnet_constructor": conv1d_subnet}, name="1d"),
    BlockCase(AllInOneBlock, [(8,)], [(3,)], kwargs=_VECTOR),
    BlockCase(AllInOneBlock, [(4, 6, 6)], [(2, 6, 6)], kwargs=_IMAGE),
    *(BlockCase(AllInOneBlock, [(8,)], kwargs={**_VECTOR, **options}, name=name) for name, options in _OPTIONS.items()),
    *(
        BlockCase(AllInOneBlock, [(4, 6, 6)], [(2, 6, 6)], kwargs={**_IMAGE, **options}, name=name)
        for name, options in _OPTIONS.items()
    ),
]
