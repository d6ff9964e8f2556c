"""Registry cases for Inverse (see tests/modules/registry.py).

The registry builds a block as ``module(dims_in, dims_c=..., **kwargs)``, but Inverse takes a built
block; :func:`inverse_of` makes an Inverse subclass that builds the block it inverts from those arguments.
"""

from __future__ import annotations

from collections.abc import Iterable

from freia_graph.modules import (
    GLOWCouplingBlock,
    HaarDownsampling,
    Inverse,
    LearnedElementwiseScaling,
    Split,
    normalize_shapes,
)
from tests.modules.registry import BlockCase, conv_subnet, linear_subnet


def inverse_of(block_class: type, block_dims_in: list[tuple[int, ...]] | None = None) -> type:
    """An Inverse subclass built like a block class: ``Inverse(block_class(block_dims, dims_c, **kwargs))``.

    ``block_dims`` is ``block_dims_in`` for blocks that change shapes (the case's dims_in must then be that
    block's output shapes), else the case's own dims_in.
    """

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c=None, **kwargs) -> None:
        block_dims = dims_in if block_dims_in is None else block_dims_in
        Inverse.__init__(self, block_class(block_dims, dims_c=dims_c, **kwargs))
        if self.dims_in != normalize_shapes(dims_in):
            raise ValueError(f"{type(self).__name__} takes {self.dims_in}, got dims_in={dims_in}")

    doc = f"Inverse of {block_class.__name__}, buildable from shapes (registry helper)."
    return type(f"Inverse{block_class.__name__}", (Inverse,), {"__init__": __init__, "__doc__": doc})


InverseGLOW = inverse_of(GLOWCouplingBlock)

CASES: list[BlockCase] = [
    BlockCase(inverse_of(LearnedElementwiseScaling), [(5,)], kwargs=dict(init_scale=2.0)),
    BlockCase(inverse_of(HaarDownsampling, [(2, 4, 4)]), [(8, 2, 2)], kwargs=dict(rebalance=0.5)),
    BlockCase(inverse_of(Split, [(6,)]), [(2,), (4,)], kwargs=dict(section_sizes=[2, 4]), name="merge"),
    BlockCase(InverseGLOW, [(6,)], kwargs=dict(subnet_constructor=linear_subnet)),
    BlockCase(InverseGLOW, [(6,)], [(3,)], kwargs=dict(subnet_constructor=linear_subnet), name="cond"),
    BlockCase(InverseGLOW, [(4, 4, 4)], kwargs=dict(subnet_constructor=conv_subnet), name="image"),
]
