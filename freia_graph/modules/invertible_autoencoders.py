"""Invertible autoencoder layers (Teng et al. 2018): learned leaky activations, and linear maps whose
reverse uses the transposed weight."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._coupling_tools import check_number
from ._linalg import log_abs_det
from ._state_dict_compat import Entries, register_layout_conversion, reshape_entries
from .base import InvertibleModule, Shape
from .permutations import single_input_shape

__all__ = ["InvAutoAct", "InvAutoActTwoSided", "InvAutoActFixed", "InvAutoFC", "InvAutoConv2D"]


def _single_input_of_rank(block: InvertibleModule, rank: int | None = None) -> Shape:
    """The single input's shape, or a ValueError for several inputs, conditions or the wrong rank.

    ``rank=None`` accepts any input with at least one dimension besides the batch.
    """
    shape = single_input_shape(block)
    if not shape or (rank is not None and len(shape) != rank):
        wanted = f"an input of rank {rank}" if rank else "an input with at least one dimension"
        raise ValueError(f"{type(block).__name__} takes {wanted} (without batch), but got {block.dims_in}")
    return shape


class _LeakyActivation(InvertibleModule):
    r"""Shared machinery of the sign-dependent, channel-wise scalings :math:`z = x \exp(a(x))`.

    Subclasses give the log-slope :math:`a(x)` per element. Since the slopes are positive, :math:`z` has the
    sign of :math:`x`, so the same log-slope read off :math:`z` undoes the scaling.
    """

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]] | None):
        super().__init__(dims_in, dims_c)
        shape = _single_input_of_rank(self)
        # FrEIA's shape (1, C, 1, ...); earlier freia_graph saved (C, 1, ...), which loads too
        self._channel_shape = (1, shape[0]) + (1,) * (len(shape) - 1)
        register_layout_conversion(self, load=self._convert_layout)

    def _convert_layout(self, entries: Entries) -> Entries:
        return reshape_entries(entries, self, ("alpha", "alpha_pos", "alpha_neg"))

    def _register_log_slope(self, name: str, argument: str, slope: float, learnable: bool) -> None:
        slope = check_number(slope, argument, type(self).__name__)
        if not isinstance(learnable, bool):
            raise TypeError(f"learnable must be a bool, got {learnable!r}")
        log_slope = torch.full(self._channel_shape, math.log(slope))
        if learnable:
            self.register_parameter(name, nn.Parameter(log_slope))
        else:
            self.register_buffer(name, log_slope)

    def _log_slope(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x,) = x_or_z
        log_slope = -self._log_slope(x) if rev else self._log_slope(x)
        return (x * torch.exp(log_slope),), log_slope.sum(dim=tuple(range(1, x.dim())))

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return list(input_dims)


class InvAutoAct(_LeakyActivation):
    r"""A leaky-ReLU-like invertible activation with a learned, symmetric slope per channel.

    .. math::

        z = \begin{cases} x\, e^{\alpha} & x \ge 0 \\ x\, e^{-\alpha} & x < 0 \end{cases},
        \qquad \log|\det J| = \sum_i \pm\alpha_{c(i)},

    with one :math:`\alpha` per entry of the first non-batch dimension (per feature for vectors, per
    channel for images), from the invertible autoencoder of Teng et al. 2018, "Invertible autoencoder for
    domain adaptation". The map is piecewise linear and exactly invertible.

    Slopes compound along a chain: with the default ``slope_init=2`` each block doubles positive and halves
    negative values, so long chains of these activations need mixing layers and learning to stay tame.

    Differences from FrEIA: with ``learnable=False`` the log-slope is a buffer rather than a parameter that
    does not require grad; :math:`x = 0` is treated as positive (FrEIA: slope 1 there), which only changes a
    set of measure zero.

    Args:
        dims_in: one input shape, e.g. ``[(8,)]`` or ``[(3, 16, 16)]``.
        dims_c: must be empty; the block is unconditional.
        slope_init: the initial positive-side slope :math:`e^\alpha > 0` (the negative side is its inverse).
        learnable: learn the slopes; if False they stay at their initial value.

    Example:
        >>> block = InvAutoAct([(3,)], slope_init=2.0)
        >>> (z,), log_det = block([torch.tensor([[1.0, -1.0, 3.0]])])
        >>> z.tolist(), round(log_det[0].item(), 4)
        ([[2.0, -0.5, 6.0]], 0.6931)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        slope_init: float = 2.0,
        learnable: bool = True,
    ):
        super().__init__(dims_in, dims_c)
        self._register_log_slope("alpha", "slope_init", slope_init, learnable)

    def _log_slope(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, -self.alpha, self.alpha)


class InvAutoActFixed(InvAutoAct):
    r"""Deprecated: :class:`InvAutoAct` with ``learnable=False``; warns with DeprecationWarning when built.

    .. math:: z = x\, e^{\pm\alpha} \text{ for } x \gtrless 0, \qquad \log|\det J| = \sum_i \pm\alpha

    From FrEIA, where it is a deprecated alias (Teng et al. 2018, "Invertible autoencoder for domain
    adaptation"). Differences from FrEIA: FrEIA's alias forwards ``learnable`` and defaults to a learned
    slope despite its name; here the slope is always fixed.

    Takes the arguments of :class:`InvAutoAct` (``dims_in``, ``dims_c``, ``slope_init``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     block = InvAutoActFixed([(3,)])
        >>> caught[0].category.__name__, list(block.parameters())
        ('DeprecationWarning', [])
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        slope_init: float = 2.0,
    ):
        warnings.warn(
            "InvAutoActFixed is deprecated; use InvAutoAct(..., learnable=False)", DeprecationWarning, stacklevel=2
        )
        super().__init__(dims_in, dims_c, slope_init=slope_init, learnable=False)


class InvAutoActTwoSided(_LeakyActivation):
    r"""A leaky-ReLU-like invertible activation with separate learned slopes for each sign, per channel.

    .. math::

        z = \begin{cases} x\, e^{\alpha_+} & x \ge 0 \\ x\, e^{\alpha_-} & x < 0 \end{cases},
        \qquad \log|\det J| = \sum_i \alpha_{\pm, c(i)},

    with one pair :math:`(\alpha_+, \alpha_-)` per entry of the first non-batch dimension (Teng et al. 2018,
    "Invertible autoencoder for domain adaptation"). The map is piecewise linear and exactly invertible.

    Differences from FrEIA: with ``learnable=False`` the log-slopes are buffers; :math:`x = 0` is treated as
    positive (FrEIA averages the two log-slopes there), which only changes a set of measure zero.

    Args:
        dims_in: one input shape, e.g. ``[(8,)]`` or ``[(3, 16, 16)]``.
        dims_c: must be empty; the block is unconditional.
        init_pos: the initial slope :math:`e^{\alpha_+} > 0` for non-negative inputs.
        init_neg: the initial slope :math:`e^{\alpha_-} > 0` for negative inputs.
        learnable: learn the slopes; if False they stay at their initial values.

    Example:
        >>> block = InvAutoActTwoSided([(2,)], init_pos=2.0, init_neg=0.5)
        >>> (z,), log_det = block([torch.tensor([[1.0, -4.0]])])
        >>> z.tolist(), round(log_det[0].item(), 4)
        ([[2.0, -2.0]], 0.0)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        init_pos: float = 2.0,
        init_neg: float = 0.5,
        learnable: bool = True,
    ):
        super().__init__(dims_in, dims_c)
        self._register_log_slope("alpha_pos", "init_pos", init_pos, learnable)
        self._register_log_slope("alpha_neg", "init_neg", init_neg, learnable)

    def _log_slope(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, self.alpha_neg, self.alpha_pos)


class _TransposeReverse(InvertibleModule):
    """Shared forward of the affine layers whose reverse applies the transposed linear map.

    Subclasses give the map in each direction and :math:`\\log|\\det|` of its linear part; the log-det is
    reported only for square maps, NaN otherwise, and skipped with ``jac=False``.
    """

    def _transform(self, x: Tensor, rev: bool) -> Tensor:
        raise NotImplementedError

    def _log_abs_det(self) -> Tensor:
        raise NotImplementedError

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor | None]:
        (x,) = x_or_z
        out = self._transform(x, rev)
        if not jac:
            return (out,), None
        square = math.prod(self.output_dims(self.dims_in)[0]) == math.prod(self.dims_in[0])
        return (out,), self._log_abs_det() if square else x.new_full((), math.nan)


class InvAutoFC(_TransposeReverse):
    r"""Fully connected 'invertible autoencoder' layer: reverse applies the transposed weight.

    .. math::

        z = W x + b, \qquad \text{reverse: } x' = W^\top (z - b),

    from Teng et al. 2018, "Invertible autoencoder for domain adaptation". The reverse is the exact inverse
    only when :math:`W` is orthogonal (:math:`W^\top W = I`); otherwise ``reverse(forward(x)) = W^T W x``.
    The layer is meant to be trained with a reconstruction loss, which drives :math:`W` towards orthogonality.

    The log-det returned in each direction is the exact :math:`\log|\det|` of the map that direction
    computes. Both are :math:`\log|\det W|`, because :math:`|\det W^\top| = |\det W|`; so the usual
    ``log_det_reverse == -log_det_forward`` holds only where :math:`|\det W| = 1`, e.g. for orthogonal
    :math:`W`. A non-square map (``dims_out != d``) has no determinant and reports NaN (use ``jac=False``).

    Differences from FrEIA: FrEIA returns a log-det of 0 and warns on every call; here it is exact (or NaN).
    :math:`W` starts (semi-)orthogonal and :math:`b` at zero (FrEIA: scaled Gaussian weights and a standard
    normal bias), so a square layer starts as an exact, volume-preserving inverse pair, and a wider one
    (``dims_out > d``, :math:`W^\top W = I`) still reconstructs exactly. No shapes are printed.

    Args:
        dims_in: one vector shape, e.g. ``[(8,)]``.
        dims_c: must be empty; the block is unconditional.
        dims_out: number of output features; ``None`` keeps the input width.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = InvAutoFC([(4,)])
        >>> x = torch.randn(2, 4)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> torch.allclose(x, x_back, atol=1e-5), abs(log_det.item()) < 1e-5
        (True, True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        dims_out: int | None = None,
    ):
        super().__init__(dims_in, dims_c)
        (width_in,) = _single_input_of_rank(self, rank=1)
        if dims_out is None:
            dims_out = width_in
        if not isinstance(dims_out, int) or isinstance(dims_out, bool):
            raise TypeError(f"dims_out must be an int (number of output features) or None, got {dims_out!r}")
        if dims_out < 1:
            raise ValueError(f"dims_out must be >= 1, got {dims_out}")
        self.dims_out = dims_out
        self.weights = nn.Parameter(nn.init.orthogonal_(torch.empty(dims_out, width_in)))
        self.bias = nn.Parameter(torch.zeros(1, dims_out))

    def _transform(self, x: Tensor, rev: bool) -> Tensor:
        return F.linear(x - self.bias, self.weights.T) if rev else F.linear(x, self.weights, self.bias)

    def _log_abs_det(self) -> Tensor:
        return torch.linalg.slogdet(self.weights).logabsdet

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return [(self.dims_out,)]


class InvAutoConv2D(_TransposeReverse):
    r"""Convolutional 'invertible autoencoder' layer: reverse is the transposed convolution, same kernel.

    .. math::

        z = K \star x + b, \qquad \text{reverse: } x' = K^\top \star (z - b),

    where :math:`K \star` is a zero-padded 2D convolution and :math:`K^\top \star` its adjoint (Teng et al.
    2018, "Invertible autoencoder for domain adaptation"). As for :class:`InvAutoFC`, the reverse is the
    exact inverse only when the convolution, as a linear map :math:`A`, is orthogonal; otherwise
    ``reverse(forward(x)) = A^T A x``.

    The log-det returned in each direction is the exact :math:`\log|\det A|` of the map that direction
    computes (equal for :math:`A` and :math:`A^\top`), sample-independent. A zero-padded convolution has no
    closed-form determinant, so :math:`A` is built densely by convolving the unit basis, at
    :math:`O(D^3)` cost for :math:`D = C H W` per call: fine for small images, slow for large ones, where
    ``jac=False`` skips it (the reconstruction loss these layers train with needs no log-det). A map whose
    input and output sizes differ has no determinant and reports NaN.

    Differences from FrEIA: FrEIA returns a log-det of 0 and warns on every call; here it is exact (or
    NaN). The kernel starts as an orthogonal channel mix at its centre tap (an exactly orthogonal
    convolution when ``padding = kernel_size // 2`` with odd kernels and equal channel counts) and the bias
    at zero (FrEIA: default convolution init, standard normal bias). The output shape is computed from
    ``kernel_size`` and ``padding``; a ``dims_out`` that disagrees raises a ValueError (FrEIA trusts it).

    Args:
        dims_in: one image shape ``[(C, H, W)]``.
        dims_c: must be empty; the block is unconditional.
        dims_out: ``(C_out, H_out, W_out)``, or ``None`` to keep the channel count.
        kernel_size: spatial size of the square kernel.
        padding: zero padding on each side; ``kernel_size // 2`` keeps ``H`` and ``W`` for odd kernels.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = InvAutoConv2D([(2, 4, 4)])
        >>> x = torch.randn(1, 2, 4, 4)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z.shape, torch.allclose(x, x_back, atol=1e-5), abs(log_det.item()) < 1e-4
        (torch.Size([1, 2, 4, 4]), True, True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        dims_out: Iterable[int] | None = None,
        kernel_size: int = 3,
        padding: int = 1,
    ):
        super().__init__(dims_in, dims_c)
        channels, height, width = _single_input_of_rank(self, rank=3)
        for name, value, least in (("kernel_size", kernel_size, 1), ("padding", padding, 0)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < least:
                raise ValueError(f"{name} must be >= {least}, got {value}")
        spatial = (height + 2 * padding - kernel_size + 1, width + 2 * padding - kernel_size + 1)
        if min(spatial) < 1:
            raise ValueError(
                f"kernel_size={kernel_size} with padding={padding} leaves no output for an input of {self.dims_in[0]}"
            )
        self.dims_out = self._checked_dims_out(dims_out, channels, spatial)
        self.kernel_size = kernel_size
        self.padding = padding
        self.conv2d = nn.Conv2d(channels, self.dims_out[0], kernel_size, padding=padding, bias=False)
        with torch.no_grad():
            self.conv2d.weight.zero_()
            self.conv2d.weight[:, :, kernel_size // 2, kernel_size // 2] = nn.init.orthogonal_(
                torch.empty(self.dims_out[0], channels)
            )
        self.bias = nn.Parameter(torch.zeros(1, self.dims_out[0], 1, 1))

    @staticmethod
    def _checked_dims_out(dims_out: Iterable[int] | None, channels: int, spatial: tuple[int, int]) -> Shape:
        if dims_out is None:
            return (channels, *spatial)
        if isinstance(dims_out, (str, bytes)) or not isinstance(dims_out, Iterable):
            raise TypeError(f"dims_out must be a shape (C_out, H_out, W_out) or None, got {dims_out!r}")
        dims_out = tuple(dims_out)
        if len(dims_out) != 3 or not all(isinstance(d, int) and d > 0 for d in dims_out):
            raise ValueError(f"dims_out must be three positive ints (C_out, H_out, W_out), got {dims_out}")
        if dims_out[1:] != spatial:
            raise ValueError(
                f"dims_out={dims_out} disagrees with the convolution, which outputs spatial size {spatial}"
            )
        return dims_out

    def _log_abs_det(self) -> Tensor:
        weight = self.conv2d.weight
        size = math.prod(self.dims_in[0])
        basis = torch.eye(size, dtype=weight.dtype, device=weight.device).reshape(size, *self.dims_in[0])
        dense = F.conv2d(basis, weight, padding=self.padding).reshape(size, -1)
        return log_abs_det(dense)

    def _transform(self, x: Tensor, rev: bool) -> Tensor:
        if rev:
            return F.conv_transpose2d(x - self.bias, self.conv2d.weight, padding=self.padding)
        return self.conv2d(x) + self.bias

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return [self.dims_out]
