"""Registry cases for the orthogonal blocks (see tests/modules/registry.py)."""

from freia_graph.modules.orthogonal import HouseholderPerm, OrthogonalTransform
from tests.modules.registry import BlockCase

CASES: list[BlockCase] = [
    BlockCase(OrthogonalTransform, [(8,)]),
    BlockCase(OrthogonalTransform, [(5,)], kwargs={"clamp": 0.5}, name="tight_clamp"),
    BlockCase(HouseholderPerm, [(8,)], name="defaults"),
    BlockCase(HouseholderPerm, [(7,)], kwargs={"n_reflections": 3}),
    BlockCase(HouseholderPerm, [(5,)], kwargs={"n_reflections": 9}, name="more_reflections_than_features"),
    BlockCase(HouseholderPerm, [(6,)], kwargs={"n_reflections": 4, "fixed": True}, name="fixed"),
    BlockCase(HouseholderPerm, [(6,)], [(6, 3)], kwargs={"n_reflections": 3}),
    BlockCase(HouseholderPerm, [(5,)], [(10,)], kwargs={"n_reflections": 2}, name="flat_condition"),
]
