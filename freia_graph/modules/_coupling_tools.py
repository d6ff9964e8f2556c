"""Shared helpers of the coupling blocks: argument checks, soft clamping, subnet construction."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .base import Shape

__all__ = [
    "CLAMP_ACTIVATIONS",
    "DEFAULT_SUBNET_INIT_SCALE",
    "append_condition",
    "build_subnet",
    "check_condition_dims",
    "check_number",
    "resolve_clamp",
    "resolve_split_len",
    "scale_and_shift",
    "single_input",
]

DEFAULT_SUBNET_INIT_SCALE = 0.1


def _centred_sigmoid(u: Tensor) -> Tensor:
    return torch.sigmoid(u) - 0.5


# name -> (bounded function g, factor k) with clamp * activation(u) == clamp * k * g(u).
# 0.636 (not exactly 2/pi) keeps outputs identical to FrEIA for the same weights.
CLAMP_ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "ATAN": (torch.atan, 0.636),
    "TANH": (torch.tanh, 1.0),
    "SIGMOID": (_centred_sigmoid, 2.0),
}


def check_number(value: float, name: str, block: str, allow_zero: bool = False) -> float:
    """``value`` as a float, if it is a finite number > 0 (or >= 0 with ``allow_zero``).

    Raises:
        TypeError: for anything but an int or a float.
        ValueError: for a number out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{block}: {name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = "a finite number >= 0" if allow_zero else "a positive finite number"
        raise ValueError(f"{block}: {name} must be {expected}, got {value!r}")
    return float(value)


def resolve_clamp(
    clamp: float, clamp_activation: str | Callable[[Tensor], Tensor], block: str
) -> tuple[Callable[[Tensor], Tensor], float]:
    """Split soft clamping ``clamp * activation(u)`` into an elementwise function and one scalar factor.

    Folding every constant into one factor lets a block apply the clamp (and, in reverse, its sign)
    with a single multiplication.

    Args:
        clamp: the largest absolute log-scale.
        clamp_activation: ``"ATAN"``, ``"TANH"``, ``"SIGMOID"`` or a callable mapping tensors
            elementwise into [-1, 1].

    Returns:
        ``(function, factor)`` with ``clamp * activation(u) == factor * function(u)``.

    Example:
        >>> function, factor = resolve_clamp(2.0, "TANH", "GLOWCouplingBlock")
        >>> factor * function(torch.tensor([100.0])).item()
        2.0
    """
    clamp = check_number(clamp, "clamp", block)
    if isinstance(clamp_activation, str):
        if clamp_activation not in CLAMP_ACTIVATIONS:
            raise ValueError(
                f"{block}: clamp_activation must be one of {sorted(CLAMP_ACTIVATIONS)} or a callable, "
                f"got {clamp_activation!r}"
            )
        function, factor = CLAMP_ACTIVATIONS[clamp_activation]
        return function, clamp * factor
    if not callable(clamp_activation):
        raise TypeError(
            f"{block}: clamp_activation must be one of {sorted(CLAMP_ACTIVATIONS)} or a callable, "
            f"got {type(clamp_activation).__name__}"
        )
    return clamp_activation, clamp


def resolve_split_len(split_len: float | int, channels: int, block: str) -> tuple[int, int]:
    """Channel counts ``(len1, len2)`` of the two halves, each at least one.

    A float is a fraction of the channels (rounded as FrEIA does), an int a channel count.

    Example:
        >>> resolve_split_len(0.5, 7, "GLOWCouplingBlock"), resolve_split_len(2, 7, "GLOWCouplingBlock")
        ((4, 3), (2, 5))
    """
    if isinstance(split_len, bool) or not isinstance(split_len, (int, float)):
        raise TypeError(f"{block}: split_len must be a float fraction or an int, got {split_len!r}")
    if channels < 2:
        raise ValueError(
            f"{block} splits its input's channels into two halves of at least one channel each, so it needs "
            f"at least 2 channels, but the input has {channels}; give it more channels (e.g. reshape, or "
            "downsample images with IRevNetDownsampling or HaarDownsampling first)"
        )
    length = round(channels * split_len) if isinstance(split_len, float) else split_len
    if not 1 <= length <= channels - 1:
        raise ValueError(
            f"{block}: split_len={split_len!r} gives a first half of {length} of {channels} channels; "
            f"both halves need at least one channel (an int in [1, {channels - 1}] or a fraction in (0, 1))"
        )
    return length, channels - length


def single_input(dims_in: list[Shape], block: str) -> Shape:
    """The one input shape of a block that transforms exactly one tensor."""
    if len(dims_in) != 1:
        raise ValueError(f"{block} takes exactly one input, but dims_in has {len(dims_in)}: {dims_in}")
    return dims_in[0]


def check_condition_dims(dims_in: Shape, dims_c: list[Shape], block: str) -> None:
    """Conditions are concatenated along channels, so their other dims must match the input's."""
    for index, shape in enumerate(dims_c):
        if shape[1:] != dims_in[1:]:
            raise ValueError(
                f"{block}: condition {index} has shape {shape} and the input {dims_in}; all dims but the "
                f"first (channels) must agree, {shape[1:]} != {dims_in[1:]}"
            )


def append_condition(u: Tensor, c: Sequence[Tensor] | None, block: str) -> Tensor:
    """The subnet input: ``u`` with the condition tensors concatenated along the channels."""
    if not c:
        raise ValueError(f"{block} is conditional (dims_c was given), but was called without conditions c")
    return torch.cat((u, *c), 1)


def scale_and_shift(x: Tensor, log_scale: Tensor, shift: Tensor, rev: bool) -> Tensor:
    """``x * exp(log_scale) + shift``, or with ``rev`` its inverse ``(x - shift) * exp(log_scale)``.

    In reverse the caller passes the already negated log-scale.

    Example:
        >>> x = torch.tensor([1.0, 2.0])
        >>> scale_and_shift(x, torch.zeros(2), torch.ones(2), rev=False).tolist()
        [2.0, 3.0]
    """
    if rev:
        return (x - shift) * torch.exp(log_scale)
    return torch.addcmul(shift, x, torch.exp(log_scale))


def _last_layer_with_parameters(subnet: nn.Module) -> nn.Module | None:
    # searched from the end: the first module found owning parameters is the last one registered
    for module in reversed(list(subnet.modules())):
        if any(parameter is not None for parameter in module._parameters.values()):
            return module
    return None


def build_subnet(
    subnet_constructor: Callable[..., nn.Module] | None,
    c_in: int,
    c_out: int,
    init_scale: float,
    block: str,
    subnet_kwargs: dict | None = None,
) -> nn.Module:
    """Build a subnet ``subnet_constructor(c_in, c_out)`` and scale its last layer by ``init_scale``.

    The last layer is the last module, in registration order, that owns parameters; for an
    ``nn.Sequential`` that is the output layer. ``init_scale=1`` leaves the subnet untouched.

    Example:
        >>> net = build_subnet(lambda i, o: nn.Linear(i, o), 3, 2, 0.0, "Block")
        >>> torch.count_nonzero(net.weight).item()
        0
    """
    if not callable(subnet_constructor):
        raise TypeError(
            f"{block}: subnet_constructor must be a callable f(c_in, c_out) returning an nn.Module, "
            f"got {subnet_constructor!r}"
        )
    check_number(init_scale, "subnet_init_scale", block, allow_zero=True)
    subnet = subnet_constructor(c_in, c_out, **(subnet_kwargs or {}))
    if not isinstance(subnet, nn.Module):
        raise TypeError(
            f"{block}: subnet_constructor({c_in}, {c_out}) must return an nn.Module, "
            f"got {type(subnet).__name__}"
        )
    last = _last_layer_with_parameters(subnet)
    if last is not None and init_scale != 1:
        with torch.no_grad():
            for parameter in last.parameters(recurse=False):
                parameter.mul_(init_scale)
    return subnet
