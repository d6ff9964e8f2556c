"""Monotone spline flows: rational-quadratic and piecewise-linear couplings, and elementwise splines.

Each spline maps a fixed domain ``[left, right]`` onto ``[bottom, top]`` through ``bins`` monotone pieces
and continues outside it with unit-slope lines (``y = x + bottom - left`` below, ``y = x + top - right``
above), so every real input has a finite, exactly invertible image and the log-det is 0 in the tails.
Bins are found by counting knot comparisons and tails are chosen with ``torch.where``, so the kernels
trace with ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._coupling_tools import (
    DEFAULT_SUBNET_INIT_SCALE,
    append_condition,
    build_subnet,
    check_condition_dims,
    resolve_split_len,
)
from .._linalg import in_float32
from ..base import InvertibleModule, Shape
from ..permutations import single_input_shape

__all__ = ["RationalQuadraticSpline", "LinearSpline", "ElementwiseRationalQuadraticSpline"]

SubnetConstructor = Callable[[int, int], nn.Module]

# Inner knot derivatives never fall below this, so every spline stays strictly increasing.
_MIN_DERIVATIVE = 1e-3
# Shift of the softplus so that a raw value of 0 gives derivative 1 (identity-like start).
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - _MIN_DERIVATIVE))
# FrEIA's shift of the softplus, so that a raw value of 0 gives 1.
_LOG_E_MINUS_1 = math.log(math.e - 1)


@dataclass(frozen=True)
class SplineGrid:
    """The fixed domain of a spline and the smallest allowed bin sizes, as Python floats."""

    bins: int
    min_width: float
    min_height: float
    left: float
    right: float
    bottom: float
    top: float

    def widths(self, raw: Tensor) -> Tensor:
        """Bin widths from unconstrained ``(..., bins)``: at least ``min_width`` each, filling the domain."""
        return bin_sizes(raw, self.right - self.left, self.min_width)

    def heights(self, raw: Tensor) -> Tensor:
        """Bin heights from unconstrained values ``(..., bins)``, like :meth:`widths`."""
        return bin_sizes(raw, self.top - self.bottom, self.min_height)


def bin_sizes(raw: Tensor, total: float, min_size: float) -> Tensor:
    """Positive sizes ``min_size + (total - bins * min_size) * softmax(raw)``, summing to ``total``."""
    return min_size + (total - raw.shape[-1] * min_size) * torch.softmax(raw, dim=-1)


def make_grid(name: str, bins: object, min_bin_sizes: object, default_domain: object) -> SplineGrid:
    """Validate FrEIA-style spline arguments and turn them into a :class:`SplineGrid`."""
    if not isinstance(bins, int) or isinstance(bins, bool):
        raise TypeError(f"{name} bins must be an int, got {bins!r}")
    if bins < 1:
        raise ValueError(f"{name} bins must be at least 1, got {bins}")
    min_width, min_height = float_tuple(name, "min_bin_sizes", min_bin_sizes, 2)
    left, right, bottom, top = float_tuple(name, "default_domain", default_domain, 4)
    if not (right > left and top > bottom):
        raise ValueError(f"{name} default_domain (left, right, bottom, top) must have right > left and "
                         f"top > bottom, got {tuple(default_domain)}")
    if min_width <= 0 or min_height <= 0:
        raise ValueError(f"{name} min_bin_sizes must be positive, got {tuple(min_bin_sizes)}")
    if bins * min_width >= right - left or bins * min_height >= top - bottom:
        raise ValueError(f"{name}: {bins} bins of min_bin_sizes {tuple(min_bin_sizes)} do not fit into "
                         f"default_domain {tuple(default_domain)}; use fewer bins or smaller sizes")
    return SplineGrid(bins, min_width, min_height, left, right, bottom, top)


def float_tuple(name: str, what: str, value: object, length: int) -> tuple[float, ...]:
    """``value`` as a tuple of ``length`` finite floats, or a TypeError/ValueError naming ``what``."""
    try:
        numbers = tuple(float(v) for v in value)
    except TypeError as error:
        raise TypeError(f"{name} {what} must be a tuple of {length} numbers, got {value!r}") from error
    if len(numbers) != length or not all(math.isfinite(v) for v in numbers):
        raise ValueError(f"{name} {what} must be {length} finite numbers, got {value!r}")
    return numbers


def knots(sizes: Tensor, low: float, high: float) -> Tensor:
    """Bin edges ``(..., bins + 1)`` from sizes, with the outer edges exactly ``low`` and ``high``."""
    inner = low + torch.cumsum(sizes[..., :-1], dim=-1)
    edge = sizes.new_ones(*sizes.shape[:-1], 1)
    return torch.cat([edge * low, inner, edge * high], dim=-1)


def gather_bin(values: Tensor, index: Tensor) -> Tensor:
    """``values[..., index]`` for a per-element bin index ``(..., 1)``; ``values`` may lack batch dims."""
    values = values.expand(*index.shape[:-1], values.shape[-1])
    return torch.gather(values, -1, index).squeeze(-1)


@dataclass
class Bin:
    """The bin each element falls into: its lower corner, width, height and index."""

    x_low: Tensor
    y_low: Tensor
    width: Tensor
    height: Tensor
    index: Tensor


def locate_bins(value: Tensor, widths: Tensor, heights: Tensor, grid: SplineGrid, rev: bool) -> Bin:
    """Find each element's bin, by x (forward) or y (reverse); values outside use the nearest end bin."""
    return locate_in_knots(value, knots(widths, grid.left, grid.right), knots(heights, grid.bottom, grid.top), rev)


def locate_in_knots(value: Tensor, x_knots: Tensor, y_knots: Tensor, rev: bool) -> Bin:
    """Like :func:`locate_bins`, given the knots ``(..., bins + 1)`` themselves."""
    search = y_knots if rev else x_knots
    index = (value.unsqueeze(-1) >= search[..., 1:-1]).sum(dim=-1, keepdim=True)
    x_low, y_low = gather_bin(x_knots, index), gather_bin(y_knots, index)
    width = gather_bin(x_knots, index + 1) - x_low
    height = gather_bin(y_knots, index + 1) - y_low
    return Bin(x_low, y_low, width, height, index)


def add_tails(
    value: Tensor, spline_output: Tensor, log_jac: Tensor, grid: SplineGrid, rev: bool
) -> tuple[Tensor, Tensor]:
    """Use the unit-slope tails where ``value`` is outside the domain (x forward, y in reverse)."""
    low, high = (grid.bottom, grid.top) if rev else (grid.left, grid.right)
    below_shift, above_shift = grid.bottom - grid.left, grid.top - grid.right
    if rev:
        below_shift, above_shift = -below_shift, -above_shift
    above_or_spline = torch.where(value > high, value + above_shift, spline_output)
    output = torch.where(value < low, value + below_shift, above_or_spline)
    in_domain = (value >= low) & (value <= high)
    return output, torch.where(in_domain, log_jac, 0.0)


def clamp_to_domain(value: Tensor, grid: SplineGrid, rev: bool) -> Tensor:
    """Clamp into the domain, so the spline formulas never see tail values (no inf/NaN in any branch)."""
    return value.clamp(grid.bottom, grid.top) if rev else value.clamp(grid.left, grid.right)


@in_float32
def rational_quadratic_spline(
    value: Tensor, raw: Tensor, grid: SplineGrid, rev: bool
) -> tuple[Tensor, Tensor]:
    """Monotone rational-quadratic spline (Durkan et al. 2019) with unit-slope tails, applied elementwise.

    Args:
        value: x (forward) or y (reverse), any shape ``S``.
        raw: unconstrained parameters ``(*S, 3 * bins - 1)`` (leading batch dims may be missing): bin
            widths, bin heights, derivatives at the inner knots.
        grid: the domain and minimal bin sizes.
        rev: compute the inverse.

    Returns:
        The transformed tensor and the elementwise log-derivative of the map that was applied.
    """
    bins = grid.bins
    widths, heights = grid.widths(raw[..., :bins]), grid.heights(raw[..., bins:2 * bins])
    derivatives = knot_derivatives(raw[..., 2 * bins:])
    clamped = clamp_to_domain(value, grid, rev)
    located = locate_bins(clamped, widths, heights, grid, rev)
    spline, log_jac = rq_piece(clamped, located, derivatives, rev)
    output, log_jac = add_tails(value, spline, log_jac, grid, rev)
    return output, -log_jac if rev else log_jac


def rq_piece(clamped: Tensor, located: Bin, derivatives: Tensor, rev: bool) -> tuple[Tensor, Tensor]:
    """The rational-quadratic piece of each element's bin at ``clamped`` (x, or y in reverse), and its
    log-derivative (of the forward map); ``derivatives`` are those at all knots, ``(..., bins + 1)``."""
    d_low, d_high = gather_bin(derivatives, located.index), gather_bin(derivatives, located.index + 1)
    slope = located.height / located.width
    # Durkan et al.'s eqs. 4-8 in the bin's relative position xi in [0, 1].
    curvature = d_low + d_high - 2 * slope
    if rev:
        xi = rq_inverse_position(clamped - located.y_low, located.height, slope, d_low, curvature)
        spline = located.x_low + xi * located.width
    else:
        xi = (clamped - located.x_low) / located.width
        rise = slope * xi.square() + d_low * xi * (1 - xi)
        spline = located.y_low + located.height * rise / (slope + curvature * xi * (1 - xi))
    return spline, rq_log_derivative(xi, slope, d_low, d_high, curvature)


def knot_derivatives(raw: Tensor) -> Tensor:
    """Derivatives at all ``bins + 1`` knots: 1 at both ends (matching the tails), softplus inside."""
    inner = _MIN_DERIVATIVE + F.softplus(raw + _DERIVATIVE_SHIFT)
    boundary = inner.new_ones(*inner.shape[:-1], 1)
    return torch.cat([boundary, inner, boundary], dim=-1)


def rq_inverse_position(
    offset: Tensor, height: Tensor, slope: Tensor, d_low: Tensor, curvature: Tensor
) -> Tensor:
    """Relative position xi of the preimage of ``y_low + offset``: the stable root of the bin's quadratic."""
    a = height * (slope - d_low) + offset * curvature
    b = height * d_low - offset * curvature
    c = -slope * offset
    discriminant = (b.square() - 4 * a * c).clamp_min(0.0)
    return 2 * c / (-b - discriminant.sqrt())


def rq_log_derivative(xi: Tensor, slope: Tensor, d_low: Tensor, d_high: Tensor, curvature: Tensor) -> Tensor:
    """Log of the rational-quadratic piece's derivative at relative position xi."""
    xi_term = xi * (1 - xi)
    numerator = d_high * xi.square() + 2 * slope * xi_term + d_low * (1 - xi).square()
    return 2 * slope.log() + numerator.log() - 2 * (slope + curvature * xi_term).log()


@in_float32
def linear_spline(value: Tensor, raw: Tensor, grid: SplineGrid, rev: bool) -> tuple[Tensor, Tensor]:
    """Monotone piecewise-linear spline (Müller et al. 2019) with unit-slope tails, applied elementwise.

    ``raw`` holds ``2 * bins`` unconstrained values per element: bin widths, then bin heights. Returns the
    transformed tensor and the elementwise log-derivative of the map that was applied.
    """
    widths, heights = grid.widths(raw[..., :grid.bins]), grid.heights(raw[..., grid.bins:])
    clamped = clamp_to_domain(value, grid, rev)
    spline, log_jac = linear_piece(clamped, locate_bins(clamped, widths, heights, grid, rev), None, rev)
    output, log_jac = add_tails(value, spline, log_jac, grid, rev)
    return output, -log_jac if rev else log_jac


def linear_piece(clamped: Tensor, located: Bin, derivatives: None, rev: bool) -> tuple[Tensor, Tensor]:
    """The linear piece of each element's bin at ``clamped``, and its log-derivative (``derivatives``: unused)."""
    if rev:
        spline = located.x_low + (clamped - located.y_low) * located.width / located.height
    else:
        spline = located.y_low + (clamped - located.x_low) * located.height / located.width
    return spline, located.height.log() - located.width.log()


@dataclass(frozen=True)
class FreiaBinning:
    """FrEIA HEAD's binned-spline parameterisation (``parametrization="freia"``), as Python floats.

    Per element the subnet predicts ``bins`` widths and ``bins`` heights, then either the offsets of the
    bottom and left domain edges from ``default_domain`` (in this order; affine tails of slope
    ``sum(heights) / sum(widths)``) or, with ``identity_tails``, one total width (a centred, square domain
    and identity tails); rational-quadratic splines then add ``bins - 1`` inner knot derivatives.
    """

    bins: int
    min_width: float
    min_height: float
    left: float
    bottom: float
    total_width: float
    width_shift: float
    height_shift: float
    identity_tails: bool
    domain_clamping: float | None

    def count(self, inner_derivatives: bool) -> int:
        """Subnet outputs per element."""
        return 2 * self.bins + (1 if self.identity_tails else 2) + (self.bins - 1 if inner_derivatives else 0)

    def clamp_domain(self, size: Tensor) -> Tensor:
        """FrEIA's optional soft bound ``c tanh(size / c)`` on the domain's size."""
        if self.domain_clamping is None:
            return size
        return self.domain_clamping * torch.tanh(size / self.domain_clamping)


def make_freia_binning(
    name: str, grid: SplineGrid, identity_tails: object, domain_clamping: object
) -> FreiaBinning:
    """Validate FrEIA HEAD's extra spline arguments and combine them with ``grid`` into a :class:`FreiaBinning`."""
    if not isinstance(identity_tails, bool):
        raise TypeError(f"{name} identity_tails must be a bool, got {identity_tails!r}")
    if domain_clamping is not None:
        if isinstance(domain_clamping, bool) or not isinstance(domain_clamping, (int, float)):
            raise TypeError(f"{name} domain_clamping must be a number or None, got {domain_clamping!r}")
        if not 0 < domain_clamping < math.inf:
            raise ValueError(f"{name} domain_clamping must be positive and finite, got {domain_clamping!r}")
        domain_clamping = float(domain_clamping)
    bin_width = (grid.right - grid.left) / grid.bins
    bin_height = (grid.top - grid.bottom) / grid.bins
    # FrEIA shifts the softplus so that a raw 0 gives the default bin size.
    return FreiaBinning(
        grid.bins, grid.min_width, grid.min_height, grid.left, grid.bottom, grid.right - grid.left,
        math.log(math.expm1(bin_width - grid.min_width)), math.log(math.expm1(bin_height - grid.min_height)),
        identity_tails, domain_clamping,
    )


def freia_knots(raw: Tensor, binning: FreiaBinning) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """FrEIA HEAD's knots from unconstrained ``(..., count)``: x and y knots ``(..., bins + 1)``, and the
    slope and offset ``(..., 1)`` of the affine tails (slope 1 and offset 0 with identity tails)."""
    bins = binning.bins
    widths, heights = raw[..., :bins], raw[..., bins:2 * bins]
    if binning.identity_tails:
        total = binning.clamp_domain(binning.total_width * F.softplus(raw[..., 2 * bins:2 * bins + 1] + _LOG_E_MINUS_1))
        left = bottom = total * -0.5
        widths, heights = total * torch.softmax(widths, dim=-1), total * torch.softmax(heights, dim=-1)
    else:
        bottom = raw[..., 2 * bins:2 * bins + 1] + binning.bottom
        left = raw[..., 2 * bins + 1:2 * bins + 2] + binning.left
        widths = binning.min_width + F.softplus(widths + binning.width_shift)
        heights = binning.min_height + F.softplus(heights + binning.height_shift)
        if binning.domain_clamping is not None:
            width, height = widths.sum(dim=-1, keepdim=True), heights.sum(dim=-1, keepdim=True)
            width_resize, height_resize = binning.clamp_domain(width) / width, binning.clamp_domain(height) / height
            widths, left = widths * width_resize, left * width_resize
            heights, bottom = heights * height_resize, bottom * height_resize
    x_knots = torch.cat([left, left + torch.cumsum(widths, dim=-1)], dim=-1)
    y_knots = torch.cat([bottom, bottom + torch.cumsum(heights, dim=-1)], dim=-1)
    slope = heights.sum(dim=-1, keepdim=True) / widths.sum(dim=-1, keepdim=True)
    return x_knots, y_knots, slope, bottom - slope * left


@in_float32
def freia_binned_spline(
    value: Tensor, raw: Tensor, binning: FreiaBinning, rev: bool, inner_derivatives: bool
) -> tuple[Tensor, Tensor]:
    """FrEIA HEAD's binned spline, rational-quadratic (``inner_derivatives``) or linear, applied elementwise.

    Args:
        value: x (forward) or y (reverse), any shape ``S``.
        raw: unconstrained parameters ``(*S, binning.count(inner_derivatives))`` (leading batch dims may be
            missing), in FrEIA's order: widths, heights, bottom and left (or the total width), derivatives.
        binning: the parameterisation.
        rev: compute the inverse.
        inner_derivatives: rational-quadratic pieces (True) or linear ones.

    Returns:
        The transformed tensor and the elementwise log-derivative of the map that was applied.
    """
    x_knots, y_knots, slope, offset = freia_knots(raw, binning)
    derivatives = None
    if inner_derivatives:
        # At both ends the derivative equals the tails' slope.
        inner = F.softplus(raw[..., -(binning.bins - 1):] + _LOG_E_MINUS_1) if binning.bins > 1 else slope[..., :0]
        derivatives = torch.cat([slope, inner, slope], dim=-1)
    search = y_knots if rev else x_knots
    low, high = search[..., 0], search[..., -1]
    inside = (value > low) & (value <= high)
    clamped = torch.minimum(torch.maximum(value, low), high)
    piece = rq_piece if inner_derivatives else linear_piece
    spline, log_jac = piece(clamped, locate_in_knots(clamped, x_knots, y_knots, rev), derivatives, rev)
    slope, offset = slope.squeeze(-1), offset.squeeze(-1)
    tail = (value - offset) / slope if rev else value * slope + offset
    output = torch.where(inside, spline, tail)
    log_jac = torch.where(inside, log_jac, slope.log().expand_as(log_jac))
    return output, -log_jac if rev else log_jac


def per_element_parameters(network_output: Tensor, channels: int, count: int) -> Tensor:
    """Reshape a subnet output ``(B, channels * count, *S)`` to ``(B, channels, *S, count)``."""
    batch, spatial = network_output.shape[0], network_output.shape[2:]
    return network_output.reshape(batch, channels, count, *spatial).movedim(2, -1)


def sum_except_batch(values: Tensor) -> Tensor:
    """Sum over every dimension but the first."""
    return values.flatten(1).sum(dim=1)


SplineFunction = Callable[[Tensor, Tensor, SplineGrid, bool], tuple[Tensor, Tensor]]
_PARAMETRIZATIONS = ("fixed_domain", "freia")


class FreiaSplineSettings(nn.Module):
    """FrEIA HEAD's spline settings as buffers, so that its checkpoints load strictly and ours load in FrEIA.

    FrEIA keeps them in ``spline_base`` for couplings and on the block itself for the elementwise spline;
    they are fixed by the constructor, and a checkpoint whose settings differ is refused.
    """

    def __init__(self, name: str, grid: SplineGrid, identity_tails: bool):
        super().__init__()
        self.block_name = name
        domain = (grid.left, grid.right, grid.bottom, grid.top)
        register_freia_spline_buffers(self, grid.bins, (grid.min_width, grid.min_height), domain, identity_tails)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        check_freia_spline_buffers(self, self.block_name, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


_FREIA_SPLINE_BUFFERS = ("bins", "min_bin_sizes", "default_domain", "identity_tails", "default_width")


def register_freia_spline_buffers(
    module: nn.Module, bins: int, min_bin_sizes: tuple[float, float], domain: tuple[float, ...], identity_tails: bool
) -> None:
    """Register FrEIA HEAD's ``BinnedSplineBase`` buffers on ``module``, with FrEIA's dtypes."""
    module.register_buffer("bins", torch.tensor(bins, dtype=torch.int32))
    module.register_buffer("min_bin_sizes", torch.tensor(min_bin_sizes, dtype=torch.float32))
    module.register_buffer("default_domain", torch.tensor(domain, dtype=torch.float32))
    module.register_buffer("identity_tails", torch.tensor(identity_tails))
    module.register_buffer("default_width", torch.tensor(domain[1] - domain[0], dtype=torch.float32))


def check_freia_spline_buffers(module: nn.Module, name: str, state_dict: dict, prefix: str) -> None:
    """Refuse a checkpoint whose FrEIA spline settings differ from the block's constructor arguments."""
    for buffer in _FREIA_SPLINE_BUFFERS:
        saved, own = state_dict.get(prefix + buffer), getattr(module, buffer)
        if isinstance(saved, Tensor) and not torch.allclose(saved.to(own.dtype).reshape(own.shape), own):
            raise ValueError(f"{name}: the checkpoint's {prefix + buffer} is {saved.tolist()}, but this block "
                             f"was built with {own.tolist()}; build it with the checkpoint's settings")


def refuse_freia_layout(name: str, state_dict: dict, key: str) -> None:
    """A clear error for a FrEIA HEAD spline checkpoint loaded into the default parametrisation."""
    if key in state_dict:
        raise ValueError(f"{name}: this state dict was saved by FrEIA HEAD's splines ({key!r}), whose "
                         "parameterisation differs; build the block with parametrization='freia' to load it")


def spline_options(
    name: str, grid: SplineGrid, parametrization: object, identity_tails: object, domain_clamping: object
) -> FreiaBinning | None:
    """Validate the parametrisation options; the FrEIA binning for ``"freia"``, None for the default."""
    if parametrization not in _PARAMETRIZATIONS:
        raise ValueError(f"{name} parametrization must be one of {_PARAMETRIZATIONS}, got {parametrization!r}")
    if parametrization == "freia":
        return make_freia_binning(name, grid, identity_tails, domain_clamping)
    if identity_tails is not False or domain_clamping is not None:
        raise ValueError(f"{name}: identity_tails and domain_clamping are FrEIA HEAD's options; pass "
                         "parametrization='freia' to use them")
    return None


class _SplineCoupling(InvertibleModule):
    """Two-sided spline coupling: a subnet on one half (and the conditions) sets the other half's splines."""

    _spline: SplineFunction

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        split_len: float | int = 0.5,
        bins: int = 10,
        min_bin_sizes: tuple[float, float] = (0.1, 0.1),
        default_domain: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
        parametrization: str = "fixed_domain",
        identity_tails: bool = False,
        domain_clamping: float | None = None,
    ):
        super().__init__(dims_in, dims_c)
        name = type(self).__name__
        shape = single_input_shape(self, allow_conditions=True)
        check_condition_dims(shape, self.dims_c, name)
        condition_length = sum(condition[0] for condition in self.dims_c)
        self.grid = make_grid(name, bins, min_bin_sizes, default_domain)
        self.split_len1, self.split_len2 = resolve_split_len(split_len, shape[0], name)
        self.parametrization = parametrization
        self.binning = spline_options(name, self.grid, parametrization, identity_tails, domain_clamping)
        if self.binning is None:
            self.parameter_count = self._parameter_count(bins)
        else:
            self.parameter_count = self.binning.count(self._inner_derivatives)
            self.spline_base = FreiaSplineSettings(name, self.grid, identity_tails)
        self.subnet1 = build_subnet(subnet_constructor, self.split_len2 + condition_length,
                                    self.split_len1 * self.parameter_count, subnet_init_scale, name)
        self.subnet2 = build_subnet(subnet_constructor, self.split_len1 + condition_length,
                                    self.split_len2 * self.parameter_count, subnet_init_scale, name)

    _inner_derivatives: bool

    @staticmethod
    def _parameter_count(bins: int) -> int:
        raise NotImplementedError

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        if self.binning is None:
            refuse_freia_layout(type(self).__name__, state_dict, prefix + "spline_base.bins")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _coupling(
        self, active: Tensor, passive: Tensor, subnet: nn.Module, c: Sequence[Tensor] | None, rev: bool
    ) -> tuple[Tensor, Tensor]:
        network_output = subnet(append_condition(passive, c, type(self).__name__) if self.dims_c else passive)
        raw = per_element_parameters(network_output, active.shape[1], self.parameter_count)
        if self.binning is None:
            output, log_jac = self._spline(active, raw, self.grid, rev)
        else:
            output, log_jac = freia_binned_spline(active, raw, self.binning, rev, self._inner_derivatives)
        return output, sum_except_batch(log_jac)

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        x1, x2 = torch.split(x_or_z[0], [self.split_len1, self.split_len2], dim=1)
        if rev:
            y2, log_det2 = self._coupling(x2, x1, self.subnet2, c, rev)
            y1, log_det1 = self._coupling(x1, y2, self.subnet1, c, rev)
        else:
            y1, log_det1 = self._coupling(x1, x2, self.subnet1, c, rev)
            y2, log_det2 = self._coupling(x2, y1, self.subnet2, c, rev)
        return (torch.cat([y1, y2], dim=1),), log_det1 + log_det2

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


class RationalQuadraticSpline(_SplineCoupling):
    r"""Rational-quadratic spline coupling (Durkan et al. 2019, "Neural Spline Flows").

    The channels are split into :math:`x_1, x_2` (``split_len``). ``subnet1`` maps :math:`x_2` and the
    conditions to the spline parameters of every element of :math:`x_1`, giving :math:`y_1`; then
    ``subnet2`` maps :math:`y_1` and the conditions to those of :math:`x_2`, giving :math:`y_2`. Each
    element's spline has ``bins`` monotone rational-quadratic pieces on the fixed domain
    :math:`[\mathrm{left}, \mathrm{right}] \to [\mathrm{bottom}, \mathrm{top}]`: per element the subnet
    predicts ``bins`` widths and heights (softmax, at least ``min_bin_sizes``) and ``bins - 1`` inner
    knot derivatives (softplus, at least 1e-3; a raw 0 gives 1), ``3 * bins - 1`` values in all. The
    boundary derivatives are 1, matching the unit-slope tails outside the domain. The log-det is the
    exact sum of the elementwise log-derivatives; the inverse solves each piece's quadratic in closed form.

    Differences from FrEIA: the domain is fixed to ``default_domain`` instead of being shifted and
    stretched by the subnet (so the subnet predicts ``3 * bins - 1`` values per element, not
    ``3 * bins + 1``), the tails have slope 1 (FrEIA: slope height/width), and the reverse pass decides
    "inside" with the y-domain (FrEIA compares y with the x-domain's right edge, wrong when they differ).
    ``split_len`` must leave at least one channel in each half. The subnets' last layers are scaled by
    ``subnet_init_scale`` (as in this library's affine couplings); FrEIA leaves them as built.

    **FrEIA HEAD's maths** (``parametrization="freia"``; FrEIA 0.2 has no splines): per element the subnet
    predicts, in this order, ``bins`` widths and ``bins`` heights (each ``min_bin_sizes + softplus``,
    shifted so that 0 gives the default bin; their sums set the domain's size), the offsets of the bottom
    and left edges from ``default_domain`` and ``bins - 1`` inner derivatives (softplus, 0 gives 1):
    ``3 * bins + 1`` values. Outside the domain the map is affine with slope ``sum(heights) / sum(widths)``,
    which is also the derivative at both ends. ``identity_tails=True`` instead predicts one total size
    (``(right - left) * softplus``) of a centred square domain, softmax widths and heights without minimum,
    and identity tails (``3 * bins`` values); ``domain_clamping=c`` bounds the domain's size by
    ``c tanh(size / c)``. The state dict then matches FrEIA's (with its ``spline_base.*`` settings
    buffers), so HEAD checkpoints load strictly and reproduce HEAD's outputs; a HEAD checkpoint loaded into
    the default parametrisation raises a ValueError that names the option.

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]``, with ``C >= 2``.
        dims_c: condition shapes, each with the input's trailing dimensions; concatenated to the subnet
            inputs along the channels.
        subnet_constructor: ``callable(channels_in, channels_out) -> nn.Module``.
        split_len: channels of the first half, as a fraction (float) or a count (int).
        bins: number of spline pieces.
        min_bin_sizes: smallest (width, height) of a bin.
        default_domain: ``(left, right, bottom, top)`` of the spline domain.
        subnet_init_scale: factor applied to each subnet's last layer after construction (default 0.1), so
            the splines start near the identity and deep chains stay tame; 1 keeps the subnets as built.
        parametrization: ``"fixed_domain"`` (default) or ``"freia"`` (FrEIA HEAD's binned splines, above).
        identity_tails: FrEIA HEAD's option, with ``parametrization="freia"`` only (above).
        domain_clamping: FrEIA HEAD's option, with ``parametrization="freia"`` only (above).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> subnet = lambda c_in, c_out: nn.Sequential(nn.Linear(c_in, 32), nn.Tanh(), nn.Linear(32, c_out))
        >>> block = RationalQuadraticSpline([(4,)], subnet_constructor=subnet, bins=8)
        >>> x = torch.tensor([[0.5, -1.0, 2.0, 1e6]])
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z.shape, log_det.shape, torch.allclose(x_back, x, atol=1e-4)
        (torch.Size([1, 4]), torch.Size([1]), True)
    """

    _spline = staticmethod(rational_quadratic_spline)

    _inner_derivatives = True

    @staticmethod
    def _parameter_count(bins: int) -> int:
        return 3 * bins - 1


class LinearSpline(_SplineCoupling):
    r"""Piecewise-linear spline coupling (Müller et al. 2019, "Neural importance sampling").

    Same coupling scheme and arguments as :class:`RationalQuadraticSpline`, but each element's spline is
    piecewise linear: the subnet predicts ``bins`` widths and ``bins`` heights per element (``2 * bins``
    values); in bin :math:`k` the map is :math:`y = y_k + (x - x_k) h_k / w_k` with log-derivative
    :math:`\log h_k - \log w_k`. Unit-slope tails outside ``default_domain``.

    Differences from FrEIA: as for :class:`RationalQuadraticSpline` (fixed domain, so ``2 * bins``
    instead of ``2 * bins + 2`` subnet outputs per element; unit-slope tails; correct reverse domain test;
    ``subnet_init_scale``). ``parametrization="freia"`` gives FrEIA HEAD's maths and layout, as for
    :class:`RationalQuadraticSpline`, with ``2 * bins + 2`` values per element (``2 * bins + 1`` with
    ``identity_tails``).

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]``, with ``C >= 2``.
        dims_c: condition shapes, each with the input's trailing dimensions.
        subnet_constructor: ``callable(channels_in, channels_out) -> nn.Module``.
        split_len: channels of the first half, as a fraction (float) or a count (int).
        bins: number of spline pieces.
        min_bin_sizes: smallest (width, height) of a bin.
        default_domain: ``(left, right, bottom, top)`` of the spline domain.
        subnet_init_scale: factor applied to each subnet's last layer after construction (default 0.1).
        parametrization: ``"fixed_domain"`` (default) or ``"freia"`` (FrEIA HEAD's binned splines).
        identity_tails: FrEIA HEAD's option, with ``parametrization="freia"`` only.
        domain_clamping: FrEIA HEAD's option, with ``parametrization="freia"`` only.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> subnet = lambda c_in, c_out: nn.Conv2d(c_in, c_out, 3, padding=1)
        >>> block = LinearSpline([(2, 5, 5)], subnet_constructor=subnet, bins=4)
        >>> x = torch.randn(3, 2, 5, 5)
        >>> (z,), log_det = block([x])
        >>> (x_back,), log_det_rev = block([z], rev=True)
        >>> torch.allclose(x_back, x, atol=1e-5), torch.allclose(log_det, -log_det_rev, atol=1e-5)
        (True, True)
    """

    _spline = staticmethod(linear_spline)

    _inner_derivatives = False

    @staticmethod
    def _parameter_count(bins: int) -> int:
        return 2 * bins


class ElementwiseRationalQuadraticSpline(InvertibleModule):
    r"""A learned rational-quadratic spline for every input element, without coupling.

    Each element :math:`x_i` gets its own monotone spline (Durkan et al. 2019, "Neural Spline Flows")
    with ``3 * bins - 1`` parameters: learned directly (``spline_parameters``, shape
    ``(*dims_in[0], 3 * bins - 1)``, zero at start, which is the identity when the x- and y-domains agree)
    or, with conditions, predicted from them by
    ``subnet_constructor(condition_channels, C * (3 * bins - 1))``.
    The Jacobian is diagonal: :math:`\log|\det J| = \sum_i \log f_i'(x_i)`. Unit-slope tails outside
    ``default_domain``. Without conditions a ``subnet_constructor`` is accepted and not used, as in FrEIA
    (a block built for both cases then runs unconditionally with learned parameters).

    **FrEIA HEAD's maths** (``parametrization="freia"``): each element's spline has FrEIA's binned
    parameterisation (see :class:`RationalQuadraticSpline`), ``3 * bins + 1`` parameters (``3 * bins``
    with ``identity_tails``), stored in FrEIA's layout: ``spline_parameters`` of shape
    ``(C * count, *dims_in[0][1:])`` and FrEIA's settings buffers (``bins``, ``min_bin_sizes``,
    ``default_domain``, ``identity_tails``, ``default_width``), so FrEIA HEAD checkpoints load and
    reproduce FrEIA's outputs. FrEIA 0.2 has no splines.

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]``.
        dims_c: optional condition shapes, each with the input's trailing dimensions.
        subnet_constructor: needed with conditions, ``callable(channels_in, channels_out) -> nn.Module``.
        bins: number of spline pieces.
        min_bin_sizes: smallest (width, height) of a bin.
        default_domain: ``(left, right, bottom, top)`` of the spline domain.
        subnet_init_scale: factor applied to the subnet's last layer after construction (default 0.1).
        parametrization: ``"fixed_domain"`` (default) or ``"freia"`` (FrEIA HEAD's binned splines).
        identity_tails: FrEIA HEAD's option (``parametrization="freia"`` only): a centred square domain of
            learned size and identity tails.
        domain_clamping: FrEIA HEAD's option (``parametrization="freia"`` only): bound the domain's size.

    Example:
        >>> block = ElementwiseRationalQuadraticSpline([(3,)], bins=6)
        >>> with torch.no_grad():
        ...     _ = block.spline_parameters.normal_(generator=torch.Generator().manual_seed(0))
        >>> x = torch.tensor([[-10.0, 0.3, 2.5]])
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z[0, 0].item(), torch.allclose(x_back, x, atol=1e-5)
        (-10.0, True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        bins: int = 10,
        min_bin_sizes: tuple[float, float] = (0.1, 0.1),
        default_domain: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
        parametrization: str = "fixed_domain",
        identity_tails: bool = False,
        domain_clamping: float | None = None,
    ):
        super().__init__(dims_in, dims_c)
        name = type(self).__name__
        shape = single_input_shape(self, allow_conditions=True)
        self.grid = make_grid(name, bins, min_bin_sizes, default_domain)
        self.parametrization = parametrization
        self.binning = spline_options(name, self.grid, parametrization, identity_tails, domain_clamping)
        self.parameter_count = 3 * bins - 1 if self.binning is None else self.binning.count(True)
        if self.binning is not None:
            register_freia_spline_buffers(self, bins, tuple(min_bin_sizes), tuple(default_domain), identity_tails)
        if self.dims_c:
            check_condition_dims(shape, self.dims_c, name)
            condition_length = sum(condition[0] for condition in self.dims_c)
            self.subnet = build_subnet(subnet_constructor, condition_length, shape[0] * self.parameter_count,
                                       subnet_init_scale, name)
        elif self.binning is None:
            self.spline_parameters = nn.Parameter(torch.zeros(*shape, self.parameter_count))
        else:
            self.spline_parameters = nn.Parameter(torch.zeros(shape[0] * self.parameter_count, *shape[1:]))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        name = type(self).__name__
        if self.binning is None:
            refuse_freia_layout(name, state_dict, prefix + "default_domain")
        else:
            check_freia_spline_buffers(self, name, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _raw_parameters(self, c: Sequence[Tensor] | None) -> Tensor:
        if self.dims_c:
            if not c:
                raise ValueError(f"{type(self).__name__} is conditional (dims_c was given), but was called "
                                 "without conditions c")
            network_output = self.subnet(torch.cat(list(c), dim=1))
            return per_element_parameters(network_output, self.dims_in[0][0], self.parameter_count)
        if self.binning is not None:  # FrEIA's layout: (C * count, *spatial)
            return per_element_parameters(self.spline_parameters[None], self.dims_in[0][0], self.parameter_count)
        return self.spline_parameters

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        if self.binning is None:
            output, log_jac = rational_quadratic_spline(x_or_z[0], self._raw_parameters(c), self.grid, rev)
        else:
            output, log_jac = freia_binned_spline(x_or_z[0], self._raw_parameters(c), self.binning, rev, True)
        return (output,), sum_except_batch(log_jac)

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


# FrEIA offers these here too (outside __all__), for users who subclass them
from .binned import BinnedSpline, BinnedSplineBase  # noqa: E402, F401
