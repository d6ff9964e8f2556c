"""Registry cases for the normalisation blocks (see tests/modules/registry.py)."""

from freia_graph.modules.normalization import ActNorm
from tests.modules.registry import BlockCase

# ActNorm initialises itself from the suite's first forward batch.
CASES: list[BlockCase] = [
    BlockCase(ActNorm, [(8,)]),
    BlockCase(ActNorm, [(7,)]),
    BlockCase(ActNorm, [(4, 6, 6)]),
]
