"""FrEIA's coupling base class, for blocks that FrEIA users write by subclassing it.

A subclass of :class:`_BaseCouplingBlock` defines ``_coupling1`` and ``_coupling2``; the base splits the
input into two halves along the channels, appends the conditions to the half a subnet reads, runs the
two couplings in the right order for either direction and adds their log-dets. The name, the
constructor and the attributes follow ``FrEIA.modules.coupling_layers._BaseCouplingBlock``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from ._coupling_tools import (
    CLAMP_ACTIVATIONS,
    append_condition,
    check_condition_dims,
    check_number,
    resolve_split_len,
    single_input,
)
from .base import InvertibleModule, Shape

__all__ = ["_BaseCouplingBlock"]


class _ScaledActivation:
    """``factor * function(u)``: a named clamp activation as one picklable callable."""

    def __init__(self, function: Callable[[Tensor], Tensor], factor: float):
        self.function, self.factor = function, factor

    def __call__(self, u: Tensor) -> Tensor:
        return self.factor * self.function(u)


def _clamp_function(clamp_activation: str | Callable[[Tensor], Tensor], block: str) -> Callable[[Tensor], Tensor]:
    if isinstance(clamp_activation, str):
        if clamp_activation not in CLAMP_ACTIVATIONS:
            raise ValueError(
                f"{block}: clamp_activation must be one of {sorted(CLAMP_ACTIVATIONS)} or a callable, "
                f"got {clamp_activation!r}"
            )
        return _ScaledActivation(*CLAMP_ACTIVATIONS[clamp_activation])
    if not callable(clamp_activation):
        raise TypeError(f"{block}: clamp_activation must be a string or a callable, got {clamp_activation!r}")
    return clamp_activation


class _BaseCouplingBlock(InvertibleModule):
    r"""Base of two-sided coupling blocks written the FrEIA way: subclasses define the two couplings.

    The input ``x`` (one tensor, channels first) is split along the channels into ``x1`` (the first
    ``split_len1`` channels) and ``x2`` (the other ``split_len2``). Forward computes
    ``y1 = coupling1(x1 | x2, c)`` and then ``y2 = coupling2(x2 | y1, c)``; reverse undoes them in the
    opposite order. The conditions are concatenated to the half a coupling reads, along the channels.

    A subclass implements ``_coupling1(x1, u2, rev=False)`` and ``_coupling2(x2, u1, rev=False)``: the
    first argument is the half to transform, the second the other half with the conditions appended
    (``split_len2 + condition_length`` channels for ``_coupling1``, ``split_len1 + condition_length`` for
    ``_coupling2``). Each returns ``(transformed_half, log_det)``, the log-det per sample (or a number)
    of the direction it ran in, so in reverse the log-det of the inverse. The subclass builds its subnets
    in ``__init__`` after calling ``super().__init__``, reading these attributes:

    * ``channels`` (the input's first dimension), ``ndims`` (the input's rank without the batch),
    * ``split_len1``, ``split_len2`` (the halves' channel counts),
    * ``clamp`` (as given) and ``f_clamp`` (the clamp activation, mapping ±∞ to ±1),
    * ``conditional`` (conditions were declared), ``condition_length`` (their channels in total).

    Args:
        dims_in: one input shape, e.g. ``[(8,)]`` or ``[(4, 16, 16)]``.
        dims_c: condition shapes; every dimension but the first must match the input's.
        clamp: the largest absolute log-scale for subclasses that soft-clamp (0 allowed).
        clamp_activation: ``"ATAN"`` (``0.636·atan``), ``"TANH"``, ``"SIGMOID"`` (``2·(σ − ½)``) or a
            callable.
        split_len: the first half's channels: a fraction (float) or a count (int); each half needs at
            least one channel.

    Example:
        >>> import torch
        >>> class Additive(_BaseCouplingBlock):
        ...     def __init__(self, dims_in, dims_c=None, subnet_constructor=None):
        ...         super().__init__(dims_in, dims_c, clamp=0.0)
        ...         self.f = subnet_constructor(self.split_len2 + self.condition_length, self.split_len1)
        ...         self.g = subnet_constructor(self.split_len1 + self.condition_length, self.split_len2)
        ...     def _coupling1(self, x1, u2, rev=False):
        ...         return (x1 - self.f(u2) if rev else x1 + self.f(u2)), 0.0
        ...     def _coupling2(self, x2, u1, rev=False):
        ...         return (x2 - self.g(u1) if rev else x2 + self.g(u1)), 0.0
        >>> block = Additive([(4,)], subnet_constructor=torch.nn.Linear)
        >>> x = torch.randn(3, 4)
        >>> (z,), log_det = block([x])
        >>> (x_rec,), _ = block([z], rev=True)
        >>> torch.allclose(x_rec, x, atol=1e-6), block.split_len1, block.conditional
        (True, 2, False)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        clamp: float = 2.0,
        clamp_activation: str | Callable[[Tensor], Tensor] = "ATAN",
        split_len: float | int = 0.5,
    ):
        super().__init__(dims_in, dims_c)
        block = type(self).__name__
        shape = single_input(self.dims_in, block)
        check_condition_dims(shape, self.dims_c, block)
        self.channels: int = shape[0]
        self.ndims: int = len(shape)
        self.split_len1, self.split_len2 = resolve_split_len(split_len, self.channels, block)
        self.clamp = check_number(clamp, "clamp", block, allow_zero=True)
        self.f_clamp = _clamp_function(clamp_activation, block)
        self.conditional: bool = bool(self.dims_c)
        self.condition_length: int = sum(c[0] for c in self.dims_c)

    def _with_conditions(self, u: Tensor, c: Sequence[Tensor] | None) -> Tensor:
        return append_condition(u, c, type(self).__name__) if self.conditional else u

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor | float]:
        """Run both couplings, forward or (``rev=True``) reverse; see the class docstring."""
        x1, x2 = torch.split(x_or_z[0], [self.split_len1, self.split_len2], dim=1)
        if not rev:
            y1, log_det1 = self._coupling1(x1, self._with_conditions(x2, c))
            y2, log_det2 = self._coupling2(x2, self._with_conditions(y1, c))
        else:
            y2, log_det2 = self._coupling2(x2, self._with_conditions(x1, c), rev=True)
            y1, log_det1 = self._coupling1(x1, self._with_conditions(y2, c), rev=True)
        return (torch.cat((y1, y2), 1),), log_det1 + log_det2

    def _coupling1(self, x1: Tensor, u2: Tensor, rev: bool = False) -> tuple[Tensor, Tensor | float]:
        """Transform the first half ``x1`` given ``u2`` (second half and conditions); subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define _coupling1(x1, u2, rev=False)")

    def _coupling2(self, x2: Tensor, u1: Tensor, rev: bool = False) -> tuple[Tensor, Tensor | float]:
        """Transform the second half ``x2`` given ``u1`` (first half and conditions); subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define _coupling2(x2, u1, rev=False)")

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The output shape equals the input shape."""
        single_input(list(input_dims), type(self).__name__)
        return list(input_dims)
