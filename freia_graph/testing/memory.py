"""Activation memory: the bytes autograd saves for backward during a call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["saved_tensor_bytes"]

T = TypeVar("T")


def saved_tensor_bytes(function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[int, T]:
    """Call ``function(*args, **kwargs)`` and count the bytes of the tensors autograd saves for backward.

    Each storage is counted once (views of one tensor share it), so the figure is the activation memory a
    training step holds between its forward and its backward: linear in depth for a normal flow, constant
    for a memory-saving one. Weights that layers save (e.g. a linear layer's) are counted too.

    Returns:
        ``(bytes, result)``: the count and what the call returned (e.g. to run the backward).

    Example:
        >>> import torch
        >>> saved, y = saved_tensor_bytes(torch.nn.Linear(4, 4), torch.zeros(2, 4))
        >>> saved > 0, tuple(y.shape)
        (True, (2, 4))
    """
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = function(*args, **kwargs)
    return sum(storages.values()), result
