"""Registry cases for this family's blocks (see tests/modules/registry.py)."""

from tests.modules.registry import BlockCase

CASES: list[BlockCase] = []
