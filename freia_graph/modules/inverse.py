"""Inverse: run any invertible block (or whole graph) backwards."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from torch import Tensor

from .base import InvertibleModule, Shape, normalize_shapes

__all__ = ["Inverse"]


class Inverse(InvertibleModule):
    r"""Swap a block's directions: its forward pass is the block's reverse pass, and vice versa.

    .. math:: z = f^{-1}(x), \qquad \log|\det J_{f^{-1}}(x)| = -\log|\det J_f(f^{-1}(x))|

    From FrEIA. The wrapped block keeps its parameters (they appear under ``module.`` in the state
    dict). Its inputs are the block's outputs, its conditions the block's conditions, and its outputs
    the block's inputs; being an instance, it goes into a graph as ``Node(x, Inverse(block), None)``.

    Args:
        module: the block to invert, an already built :class:`InvertibleModule` (graphs included).

    Differences from FrEIA: ``output_dims`` checks that it is asked about the shapes the block produces.

    Example:
        >>> import torch
        >>> from freia_graph.modules import HaarDownsampling
        >>> upsample = Inverse(HaarDownsampling([(3, 8, 8)]))
        >>> upsample.dims_in, upsample.output_dims(upsample.dims_in)
        ([(12, 4, 4)], [(3, 8, 8)])
        >>> (x,), log_det = upsample([torch.randn(2, 12, 4, 4)])
        >>> x.shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, module: InvertibleModule):
        if not isinstance(module, InvertibleModule):
            raise TypeError(f"Inverse needs an InvertibleModule instance, got {module!r}")
        super().__init__(module.output_dims(module.dims_in), module.dims_c)
        self.module = module

    @property
    def force_tuple_output(self) -> bool:
        """Whether the wrapped module returns a tuple (graphs with ``force_tuple_output=False`` do not)."""
        return getattr(self.module, "force_tuple_output", True)

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor, ...], Tensor | float | None]:
        return self.module(x_or_z, c=c, rev=not rev, jac=jac)

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        if normalize_shapes(input_dims, "input_dims") != self.dims_in:
            raise ValueError(
                f"Inverse({type(self.module).__name__}) takes inputs of shapes {self.dims_in}, the block's "
                f"outputs, but got input_dims={list(input_dims)}"
            )
        return list(self.module.dims_in)
