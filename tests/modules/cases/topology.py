"""Registry cases for Split and Concat (see tests/modules/registry.py)."""

from freia_graph.modules import Concat, Split
from tests.modules.registry import BlockCase

CASES: list[BlockCase] = [
    BlockCase(Split, [(6,)], name="halves"),
    BlockCase(Split, [(7,)], kwargs=dict(n_sections=3), name="unequal"),
    BlockCase(Split, [(10,)], kwargs=dict(section_sizes=4), name="int-size"),
    BlockCase(Split, [(10,)], kwargs=dict(section_sizes=[1, 2, 3, 4]), name="list"),
    BlockCase(Split, [(5, 4, 4)], kwargs=dict(section_sizes=[2, 3]), name="channels"),
    BlockCase(Split, [(3, 6, 4)], kwargs=dict(n_sections=3, dim=1), name="rows"),
    BlockCase(Split, [(2, 4, 6)], kwargs=dict(section_sizes=[1, 5], dim=2), name="columns"),
    BlockCase(Concat, [(2,), (3,), (1,)], name="vectors"),
    BlockCase(Concat, [(1, 4, 4), (3, 4, 4)], name="channels"),
    BlockCase(Concat, [(3, 2, 4), (3, 4, 4), (3, 1, 4)], kwargs=dict(dim=1), name="rows"),
]
