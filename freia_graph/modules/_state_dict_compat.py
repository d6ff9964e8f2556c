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


def register_layout_conversion(
    module: nn.Module,
    load: Callable[[Entries], Entries] | None = None,
    save: Callable[[Entries], Entries] | None = None,
) -> None:
    """Convert ``module``'s own state-dict entries when loading and/or saving.

    Args:
        module: the block.
        load: maps the entries found in a state dict (any layout) to the block's current layout.
        save: maps the block's entries to the layout it saves (e.g. adds FrEIA's derived entries).

    Example:
        >>> block = nn.Linear(2, 2)
        >>> register_layout_conversion(block, load=lambda e: {("weight" if k == "W" else k): v for k, v in e.items()})
        >>> block.load_state_dict({"W": torch.eye(2), "bias": torch.zeros(2)})
        <All keys matched successfully>
    """
    if load is not None:
        def load_hook(target: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
            own = _own_entries(state_dict, prefix)
            _replace_own_entries(state_dict, prefix, own, load(dict(own)))

        module.register_load_state_dict_pre_hook(load_hook)
    if save is not None:
        def save_hook(target: nn.Module, state_dict: dict, prefix: str, local_metadata: object) -> None:
            own = _own_entries(state_dict, prefix)
            _replace_own_entries(state_dict, prefix, own, save(dict(own)))

        module.register_state_dict_post_hook(save_hook)


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
