"""Argument checks shared by the subnet factories, the condition embeddings and the presets."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

__all__ = ["ACTIVATIONS", "check_activation", "check_choice", "check_int", "check_real"]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def check_int(value: object, name: str, owner: str, minimum: int = 1) -> int:
    """``value`` if it is an int ``>= minimum`` (bools are refused).

    Example:
        >>> check_int(3, "depth", "MLPSubnet")
        3
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be an int >= {minimum}, got {value}")
    return value


def check_real(value: object, name: str, owner: str, low: float, high: float, high_included: bool = True) -> float:
    """``value`` as a float if it is a finite number in ``[low, high]`` (or ``[low, high)``).

    Example:
        >>> check_real(0.5, "dropout", "MLPSubnet", 0.0, 1.0, high_included=False)
        0.5
    """
    interval = f"[{low:g}, {high:g}{']' if high_included else ')'}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a number in {interval}, got {type(value).__name__} {value!r}")
    inside = low <= value <= high if high_included else low <= value < high
    if not math.isfinite(value) or not inside:
        raise ValueError(f"{owner}: {name} must be a number in {interval}, got {value!r}")
    return float(value)


def _normalized(text: str) -> str:
    return text.lower().replace("_", "").replace("-", "").replace(" ", "")


def check_choice(value: object, choices: Mapping[str, Any], name: str, owner: str) -> Any:
    """The entry of ``choices`` named by ``value``, ignoring case, ``_``, ``-`` and spaces.

    Example:
        >>> check_choice("Leaky-ReLU", {"leaky_relu": 1}, "activation", "MLPSubnet")
        1
    """
    lookup = {_normalized(key): entry for key, entry in choices.items()}
    if isinstance(value, str) and _normalized(value) in lookup:
        return lookup[_normalized(value)]
    raise ValueError(f"{owner}: {name} must be one of {sorted(choices)}, got {value!r}")


def check_activation(activation: object, owner: str) -> Callable[[], nn.Module]:
    """A zero-argument factory of activation modules, from a name in ``ACTIVATIONS`` or a callable.

    A callable (an ``nn.Module`` class such as ``nn.ReLU`` or e.g. ``lambda: nn.LeakyReLU(0.2)``) is
    called once here, so a wrong one fails when the factory is made rather than deep inside a coupling.

    Example:
        >>> check_activation("tanh", "MLPSubnet")()
        Tanh()
    """
    if isinstance(activation, str):
        return check_choice(activation, ACTIVATIONS, "activation", owner)
    if not callable(activation):
        raise TypeError(
            f"{owner}: activation must be one of {sorted(ACTIVATIONS)} or a callable returning an nn.Module "
            f"(e.g. nn.ReLU), got {activation!r}"
        )
    try:
        sample = activation()
    except TypeError as error:
        raise TypeError(f"{owner}: activation {activation!r} must be callable without arguments: {error}") from error
    if not isinstance(sample, nn.Module):
        raise TypeError(f"{owner}: activation() must return an nn.Module, got {type(sample).__name__}")
    return activation
