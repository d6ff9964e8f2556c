"""One calling convention for blocks, GraphINNs and SequenceINNs, so every check treats them alike."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from freia_graph.framework.call_form import call_module

from .violations import ContractViolation

__all__ = [
    "Inputs",
    "as_tensor_list",
    "call",
    "describe_subject",
    "per_sample_log_det",
    "random_like_dims",
    "run_model",
]

Inputs = Tensor | Sequence[Tensor] | None


def as_tensor_list(value: Inputs, what: str = "x") -> list[Tensor]:
    """A tensor, a sequence of tensors or None, as a list of tensors.

    Example:
        >>> [t.shape for t in as_tensor_list(torch.zeros(2, 3))]
        [torch.Size([2, 3])]
        >>> as_tensor_list(None)
        []
    """
    if value is None:
        return []
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, dict) or not isinstance(value, Sequence):
        raise TypeError(f"{what} must be a tensor or a list of tensors, got {type(value).__name__}")
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, Tensor):
            raise TypeError(f"{what}[{index}] must be a tensor, got {type(item).__name__}")
    return items


def run_model(
    model: nn.Module,
    xs: Sequence[Tensor],
    cs: Sequence[Tensor] | None = None,
    rev: bool = False,
    jac: bool = True,
) -> tuple[object, object]:
    """Call a block, GraphINN or SequenceINN with lists of tensors; returns its raw ``(outputs, log_det)``.

    Inputs are passed as a list (a SequenceINN takes a one-element list too); conditions as a list, or
    None when there are none. The call takes the form the model's ``forward`` accepts, as in a graph
    (FrEIA-style signatures are called by keyword).

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> outputs, log_det = run_model(PermuteRandom([(3,)], seed=0), [torch.zeros(2, 3)])
        >>> type(outputs).__name__, log_det
        ('tuple', 0.0)
    """
    return call_module(model, list(xs), list(cs) if cs else None, rev=rev, jac=jac)


def call(
    model: nn.Module,
    xs: Sequence[Tensor],
    cs: Sequence[Tensor] | None = None,
    rev: bool = False,
    jac: bool = True,
) -> tuple[tuple[Tensor, ...], object]:
    """Like :func:`run_model`, with the outputs normalised to a tuple of tensors.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> (z,), _ = call(PermuteRandom([(3,)], seed=0), [torch.zeros(2, 3)], rev=True)
        >>> z.shape
        torch.Size([2, 3])
    """
    outputs, log_det = run_model(model, xs, cs, rev=rev, jac=jac)
    if isinstance(outputs, Tensor):
        return (outputs,), log_det
    return tuple(outputs), log_det


def per_sample_log_det(log_det: object, batch: int, like: Tensor, subject: str = "", rev: bool = False) -> Tensor:
    """The log-det as a tensor of shape ``(batch,)``; 0-dim tensors and numbers are broadcast.

    Raises:
        ContractViolation: ("log_det_shape") for None, or a tensor of any other shape.

    Example:
        >>> per_sample_log_det(0.5, 3, torch.zeros(3, 2))
        tensor([0.5000, 0.5000, 0.5000])
    """
    direction = "reverse" if rev else "forward"
    if isinstance(log_det, numbers.Real) and not isinstance(log_det, bool):
        return like.new_full((batch,), float(log_det))
    if not isinstance(log_det, Tensor):
        raise ContractViolation(
            "log_det_shape",
            f"{direction} log-det must be a tensor of shape ({batch},), a 0-dim tensor or a number, "
            f"got {type(log_det).__name__}",
            subject,
        )
    if log_det.dim() == 0:
        return log_det.expand(batch)
    if tuple(log_det.shape) != (batch,):
        raise ContractViolation(
            "log_det_shape",
            f"{direction} log-det has shape {tuple(log_det.shape)}, expected ({batch},): one per sample",
            subject,
        )
    return log_det


def _shapes(dims: Sequence[Sequence[int]]) -> str:
    return "[" + ", ".join(str(tuple(d)) for d in dims) + "]"


def describe_subject(model: nn.Module) -> str:
    """A short name for a block or graph, with its shapes, for failure messages.

    Example:
        >>> from freia_graph.modules import PermuteRandom
        >>> describe_subject(PermuteRandom([(4,)], seed=0))
        'PermuteRandom(dims_in=[(4,)])'
    """
    name = type(model).__name__
    dims_in = getattr(model, "dims_in", None)
    if dims_in is None:
        return name
    dims_c = getattr(model, "dims_c", None) or []
    if dims_in and isinstance(dims_in[0], int):
        dims_in = [dims_in]
    cond = f", dims_c={_shapes(dims_c)}" if dims_c else ""
    return f"{name}(dims_in={_shapes(dims_in)}{cond})"


def random_like_dims(
    dims: Sequence[Sequence[int]],
    batch: int,
    generator: torch.Generator,
    dtype: torch.dtype,
    scale: float = 1.0,
) -> list[Tensor]:
    """Standard normal tensors (times ``scale``) of shape ``(batch, *d)`` for every ``d`` in ``dims``.

    Example:
        >>> tensors = random_like_dims([(3,), (1, 2, 2)], 5, torch.Generator().manual_seed(0), torch.float64)
        >>> [tuple(t.shape) for t in tensors]
        [(5, 3), (5, 1, 2, 2)]
    """
    return [scale * torch.randn((batch, *d), generator=generator, dtype=dtype) for d in dims]
