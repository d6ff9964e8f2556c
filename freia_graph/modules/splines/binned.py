"""FrEIA's binned-spline bases (``FrEIA.modules.splines.binned``), for splines that users write.

:class:`BinnedSplineBase` turns raw network outputs into monotone bins (knots) with affine or identity
tails and evaluates a spline bin by bin; :class:`BinnedSpline` is a coupling block on top of it whose
subclasses define only the spline inside one bin (``_spline1`` and ``_spline2``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .._coupling_tools import build_subnet
from .._linalg import in_float32
from ..base import InvertibleModule
from ..freia_bases import _BaseCouplingBlock

__all__ = ["BinnedSpline", "BinnedSplineBase"]

Parameters = dict[str, Tensor]
SplineFunction = Callable[..., tuple[Tensor, Tensor]]

# names the base gives itself; the others are a subclass's per-knot values, gathered at the bin's two ends
_GRID_KEYS = ("left", "bottom", "widths", "heights", "total_width")


def _inverse_softplus(value: Tensor) -> Tensor:
    return torch.log(torch.expm1(value))


def _check_grid(block: str, bins: int, min_bin_sizes: Sequence[float], domain: Sequence[float]) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"{block}: bins must be an int >= 1, got {bins!r}")
    if len(min_bin_sizes) != 2 or min(min_bin_sizes) < 0:
        raise ValueError(f"{block}: min_bin_sizes must be two sizes >= 0 (x, y), got {min_bin_sizes!r}")
    if len(domain) != 4:
        raise ValueError(f"{block}: default_domain must be (left, right, bottom, top), got {domain!r}")
    for axis, (low, high), min_size in (("x", domain[:2], min_bin_sizes[0]), ("y", domain[2:], min_bin_sizes[1])):
        if not high > low:
            raise ValueError(f"{block}: the {axis} domain {low}..{high} of default_domain must be increasing")
        if high - low < min_size * bins:
            raise ValueError(
                f"{block}: {bins} bins of at least {min_size} do not fit the {axis} domain {low}..{high}; "
                f"use fewer bins, smaller min_bin_sizes or a wider default_domain"
            )


class BinnedSplineBase(InvertibleModule):
    r"""Bins, tails and bin-by-bin evaluation of a monotone spline, as FrEIA's ``BinnedSplineBase``.

    The raw parameters per element are ``widths`` and ``heights`` (``bins`` each) and, with affine tails,
    ``left`` and ``bottom`` (the domain's lower corner), or with identity tails ``total_width``; a
    subclass adds its own per-knot values through ``parameter_counts`` (e.g. ``{"deltas": bins - 1}``).
    Network outputs of zero give the ``default_domain``; bins never get smaller than ``min_bin_sizes``.
    Outside the domain the map is affine with slope ``sum(heights) / sum(widths)`` (identity with
    ``identity_tails``). The buffers (``bins``, ``min_bin_sizes``, ``default_domain``, ``identity_tails``,
    ``default_width``) have FrEIA's names, so ``state_dict`` keys match FrEIA's.

    Args:
        dims_in: the input shapes.
        dims_c: the condition shapes.
        bins: number of bins.
        parameter_counts: extra parameter names and counts per element, added after the base's own.
        min_bin_sizes: the smallest bin width and height.
        default_domain: ``(left, right, bottom, top)`` for network outputs of zero.
        identity_tails: identity outside the domain (the domain is then a square centred at 0).
        domain_clamping: if given, soft-clamp the domain's width and height to this size.

    Example:
        >>> base = BinnedSplineBase([(2,)], bins=3)
        >>> raw = base.split_parameters(torch.zeros(1, 2 * 8), 2)
        >>> sorted(raw), raw["widths"].shape
        (['bottom', 'heights', 'left', 'widths'], torch.Size([1, 2, 3]))
        >>> base.constrain_parameters(raw)["widths"][0, 0]
        tensor([2., 2., 2.])
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        bins: int = 10,
        parameter_counts: dict[str, int] | None = None,
        min_bin_sizes: tuple[float, float] = (0.1, 0.1),
        default_domain: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0),
        identity_tails: bool = False,
        domain_clamping: float | None = None,
    ) -> None:
        super().__init__(dims_in, dims_c)
        block = type(self).__name__
        min_bin_sizes, default_domain = tuple(min_bin_sizes), tuple(default_domain)
        _check_grid(block, bins, min_bin_sizes, default_domain)
        self.register_buffer("bins", torch.tensor(bins, dtype=torch.int32))
        self.register_buffer("min_bin_sizes", torch.tensor(min_bin_sizes, dtype=torch.float32))
        self.register_buffer("default_domain", torch.tensor(default_domain, dtype=torch.float32))
        self.register_buffer("identity_tails", torch.tensor(bool(identity_tails)))
        self.register_buffer("default_width", torch.tensor(default_domain[1] - default_domain[0], dtype=torch.float32))
        self._bins, self._identity_tails = bins, bool(identity_tails)
        self.domain_clamping = domain_clamping
        corner = {"total_width": 1} if identity_tails else {"bottom": 1, "left": 1}
        self.parameter_counts: dict[str, int] = {"widths": bins, "heights": bins, **corner, **(parameter_counts or {})}

    def split_parameters(self, parameters: Tensor, split_len: int) -> Parameters:
        """Cut a network output ``(batch, split_len * P, *spatial)`` into named ``(batch, *spatial, split_len, n)``."""
        count = sum(self.parameter_counts.values())
        if parameters.dim() < 2 or parameters.shape[1] != split_len * count:
            raise ValueError(
                f"{type(self).__name__}: the subnet gives {tuple(parameters.shape)}, but {split_len} channels "
                f"need {split_len} * {count} = {split_len * count} values per position in dim 1 "
                f"({self.parameter_counts})"
            )
        values = parameters.movedim(1, -1).unflatten(-1, (split_len, count))
        return dict(zip(self.parameter_counts, values.split(list(self.parameter_counts.values()), dim=-1)))

    def clamp_domain(self, domain: Tensor) -> Tensor:
        """Soft-clamp a size to ``(-domain_clamping, domain_clamping)``, or return it as is."""
        if self.domain_clamping is None:
            return domain
        return self.domain_clamping * torch.tanh(domain / self.domain_clamping)

    def constrain_parameters(self, parameters: Parameters) -> Parameters:
        """Positive bin sizes, the domain's corner and size from raw values; returns a new dict."""
        result = dict(parameters)
        if self._identity_tails:
            width = self.clamp_domain(self.default_width * F.softplus(parameters["total_width"] + math.log(math.e - 1)))
            result["left"] = result["bottom"] = -width / 2
            result["widths"] = width * torch.softmax(parameters["widths"], dim=-1)
            result["heights"] = width * torch.softmax(parameters["heights"], dim=-1)
            return result
        domain, min_sizes = self.default_domain, self.min_bin_sizes
        for size, corner, axis in (("widths", "left", 0), ("heights", "bottom", 1)):
            default_size = (domain[2 * axis + 1] - domain[2 * axis]) / self._bins
            sizes = min_sizes[axis] + F.softplus(parameters[size] + _inverse_softplus(default_size - min_sizes[axis]))
            total = sizes.sum(dim=-1, keepdim=True)
            resize = self.clamp_domain(total) / total
            result[size] = sizes * resize
            result[corner] = (parameters[corner] + domain[2 * axis]) * resize
        return result

    def binned_spline(
        self, x: Tensor, parameters: Parameters, spline: SplineFunction, rev: bool = False
    ) -> tuple[Tensor, Tensor]:
        """Evaluate ``spline`` inside the domain and the affine tails outside.

        Args:
            x: the tensor, channels in dim 1.
            parameters: constrained parameters, each ``(batch, *spatial, channels, n)``.
            spline: ``spline(x, edges, rev=rev) -> (output, log_derivative)``, elementwise. ``edges`` holds
                ``left``, ``right``, ``bottom``, ``top`` (the bin's corners) and ``<name>_left``,
                ``<name>_right`` for every extra parameter; ``log_derivative`` is ``log f'`` of the
                forward map in both directions. Every tensor has ``x``'s shape with the channels last
                (FrEIA passes only the elements inside the domain, flattened; an elementwise spline
                works with both); elements outside the domain see a point inside it and are discarded.
            rev: evaluate the inverse.

        Returns:
            ``(output, log_det)`` with ``log_det`` per sample, of the inverse when ``rev``.
        """
        value = x.movedim(1, -1)
        knots_x = torch.cat((parameters["left"], parameters["left"] + parameters["widths"].cumsum(-1)), -1)
        knots_y = torch.cat((parameters["bottom"], parameters["bottom"] + parameters["heights"].cumsum(-1)), -1)
        knots = knots_y if rev else knots_x
        inside = (knots[..., 0] < value) & (value <= knots[..., -1])
        safe = torch.where(inside, value, (knots[..., 0] + knots[..., -1]) / 2)
        upper = torch.searchsorted(knots.contiguous(), safe.unsqueeze(-1).contiguous()).clamp(1, knots.shape[-1] - 1)
        edges = self._bin_edges(parameters, knots_x, knots_y, upper - 1, upper)
        inner, inner_log_derivative = spline(safe, edges, rev=rev)
        slope = parameters["heights"].sum(-1) / parameters["widths"].sum(-1)
        offset = parameters["bottom"][..., 0] - slope * parameters["left"][..., 0]
        outer = (value - offset) / slope if rev else slope * value + offset
        output = torch.where(inside, inner, outer)
        log_det = torch.where(inside, inner_log_derivative, torch.log(slope)).flatten(1).sum(1)
        return output.movedim(-1, 1), (-log_det if rev else log_det)

    @staticmethod
    def _bin_edges(
        parameters: Parameters, knots_x: Tensor, knots_y: Tensor, lower: Tensor, upper: Tensor
    ) -> Parameters:
        def at(values: Tensor, index: Tensor) -> Tensor:
            return values.gather(-1, index).squeeze(-1)

        edges = {"left": at(knots_x, lower), "right": at(knots_x, upper),
                 "bottom": at(knots_y, lower), "top": at(knots_y, upper)}
        for key, values in parameters.items():
            if key not in _GRID_KEYS:
                edges[f"{key}_left"], edges[f"{key}_right"] = at(values, lower), at(values, upper)
        return edges


class BinnedSpline(_BaseCouplingBlock):
    r"""A spline coupling block written the FrEIA way: subclasses define the spline within one bin.

    Each half of the input is transformed elementwise by a monotone spline whose bins (and any extra
    per-knot values) two subnets predict from the other half and the conditions, as in FrEIA's
    ``BinnedSpline``. A subclass implements ``_spline1(x, parameters, rev=False)`` and
    ``_spline2(x, parameters, rev=False)`` returning ``(output, log_derivative)`` elementwise (see
    :meth:`BinnedSplineBase.binned_spline` for ``parameters``), may add per-knot values with
    ``parameter_counts`` and may extend ``constrain_parameters``. The subnets are ``subnet1`` and
    ``subnet2``, the bins' settings live in ``spline_base``.

    Args:
        dims_in: one input shape, at least two channels.
        dims_c: condition shapes (channels first, other dims as the input's).
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``.
        split_len: the first half's channels, a fraction or a count.
        **kwargs: :class:`BinnedSplineBase`'s arguments (``bins``, ``parameter_counts``, ``min_bin_sizes``,
            ``default_domain``, ``identity_tails``, ``domain_clamping``).

    Example:
        >>> class Piecewise(BinnedSpline):
        ...     def _spline1(self, x, p, rev=False):
        ...         slope = (p["top"] - p["bottom"]) / (p["right"] - p["left"])
        ...         out = (x - p["bottom"]) / slope + p["left"] if rev else (x - p["left"]) * slope + p["bottom"]
        ...         return out, torch.log(slope)
        ...     _spline2 = _spline1
        >>> block = Piecewise([(4,)], subnet_constructor=torch.nn.Linear, bins=4)
        >>> x = torch.randn(3, 4)
        >>> (z,), log_det = block([x])
        >>> (x_rec,), log_det_rev = block([z], rev=True)
        >>> torch.allclose(x_rec, x, atol=1e-5), torch.allclose(log_det, -log_det_rev, atol=1e-5)
        (True, True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: Callable | None = None,
        split_len: float | int = 0.5,
        **kwargs,
    ) -> None:
        super().__init__(dims_in, dims_c, clamp=0.0, clamp_activation=_identity, split_len=split_len)
        self.spline_base = BinnedSplineBase(dims_in, dims_c, **kwargs)
        count = sum(self.spline_base.parameter_counts.values())
        block = type(self).__name__
        self.subnet1 = build_subnet(
            subnet_constructor, self.split_len2 + self.condition_length, self.split_len1 * count, 1.0, block
        )
        self.subnet2 = build_subnet(
            subnet_constructor, self.split_len1 + self.condition_length, self.split_len2 * count, 1.0, block
        )

    def _spline1(self, x: Tensor, parameters: Parameters, rev: bool = False) -> tuple[Tensor, Tensor]:
        """The spline of the first half within one bin; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define _spline1(x, parameters, rev=False)")

    def _spline2(self, x: Tensor, parameters: Parameters, rev: bool = False) -> tuple[Tensor, Tensor]:
        """The spline of the second half within one bin; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define _spline2(x, parameters, rev=False)")

    def _coupling1(self, x1: Tensor, u2: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        return _evaluate_spline(x1, self.subnet1(u2), self, self.split_len1, self._spline1, rev)

    def _coupling2(self, x2: Tensor, u1: Tensor, rev: bool = False) -> tuple[Tensor, Tensor]:
        return _evaluate_spline(x2, self.subnet2(u1), self, self.split_len2, self._spline2, rev)

    def constrain_parameters(self, parameters: Parameters) -> Parameters:
        """Constrain raw parameters (see :meth:`BinnedSplineBase.constrain_parameters`); subclasses extend it."""
        return self.spline_base.constrain_parameters(parameters)


@in_float32
def _evaluate_spline(x: Tensor, raw: Tensor, block: BinnedSpline, split_len: int, spline: SplineFunction,
                     rev: bool) -> tuple[Tensor, Tensor]:
    """A half of ``block`` transformed by its spline with the subnet's ``raw`` output, in float32 at least:
    bfloat16 knots collapse, and forward and reverse would search different bins (under autocast the
    subnet's output is bfloat16)."""
    parameters = block.spline_base.split_parameters(raw, split_len)
    return block.spline_base.binned_spline(x, block.constrain_parameters(parameters), spline, rev=rev)


def _identity(u: Tensor) -> Tensor:
    return u
