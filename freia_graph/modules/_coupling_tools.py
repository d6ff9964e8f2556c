"""Shared helpers of the coupling blocks: argument checks, soft clamping, subnet construction."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .base import Shape

__all__ = [
    "CLAMP_ACTIVATIONS",
    "DEFAULT_SUBNET_INIT_SCALE",
    "BackpropFn",
    "FastBackward",
    "StageClosedForm",
    "StageGradientsFn",
    "append_condition",
    "build_subnet",
    "check_condition_dims",
    "check_number",
    "coupling_stage_backward",
    "fast_backward_fits",
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


def cast(value: Tensor, dtype: torch.dtype) -> Tensor:
    """``value.to(dtype)``, without the call where ``value`` has that dtype already (a no-op ``.to`` costs as
    much as an elementwise op on a small tensor, and the couplings convert per stage for autocast's sake).

    Example:
        >>> x = torch.zeros(2)
        >>> cast(x, torch.float32) is x, cast(x, torch.float64).dtype
        (True, torch.float64)
    """
    return value if value.dtype == dtype else value.to(dtype)


def scale_and_shift(x: Tensor, log_scale: Tensor, shift: Tensor, rev: bool) -> Tensor:
    """``x * exp(log_scale) + shift``, or with ``rev`` its inverse ``(x - shift) * exp(log_scale)``.

    In reverse the caller passes the already negated log-scale. The scale is computed in ``x``'s precision:
    under ``torch.autocast`` a subnet returns half-precision coefficients, and ``exp`` of a half-precision
    log-scale, rounded, would make the reverse undo the forward only to half precision.

    Example:
        >>> x = torch.tensor([1.0, 2.0])
        >>> scale_and_shift(x, torch.zeros(2), torch.ones(2), rev=False).tolist()
        [2.0, 3.0]
    """
    scale = torch.exp(cast(log_scale, x.dtype))
    if rev:
        return (x - shift) * scale
    return torch.addcmul(shift, x, scale)


def _last_layer_with_parameters(module: nn.Module) -> nn.Module | None:
    # the last module in registration order (depth first) owning parameters: searched from the end, the
    # last child's subtree first, so that a Sequential's output layer is found at once
    for child in reversed(module._modules.values()):
        found = None if child is None else _last_layer_with_parameters(child)
        if found is not None:
            return found
    return module if any(parameter is not None for parameter in module._parameters.values()) else None


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
        scale = _scalar(init_scale)
        for parameter in last._parameters.values():
            if parameter is not None:
                parameter.detach().mul_(scale)  # in place, outside autograd
    return subnet


@functools.lru_cache(maxsize=8)
def _scalar(value: float) -> Tensor:
    """``value`` as a 0-dim float64 CPU tensor, for multiplying tensors of any dtype and device in place:
    the same result as the Python number, five times faster per call (never written to)."""
    return torch.tensor(value, dtype=torch.float64, device="cpu")


def fast_backward_fits(module: nn.Module, methods: Iterable[str]) -> bool:
    """Whether ``module`` still computes what its memory-saving fast path assumes.

    The fast path re-derives a block's maths from its private helpers, so it is only safe where those
    helpers, ``forward`` and the hook itself are exactly the ones of the nearest class in the MRO that sets
    ``_memory_saving_vetted = True`` in its own body (a subclass that overrides any of them, or patches
    ``forward`` on the instance, or has forward hooks, gets the generic path).

    Args:
        module: the block.
        methods: the names of the methods the fast path relies on.

    Returns:
        True if the fast path computes exactly what ``forward`` does.

    Example:
        >>> class Vetted(nn.Identity):
        ...     _memory_saving_vetted = True
        >>> class Overriding(Vetted):
        ...     def forward(self, x):
        ...         return 2 * x
        >>> fast_backward_fits(Vetted(), ["forward"]), fast_backward_fits(Overriding(), ["forward"])
        (True, False)
    """
    cls = type(module)
    vetted = next((k for k in cls.__mro__ if k.__dict__.get("_memory_saving_vetted")), None)
    if vetted is None or any(getattr(cls, name, None) is not getattr(vetted, name, None) for name in methods):
        return False
    hooked = module._forward_hooks or module._forward_pre_hooks
    global_hooks = nn.modules.module
    hooked = hooked or getattr(global_hooks, "_global_forward_hooks", None)
    hooked = hooked or getattr(global_hooks, "_global_forward_pre_hooks", None)
    return not hooked and "forward" not in vars(module)


def _leaf(value: Tensor) -> Tensor:
    return value.detach().requires_grad_(value.is_floating_point() or value.is_complex())


class BackpropFn(Protocol):
    """What a ``memory_saving_backward`` hook gets to hand over gradients
    (``freia_graph.framework.memory_saving.Backprop``)."""

    def __call__(self, roots: Sequence[Tensor], root_grads: Sequence[Tensor], leaves: Sequence[Tensor | None],
                 module: nn.Module) -> list[Tensor | None]:
        """Backpropagate ``root_grads`` from ``roots``: return the gradients of ``leaves`` (None where there is
        none) and take care of those of ``module``'s trainable parameters."""
        ...

    def accumulate(self, parameter: Tensor, grad: Tensor | None) -> None:
        """Take a parameter's gradient computed in closed form (nothing if ``grad`` is None or the parameter
        is frozen)."""
        ...


#: what a ``memory_saving_backward`` hook returns when it accepts: ``(inputs, input_grads, condition_grads)``
FastBackward = tuple[list[Tensor], list[Tensor | None], list[Tensor | None]]

StageGradients = tuple[Tensor, Tensor | None, Tensor | None, list[Tensor | None]]


#: ``(x, grad_x, roots, root_grads)``: a stage's input rebuilt, its gradient, and the roots to backpropagate
#: into the subnet with their gradients
StageClosedForm = tuple[Tensor, Tensor | None, list[Tensor], list[Tensor]]

#: ``(y, coefficients, rev, grad_y, grad_log_det) -> StageClosedForm`` or None: a stage undone and
#: differentiated in closed form (see ``_AffineCoupling._couple_gradients``)
StageGradientsFn = Callable[[Tensor, Any, bool, Tensor | None, Tensor | None], StageClosedForm | None]


def coupling_stage_backward(
    coefficients: Callable[[Tensor | None, list[Tensor]], Any],
    apply: Callable[[Tensor, Any, bool, bool], tuple[Tensor, Tensor | None]],
    invert: Callable[[Any], Any],
    y: Tensor,
    u: Tensor | None,
    c: Sequence[Tensor],
    rev: bool,
    grad_y: Tensor | None,
    grad_log_det: Tensor | None,
    backprop: BackpropFn,
    module: nn.Module,
    gradients: StageGradientsFn | None = None,
) -> StageGradients:
    """Backward through one coupling stage ``y = apply(x, coefficients(u, c))`` given only ``y``.

    The subnet runs once, with grad, on the conditioning values ``u`` (unchanged by the stage) and the
    conditions. Then either ``gradients`` rebuilds ``x`` and gives its gradient and the coefficients' in
    closed form, or (where it is None or returns None) the inverted coefficients rebuild ``x`` (no grad) and
    ``y`` is recomputed from a leaf ``x`` for autograd. One subnet evaluation serves both the inversion and
    the gradients that memory-saving backprop needs.

    Args:
        coefficients: ``(u, c) -> coefficients`` of direction ``rev``, evaluating the subnet.
        apply: ``(x, coefficients, rev, jac) -> (y, log_det or None)``, the block's own maths.
        invert: coefficients of direction ``rev`` -> those of the inverse direction.
        y: the stage's output; ``u``: its conditioning half (None if only ``c`` conditions it).
        c: the condition tensors; ``rev``: the direction the stage ran in.
        grad_y: the gradient of the loss w.r.t. ``y`` (None: zero).
        grad_log_det: the gradient w.r.t. the per-sample log-det (None: not wanted).
        backprop: backpropagates the recomputed stage (returns the leaves' gradients, handles the
            parameters of ``module``).
        module: the block whose parameters the stage uses.
        gradients: the stage in closed form: ``x`` rebuilt, its gradient, and the roots (the coefficients,
            the log-det) with their gradients for backpropagating into the subnet; None where it does not apply.

    Returns:
        ``(x, grad_x, grad_u, grad_c)``, ``x`` detached, None for no gradient.

    Example:
        >>> shift = torch.nn.Linear(1, 1, bias=False)
        >>> _ = torch.nn.init.constant_(shift.weight, 2.0)
        >>> add = lambda x, t, rev, jac: (x - t if rev else x + t, None)
        >>> def backprop(roots, root_grads, leaves, module):
        ...     return list(torch.autograd.grad(roots, leaves, root_grads))
        >>> x, grad_x, grad_u, _ = coupling_stage_backward(
        ...     lambda u, c: shift(u), add, lambda t: t, torch.tensor([[5.0]]), torch.tensor([[1.0]]), [], False,
        ...     torch.ones(1, 1), None, backprop, shift)
        >>> x.tolist(), grad_x.tolist(), grad_u.tolist()
        ([[3.0]], [[1.0]], [[2.0]])
    """
    u_leaf = None if u is None else _leaf(u)
    c_leaves = [_leaf(condition) for condition in c]
    with torch.enable_grad():
        stage_coefficients = coefficients(u_leaf, c_leaves)
        closed_form = None if gradients is None else gradients(y, stage_coefficients, rev, grad_y, grad_log_det)
        if closed_form is not None:
            x, grad_x, roots, root_grads = closed_form
            grads = backprop(roots, root_grads, [u_leaf, *c_leaves], module)
            return x, grad_x, grads[0], grads[1:]
        with torch.no_grad():
            x, _ = apply(y, invert(stage_coefficients), not rev, False)
        x_leaf = _leaf(x)
        y_again, log_det = apply(x_leaf, stage_coefficients, rev, grad_log_det is not None)
        roots, root_grads = [], []
        if grad_y is not None:
            roots.append(y_again)
            root_grads.append(grad_y)
        if grad_log_det is not None and isinstance(log_det, Tensor) and log_det.requires_grad:
            roots.append(log_det.expand_as(grad_log_det))
            root_grads.append(grad_log_det)
    grads = backprop(roots, root_grads, [x_leaf, u_leaf, *c_leaves], module)
    return x, grads[0], grads[1], grads[2:]
