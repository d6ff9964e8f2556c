"""Elementwise maps: a learned scaling of every element, and the sigmoid."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import InvertibleModule, Shape
from .permutations import single_input_shape
from .topology import one_input_shape

__all__ = ["LearnedElementwiseScaling", "InvertibleSigmoid"]


def _sum_per_sample(values: Tensor) -> Tensor:
    return values.flatten(1).sum(1)


class LearnedElementwiseScaling(InvertibleModule):
    r"""Scale every element by its own learned positive factor.

    .. math:: z = x \odot \exp(s), \qquad \log|\det J| = \textstyle\sum_i s_i

    with one learned :math:`s_i` per element (not per channel). From FrEIA (Ardizzone et al., 2018).

    Args:
        dims_in: one input shape, without batch.
        dims_c: unused; must be empty.
        init_scale: the initial factor :math:`\exp(s)`, the same for every element; must be positive.

    Differences from FrEIA: the reverse log-det is :math:`-\sum_i s_i` (FrEIA returns
    :math:`+\sum_i s_i` in both directions).

    Example:
        >>> scaling = LearnedElementwiseScaling([(3,)], init_scale=2.0)
        >>> (z,), log_det = scaling([torch.ones(4, 3)])
        >>> z[0].tolist(), round(log_det.item(), 4)
        ([2.0, 2.0, 2.0], 2.0794)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        init_scale: float = 1.0,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)):
            raise TypeError(f"init_scale must be a positive number, got {init_scale!r}")
        if not (init_scale > 0 and math.isfinite(init_scale)):
            raise ValueError(f"init_scale must be a positive, finite number, got {init_scale!r}")
        self.s = nn.Parameter(torch.full((1, *shape), math.log(init_scale)))

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor | None]:
        log_scale = -self.s if rev else self.s
        log_det = log_scale.sum() if jac else None
        return (x_or_z[0] * log_scale.exp(),), log_det

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        return [one_input_shape(input_dims, type(self).__name__)]


class InvertibleSigmoid(InvertibleModule):
    r"""The logistic sigmoid, elementwise; the reverse is the logit.

    .. math::
        z = \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad
        \log|\det J| = \sum_i \log \sigma'(x_i) = \sum_i \big(\log\sigma(x_i) + \log\sigma(-x_i)\big)

    summed over every non-batch element, computed with ``logsigmoid`` so that it stays finite for large
    :math:`|x|`. The reverse computes :math:`x = \log z - \log(1 - z)`; it first clamps :math:`z` to
    the representable range strictly inside (0, 1) (from the dtype's smallest normal number to the
    largest number below 1), so inputs of exactly 0 or 1 give large finite values instead of infinities.
    Near 1 the sigmoid loses precision (it rounds to 1 from :math:`x \approx 17` in float32, 37 in
    float64), so large positive inputs come back only approximately.
    A standard bijection onto (0, 1) in normalizing flows (e.g. Dinh et al., 2017, "Density estimation
    using Real NVP", for the logit pre-processing).

    Args:
        dims_in: one input shape, without batch.
        dims_c: unused; must be empty.

    Differences from FrEIA: ``jac=False`` works, and the log-det sums over all non-batch dimensions
    (FrEIA sums over dimension 1 only, which is wrong for images).

    Example:
        >>> sigmoid = InvertibleSigmoid([(2,)])
        >>> (z,), log_det = sigmoid([torch.zeros(1, 2)])
        >>> z.tolist(), round(log_det.item(), 4)
        ([[0.5, 0.5]], -2.7726)
    """

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]] | None = None):
        super().__init__(dims_in, dims_c)
        single_input_shape(self)

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor | None]:
        if rev:
            return self._logit(x_or_z[0], jac)
        x = x_or_z[0]
        log_det = _sum_per_sample(F.logsigmoid(x) + F.logsigmoid(-x)) if jac else None
        return (torch.sigmoid(x),), log_det

    @staticmethod
    def _logit(z: Tensor, jac: bool) -> tuple[tuple[Tensor], Tensor | None]:
        info = torch.finfo(z.dtype)
        z = z.clamp(info.tiny, 1.0 - info.eps / 2)
        log_z, log_one_minus_z = torch.log(z), torch.log1p(-z)
        log_det = -_sum_per_sample(log_z + log_one_minus_z) if jac else None
        return (log_z - log_one_minus_z,), log_det

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        return [one_input_shape(input_dims, type(self).__name__)]
