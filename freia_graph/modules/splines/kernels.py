"""FrEIA's per-bin spline functions, for ``BinnedSpline`` subclasses (FrEIA's ``linear_spline`` and
``rational_quadratic_spline`` of ``splines.linear`` and ``splines.rational_quadratic``).

Each takes the point and the corners of the bin it lies in (and the knot derivatives), elementwise, and
returns the mapped point and the log-derivative of the forward map there, in both directions.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import rq_inverse_position, rq_log_derivative

__all__ = ["linear_spline", "rational_quadratic_spline"]


def linear_spline(
    x: Tensor, left: Tensor, right: Tensor, bottom: Tensor, top: Tensor, rev: bool = False
) -> tuple[Tensor, Tensor]:
    """The straight line from ``(left, bottom)`` to ``(right, top)``, or its inverse.

    Returns:
        ``(output, log_derivative)`` with the log-derivative of the forward map.

    Example:
        >>> out, log_derivative = linear_spline(torch.tensor([0.5]), *torch.tensor([[0.0], [1.0], [0.0], [2.0]]))
        >>> out.item(), round(log_derivative.exp().item(), 6)
        (1.0, 2.0)
    """
    slope = (top - bottom) / (right - left)
    out = left + (x - bottom) / slope if rev else bottom + (x - left) * slope
    return out, torch.log(top - bottom) - torch.log(right - left)


def rational_quadratic_spline(
    x: Tensor,
    left: Tensor,
    right: Tensor,
    bottom: Tensor,
    top: Tensor,
    deltas_left: Tensor,
    deltas_right: Tensor,
    rev: bool = False,
) -> tuple[Tensor, Tensor]:
    """The monotone rational-quadratic piece (Durkan et al. 2019) through the bin's corners, or its inverse.

    Args:
        x: the point (``y`` with ``rev``).
        left, right, bottom, top: the bin's corners.
        deltas_left, deltas_right: the spline's (positive) derivatives at the two knots.
        rev: compute the inverse.

    Returns:
        ``(output, log_derivative)`` with the log-derivative of the forward map.

    Example:
        >>> corners = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
        >>> out, log_derivative = rational_quadratic_spline(torch.tensor([0.25]), *corners, *torch.ones(2, 1))
        >>> out.item(), log_derivative.item()
        (0.25, 0.0)
    """
    width, height = right - left, top - bottom
    slope = height / width
    curvature = deltas_left + deltas_right - 2 * slope
    if rev:
        xi = rq_inverse_position(x - bottom, height, slope, deltas_left, curvature)
        out = left + xi * width
    else:
        xi = (x - left) / width
        rise = slope * xi.square() + deltas_left * xi * (1 - xi)
        out = bottom + height * rise / (slope + curvature * xi * (1 - xi))
    return out, rq_log_derivative(xi, slope, deltas_left, deltas_right, curvature)
