"""The exact log-determinant of a block's or graph's Jacobian, per sample, by automatic differentiation."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from freia_graph.modules._linalg import log_abs_det

from .calling import call

__all__ = ["exact_jacobian", "exact_log_det"]


def _flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors of shape ``(batch, ...)`` into one ``(batch, total)`` matrix."""
    return torch.cat([t.reshape(t.shape[0], -1) for t in tensors], dim=1)


def _per_sample_function(model: nn.Module, shapes: Sequence[torch.Size], rev: bool) -> Callable[..., Tensor]:
    """``f(flat_x, *conditions) -> flat_z`` for ONE sample, the model seeing a batch of one."""
    sizes = [math.prod(shape) for shape in shapes]

    def function(flat: Tensor, *conditions: Tensor) -> Tensor:
        parts = [part.reshape(1, *shape) for part, shape in zip(flat.split(sizes), shapes, strict=True)]
        outputs, _ = call(model, parts, [c.unsqueeze(0) for c in conditions], rev=rev)
        return torch.cat([o.reshape(-1) for o in outputs])

    return function


def exact_jacobian(
    model: nn.Module, xs: Sequence[Tensor], cs: Sequence[Tensor] | None = None, rev: bool = False
) -> Tensor:
    """The Jacobian of every sample's flattened outputs with respect to its flattened inputs.

    All input tensors of a sample are flattened and concatenated into one vector, and so are the outputs,
    so modules with several inputs or outputs get one square matrix per sample. The Jacobians are
    computed with ``torch.func.vmap(torch.func.jacrev(...))``; where a module cannot be vmapped (e.g. it
    calls ``.item()``), each sample is differentiated on its own with
    ``torch.autograd.functional.jacobian``.

    Args:
        model: a block, GraphINN or SequenceINN.
        xs: the input tensors, each of shape ``(batch, ...)``.
        cs: the condition tensors, or None.
        rev: differentiate the reverse direction.

    Returns:
        A tensor of shape ``(batch, outputs, inputs)``.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> exact_jacobian(PermuteRandom([(3,)], seed=0), [torch.randn(2, 3)]).shape
        torch.Size([2, 3, 3])
    """
    conditions = list(cs or [])
    function = _per_sample_function(model, [x.shape[1:] for x in xs], rev)
    flat = _flatten(xs).detach()
    conditions = [c.detach() for c in conditions]
    with torch.enable_grad():
        try:
            return torch.func.vmap(torch.func.jacrev(function))(flat, *conditions)
        except Exception:  # any failure to vmap (.item(), in-place buffer updates...): per sample
            return torch.stack(
                [
                    torch.autograd.functional.jacobian(
                        lambda v, i=index: function(v, *(c[i] for c in conditions)), flat[index]
                    )
                    for index in range(flat.shape[0])
                ]
            )


def exact_log_det(
    model: nn.Module, xs: Sequence[Tensor], cs: Sequence[Tensor] | None = None, rev: bool = False
) -> Tensor:
    """``log|det J|`` per sample from the exact Jacobian (see :func:`exact_jacobian`).

    Raises:
        ValueError: if the Jacobian is not square (outputs and inputs differ in total size).

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> exact_log_det(PermuteRandom([(3,)], seed=0), [torch.randn(2, 3, dtype=torch.float64)])
        tensor([0., 0.], dtype=torch.float64)
    """
    jacobian = exact_jacobian(model, xs, cs, rev=rev)
    if jacobian.shape[-1] != jacobian.shape[-2]:
        raise ValueError(
            f"the Jacobian is not square: {jacobian.shape[-2]} output values per sample "
            f"for {jacobian.shape[-1]} input values"
        )
    return log_abs_det(jacobian)
