"""Linear-algebra helpers shared by blocks, graphs and the testing tools."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["log_abs_det"]


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
