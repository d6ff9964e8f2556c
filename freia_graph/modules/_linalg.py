"""Linear-algebra helpers shared by blocks, graphs and the testing tools."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

__all__ = ["LOW_PRECISION", "log_abs_det", "in_float32", "up_cast"]


#: the floating dtypes that blocks and graphs compute sums and log-dets above
LOW_PRECISION = (torch.float16, torch.bfloat16)


def in_float32(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function`` in at least float32 under ``torch.autocast`` or on float16/bfloat16 tensors.

    For kernels that half precision cannot run (``slogdet``, LU, solves) or runs too coarsely (a spline's
    knots and bin search: bfloat16 keeps about 3 significant digits, so knots collapse and forward and
    reverse pick different bins). ``function``'s first argument is a tensor; with autocast off and that
    tensor in float32 or float64, ``function`` is called as it is. Otherwise autocast is switched off
    inside and half-precision positional tensor arguments are up-cast to float32 (keyword arguments are
    passed on as they are). Under autocast, floating tensor results stay float32 (as autocast's own
    float32 ops do, so log-dets keep their precision); without it (a model converted to bfloat16), they
    are cast to the widest floating dtype among the arguments, so the block keeps its input's dtype.

    Example:
        >>> @in_float32
        ... def log_det(matrix: Tensor) -> Tensor:
        ...     return torch.linalg.slogdet(matrix).logabsdet
        >>> log_det(2 * torch.eye(2, dtype=torch.bfloat16))
        tensor(1.3828, dtype=torch.bfloat16)
    """

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        first = args[0]
        # the common case, float32 without autocast, costs two checks (a spline coupling calls this per half)
        if not torch._C._is_any_autocast_enabled() and first.dtype not in LOW_PRECISION:
            return function(*args, **kwargs)
        device = first.device.type
        autocast = torch.is_autocast_enabled(device)
        with torch.autocast(device, enabled=False):
            result = function(*up_cast(args), **kwargs)
        if autocast:
            return result
        floating = [value.dtype for value in args if isinstance(value, Tensor) and value.is_floating_point()]
        return _cast_floating(result, functools.reduce(torch.promote_types, floating))

    return wrapper


def up_cast(values: Iterable[Any]) -> list[Any]:
    """``values`` with float16/bfloat16 tensors converted to float32 (anything else as it is).

    Example:
        >>> [v.dtype if isinstance(v, Tensor) else v for v in up_cast([torch.ones(1, dtype=torch.bfloat16), 2])]
        [torch.float32, 2]
    """
    return [value.float() if isinstance(value, Tensor) and value.dtype in LOW_PRECISION else value
            for value in values]


def _cast_floating(result: Any, dtype: torch.dtype) -> Any:
    if isinstance(result, Tensor):
        return result.to(dtype) if result.is_floating_point() else result
    if isinstance(result, tuple) and not hasattr(result, "_fields"):
        return tuple(_cast_floating(value, dtype) for value in result)
    return result


@in_float32
def log_abs_det(matrices: Tensor) -> Tensor:
    """``log|det M|`` of each square matrix in a batch ``(..., n, n)``.

    On the CPU, torch's batched ``slogdet`` (oneMKL) returns wrong values for matrices of size 160 and up
    when several threads are used (it prints "Parameter 6 was incorrect on entry to DLASWP"); there each
    matrix is factorised on its own, which is always correct. Elsewhere the batched call is used.

    Example:
        >>> log_abs_det(torch.diag_embed(torch.tensor([[2.0, 3.0], [1.0, 4.0]])))
        tensor([1.7918, 1.3863])
    """
    if matrices.device.type != "cpu" or matrices.dim() == 2:
        return torch.linalg.slogdet(matrices).logabsdet
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    return torch.stack([torch.linalg.slogdet(matrix).logabsdet for matrix in flat]).reshape(matrices.shape[:-2])
