"""FrEIA's module path ``FrEIA.modules.all_in_one_block``.

Re-exports freia_graph's own code under FrEIA's module name; no code of its own.
"""

from .all_in_one import AllInOneBlock

__all__ = ["AllInOneBlock"]
