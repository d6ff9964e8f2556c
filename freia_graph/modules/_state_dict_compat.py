"""Loading and saving blocks in the state-dict layouts of FrEIA 0.2, FrEIA HEAD and earlier freia_graph.

A block registers a *load* conversion (from any known layout of its own entries to the current one) and
optionally a *save* conversion (adding entries that FrEIA keeps but we compute from others), with
:func:`register_layout_conversion`. Both see only the block's own entries, keyed without the prefix, so
they neither know nor care where the block sits in a model; nothing runs per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

__all__ = ["register_layout_conversion", "reshape_entries", "index_from_permutation_matrix", "matrix_or_index"]

Entries = dict[str, Tensor]


def _own_entries(state_dict: Mapping[str, Tensor], prefix: str) -> Entries:
    """The entries of the module at ``prefix`` itself, not of its submodules, keyed without the prefix."""
    return {
        key[len(prefix):]: value
        for key, value in state_dict.items()
        if key.startswith(prefix) and "." not in key[len(prefix):]
    }


def _replace_own_entries(state_dict: dict, prefix: str, old: Entries, new: Entries) -> None:
    for key in old:
        del state_dict[prefix + key]
    for key, value in new.items():
        state_dict[prefix + key] = value


def _replace_own_entries_in_order(state_dict: dict, prefix: str, new: Entries) -> None:
    """Put ``new`` where the module's own entries were, before its submodules' (as ``state_dict`` orders them).

    Called right after the module saved itself, so only its own subtree's entries follow the first of them.
    """
    keys = list(state_dict)
    start = next((index for index, key in enumerate(keys) if key.startswith(prefix)), len(keys))
    tail = [(key, state_dict.pop(key)) for key in keys[start:]]
    for key, value in new.items():
        state_dict[prefix + key] = value
    for key, value in tail:
        if "." in key[len(prefix):]:
            state_dict[key] = value


class _LoadConversion:
    """A load-state-dict pre-hook applying ``convert`` to the module's own entries (picklable, unlike a closure)."""

    def __init__(self, convert: Callable[[Entries], Entries]):
        self.convert = convert

    def __call__(self, module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
        own = _own_entries(state_dict, prefix)
        _replace_own_entries(state_dict, prefix, own, self.convert(dict(own)))


class _SaveConversion:
    """A state-dict post-hook applying ``convert`` to the module's own entries, keeping their place."""

    def __init__(self, convert: Callable[[Entries], Entries]):
        self.convert = convert

    def __call__(self, module: nn.Module, state_dict: dict, prefix: str, local_metadata: object) -> None:
        _replace_own_entries_in_order(state_dict, prefix, self.convert(_own_entries(state_dict, prefix)))


def register_layout_conversion(
    module: nn.Module,
    load: Callable[[Entries], Entries] | None = None,
    save: Callable[[Entries], Entries] | None = None,
) -> None:
    """Convert ``module``'s own state-dict entries when loading and/or saving.

    The conversions must be picklable (bound methods or module-level functions, not lambdas), so that the
    module can still be pickled and deep-copied.

    Args:
        module: the block.
        load: maps the entries found in a state dict (any layout) to the block's current layout.
        save: maps the block's entries to the layout it saves (e.g. adds FrEIA's derived entries).

    Example:
        >>> def rename(entries):
        ...     return {("weight" if key == "W" else key): value for key, value in entries.items()}
        >>> block = nn.Linear(2, 2)
        >>> register_layout_conversion(block, load=rename)
        >>> block.load_state_dict({"W": torch.eye(2), "bias": torch.zeros(2)})
        <All keys matched successfully>
    """
    if load is not None:
        module.register_load_state_dict_pre_hook(_LoadConversion(load))
    if save is not None:
        module.register_state_dict_post_hook(_SaveConversion(save))


def reshape_entries(entries: Entries, module: nn.Module, names: tuple[str, ...]) -> Entries:
    """Reshape each entry in ``names`` to the shape of the module's tensor of that name when only the
    singleton dimensions differ (e.g. ``(C, 1, 1)`` saved by earlier freia_graph and ``(1, C, 1, 1)``)."""
    for name in names:
        value, own = entries.get(name), getattr(module, name, None)
        if isinstance(value, Tensor) and isinstance(own, Tensor) and value.shape != own.shape:
            if value.numel() == own.numel():
                entries[name] = value.reshape(own.shape)
    return entries


def index_from_permutation_matrix(matrix: Tensor) -> Tensor:
    """The index vector ``p`` with ``matrix[i, p[i]] = 1`` of a permutation matrix (trailing 1-dims allowed),
    so that ``x[:, p]`` equals multiplying the channels by ``matrix``.

    Example:
        >>> index_from_permutation_matrix(torch.eye(3)[[2, 0, 1]]).tolist()
        [2, 0, 1]
    """
    square = matrix.reshape(matrix.shape[0], matrix.shape[0])
    return square.argmax(dim=1)


def matrix_or_index(value: Tensor, own: Tensor) -> Tensor:
    """``value`` converted to the kind of ``own``: a permutation index vector or a (kernel-shaped) matrix.

    Example:
        >>> matrix_or_index(torch.tensor([1, 0]), torch.zeros(2, 2, 1, 1)).flatten().tolist()
        [0.0, 1.0, 1.0, 0.0]
    """
    if own.dim() == 1 and value.dim() > 1:
        return index_from_permutation_matrix(value).to(own.dtype)
    if own.dim() > 1 and value.dim() == 1:
        return torch.eye(len(value), dtype=own.dtype)[value.long()].reshape(own.shape)
    return value
