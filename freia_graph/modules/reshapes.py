"""Reshapes: flattening, arbitrary reshapes, and the 2x2 space-to-depth transforms (i-RevNet, Haar)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ._coupling_tools import BackpropFn, FastBackward, fast_backward_fits
from ._state_dict_compat import Entries, register_layout_conversion
from .base import InvertibleModule, Shape, normalize_shapes
from .permutations import single_input_shape
from .topology import one_input_shape

__all__ = [
    "Flatten",
    "Reshape",
    "IRevNetDownsampling",
    "IRevNetUpsampling",
    "HaarDownsampling",
    "HaarUpsampling",
]


def _target_shape(output_dims: object) -> Shape:
    if output_dims is None:
        raise ValueError("Reshape needs output_dims, the output shape without batch, e.g. (3, 8, 8)")
    if isinstance(output_dims, int) and not isinstance(output_dims, bool):
        output_dims = (output_dims,)
    return normalize_shapes([output_dims], "output_dims")[0]


class Reshape(InvertibleModule):
    r"""Reshape each sample to a given shape (row-major order); the inverse reshapes back.

    .. math:: z = \operatorname{reshape}(x, \text{output\_dims}), \qquad \log|\det J| = 0

    A topology operation from FrEIA (Ardizzone et al., 2018). The result is not spatially meaningful
    for images, e.g. (3, 32, 32) -> (12, 16, 16); use :class:`IRevNetDownsampling` or
    :class:`HaarDownsampling` for that.

    Args:
        dims_in: one input shape, without batch.
        dims_c: unused; must be empty.
        output_dims: the output shape, without batch; must hold as many elements as the input.
        target_dim: deprecated name of ``output_dims`` (warns).

    Differences from FrEIA: ``target_dim`` warns with DeprecationWarning (not UserWarning), and giving
    both names is an error; reshapes work on non-contiguous inputs.

    Example:
        >>> reshape = Reshape([(3, 4, 4)], output_dims=(12, 2, 2))
        >>> reshape.output_dims(reshape.dims_in)
        [(12, 2, 2)]
        >>> (z,), log_det = reshape([torch.randn(5, 3, 4, 4)])
        >>> z.shape, log_det
        (torch.Size([5, 12, 2, 2]), 0.0)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        output_dims: Iterable[int] | None = None,
        target_dim: Iterable[int] | None = None,
    ):
        super().__init__(dims_in, dims_c)
        if target_dim is not None:
            warnings.warn("Reshape(target_dim=...) is deprecated; use output_dims=...", DeprecationWarning,
                          stacklevel=2)
            if output_dims is not None:
                raise ValueError(f"Reshape got both output_dims={output_dims!r} and its deprecated name "
                                 f"target_dim={target_dim!r}; pass only output_dims")
            output_dims = target_dim
        self.input_shape = single_input_shape(self)
        self.output_shape = _target_shape(output_dims)
        self._check_sizes(self.input_shape)

    def _check_sizes(self, input_shape: Shape) -> None:
        if math.prod(input_shape) != math.prod(self.output_shape):
            raise ValueError(
                f"{type(self).__name__} cannot reshape {input_shape} ({math.prod(input_shape)} elements) "
                f"to {self.output_shape} ({math.prod(self.output_shape)} elements)"
            )

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], float]:
        x = x_or_z[0]
        return (x.reshape(x.shape[0], *(self.input_shape if rev else self.output_shape)),), 0.0

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        self._check_sizes(one_input_shape(input_dims, type(self).__name__))
        return [self.output_shape]


class Flatten(Reshape):
    r"""Flatten each sample to a vector (row-major order); the inverse restores the shape.

    .. math:: z = \operatorname{vec}(x), \qquad \log|\det J| = 0

    A topology operation from FrEIA (Ardizzone et al., 2018).

    Args:
        dims_in: one input shape, without batch.
        dims_c: unused; must be empty.

    Example:
        >>> flatten = Flatten([(3, 4, 4)])
        >>> flatten.output_dims(flatten.dims_in)
        [(48,)]
        >>> (z,), log_det = flatten([torch.randn(5, 3, 4, 4)])
        >>> z.shape, log_det
        (torch.Size([5, 48]), 0.0)
    """

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]] | None = None):
        shapes = normalize_shapes(dims_in, "dims_in")
        super().__init__(shapes, dims_c, output_dims=(math.prod(shapes[0]) if shapes else 1,))


def _downsampled_shape(shape: Shape, owner: str) -> Shape:
    """(C, H, W) -> (4C, H/2, W/2); H and W must be even."""
    if len(shape) != 3 or shape[1] % 2 or shape[2] % 2:
        raise ValueError(f"{owner} needs an image shape (C, H, W) with even H and W, got {shape}")
    channels, height, width = shape
    return (4 * channels, height // 2, width // 2)


def _upsampled_shape(shape: Shape, owner: str) -> Shape:
    """(4C, H, W) -> (C, 2H, 2W); the channels must be a multiple of 4."""
    if len(shape) != 3 or shape[0] % 4:
        raise ValueError(f"{owner} needs an image shape (C, H, W) with C a multiple of 4, got {shape}")
    channels, height, width = shape
    return (channels // 4, 2 * height, 2 * width)


def _group_by_position(x: Tensor, channels: int) -> Tensor:
    """Reorder channels ``4c + k`` (k-th of four per input channel c) to ``k * channels + c``."""
    return x.unflatten(1, (channels, 4)).transpose(1, 2).flatten(1, 2)


def _group_by_channel(x: Tensor, channels: int) -> Tensor:
    """Undo :func:`_group_by_position`."""
    return x.unflatten(1, (4, channels)).transpose(1, 2).flatten(1, 2)


class _SpaceToDepth(InvertibleModule):
    """Plumbing shared by the 2x2 downsamplings (``upsamples=False``) and their upsampling twins.

    Subclasses give ``_down`` (fine image -> coarse image with 4x channels), its inverse ``_up``, and
    ``_down_log_det_per_element``, the log-det of ``_down`` per element of the image.
    """

    upsamples: ClassVar[bool] = False

    def __init__(self, dims_in: Iterable[Iterable[int]], dims_c: Iterable[Iterable[int]] | None = None):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        if self.upsamples:
            shape = _upsampled_shape(shape, type(self).__name__)
        _downsampled_shape(shape, type(self).__name__)
        self.channels = shape[0]
        self._down_log_det_per_element = 0.0

    def _down(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _up(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def _down_gain(self) -> float:
        """``g`` such that ``_down`` is ``g`` times an orthogonal map (so its transpose is ``g**2 _up``)."""
        return 1.0

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], float]:
        x = x_or_z[0]
        log_det = x.shape[1:].numel() * self._down_log_det_per_element
        if rev != self.upsamples:
            return (self._up(x),), -log_det
        return (self._down(x),), log_det

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        """Memory-saving backprop's fast path: ``_down`` is ``g`` times an orthogonal map, so the input is
        rebuilt by the opposite resampling and the input's gradient is the opposite resampling of the
        output's, scaled by ``g**2`` (``1 / g**2`` after an upsampling); the log-det is constant. No
        recomputation, no autograd call. See ``GLOWCouplingBlock.memory_saving_backward`` for the protocol;
        None (the generic path) for a subclass that changes the maths.

        Example:
            >>> haar = HaarDownsampling([(1, 2, 2)], rebalance=0.5)
            >>> x = torch.randn(1, 1, 2, 2)
            >>> (z,), _ = haar([x])
            >>> (x_back,), (grad_x,), _ = haar.memory_saving_backward([z], None, False, [torch.ones_like(z)],
            ...                                                       None, None)
            >>> torch.allclose(x_back, x), grad_x.flatten().tolist()
            (True, [1.0, 0.0, 0.0, 0.0])
        """
        if not fast_backward_fits(self, ("forward", "memory_saving_backward", "_down", "_up", "_down_gain")):
            return None
        y, grad_y = outputs[0], output_grads[0]
        scale = self._down_gain() ** 2
        with torch.no_grad():
            if rev != self.upsamples:  # the step upsampled: _up is _down's inverse, _down / g**2 its transpose
                x, grad_x = self._down(y), None if grad_y is None else self._down(grad_y)
                scale = 1 / scale
            else:
                x, grad_x = self._up(y), None if grad_y is None else self._up(grad_y)
            if grad_x is not None and scale != 1:
                grad_x = grad_x * scale
        return [x], [grad_x], []

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        shape = one_input_shape(input_dims, type(self).__name__)
        if self.upsamples:
            return [_upsampled_shape(shape, type(self).__name__)]
        return [_downsampled_shape(shape, type(self).__name__)]


class IRevNetDownsampling(_SpaceToDepth):
    r"""Move each 2x2 patch of pixels into the channels: (C, H, W) -> (4C, H/2, W/2).

    .. math:: z_{4c + 2i + j,\, h,\, w} = x_{c,\, 2h + i,\, 2w + j}, \qquad \log|\det J| = 0

    From i-RevNet (Jacobsen et al., 2018, "i-RevNet: Deep Invertible Networks").

    Args:
        dims_in: one image shape (C, H, W) with even H and W.
        dims_c: unused; must be empty.
        legacy_backend: channel order. If the patch pixels (top-left, top-right, bottom-left,
            bottom-right) of channel c are a_c, b_c, c_c, d_c, then False gives
            a_1, b_1, c_1, d_1, a_2, ... (as :func:`torch.nn.functional.pixel_unshuffle`) and True
            gives a_1, a_2, ..., b_1, b_2, ... (the original i-RevNet code's order).

    Differences from FrEIA: both orders are computed with exact reshapes (no convolution with a 0/1
    kernel, so an infinite or NaN pixel cannot leak into other channels). The state dict still holds
    FrEIA's constant ``downsample_kernel`` (unless ``legacy_backend``), so checkpoints move both ways
    between FrEIA and freia_graph; a loaded kernel is ignored, and state dicts without one load too.

    Example:
        >>> down = IRevNetDownsampling([(1, 2, 2)])
        >>> (z,), log_det = down([torch.arange(4.0).reshape(1, 1, 2, 2)])
        >>> z.flatten().tolist(), log_det
        ([0.0, 1.0, 2.0, 3.0], 0.0)
        >>> down.output_dims([(3, 8, 8)])
        [(12, 4, 4)]
    """

    _memory_saving_vetted = True

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        legacy_backend: bool = False,
    ):
        super().__init__(dims_in, dims_c)
        self.legacy_backend = bool(legacy_backend)
        register_layout_conversion(self, load=_drop_downsample_kernel, save=self._add_downsample_kernel)

    def _add_downsample_kernel(self, entries: Entries) -> Entries:
        if not self.legacy_backend:
            # FrEIA's conv kernel: input channel c goes to 4c + 2i + j from pixel (i, j) of each 2x2 patch
            entries["downsample_kernel"] = torch.eye(4).reshape(4, 1, 2, 2).repeat(self.channels, 1, 1, 1)
        return entries

    def _down(self, x: Tensor) -> Tensor:
        z = F.pixel_unshuffle(x, 2)
        return _group_by_position(z, self.channels) if self.legacy_backend else z

    def _up(self, z: Tensor) -> Tensor:
        if self.legacy_backend:
            z = _group_by_channel(z, self.channels)
        return F.pixel_shuffle(z, 2)


def _drop_downsample_kernel(entries: Entries) -> Entries:
    entries.pop("downsample_kernel", None)
    return entries


class IRevNetUpsampling(IRevNetDownsampling):
    r"""The inverse of :class:`IRevNetDownsampling`: (4C, H, W) -> (C, 2H, 2W).

    .. math:: z_{c,\, 2h + i,\, 2w + j} = x_{4c + 2i + j,\, h,\, w}, \qquad \log|\det J| = 0

    From i-RevNet (Jacobsen et al., 2018, "i-RevNet: Deep Invertible Networks").

    Args:
        dims_in: one image shape (C, H, W) with C a multiple of 4.
        dims_c: unused; must be empty.
        legacy_backend: channel order, as in :class:`IRevNetDownsampling`.

    Example:
        >>> up = IRevNetUpsampling([(4, 1, 1)])
        >>> (z,), log_det = up([torch.arange(4.0).reshape(1, 4, 1, 1)])
        >>> z.tolist(), log_det == 0
        ([[[[0.0, 1.0], [2.0, 3.0]]]], True)
    """

    upsamples = True


def _haar_filters(channels: int) -> Tensor:
    """The four 2x2 Haar filters (average, then differences across columns, rows, diagonals), per channel."""
    ones, signs = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
    patterns = ((ones, ones), (ones, signs), (signs, ones), (signs, signs))
    filters = [torch.outer(rows, cols) for rows, cols in patterns]
    return torch.stack(filters).unsqueeze(1).repeat(channels, 1, 1, 1)


def _check_rebalance(rebalance: object) -> float:
    if isinstance(rebalance, bool) or not isinstance(rebalance, (int, float)):
        raise TypeError(f"rebalance must be a number, got {rebalance!r}")
    if rebalance == 0 or not math.isfinite(rebalance):
        raise ValueError(f"rebalance must be a finite, non-zero number, got {rebalance!r}")
    return float(rebalance)


class HaarDownsampling(_SpaceToDepth):
    r"""Haar wavelet transform of each channel: (C, H, W) -> (4C, H/2, W/2).

    Each 2x2 patch :math:`p` of channel c becomes four coefficients
    :math:`\tfrac{r}{2} H p` (average, column, row and diagonal differences), where :math:`H` is the 4x4
    Haar matrix of ±1 entries, :math:`\tfrac12 H` is orthogonal and :math:`r` is ``rebalance``, so

    .. math:: \log|\det J| = D \log|r| \quad (D = C H W \text{ elements per sample}).

    From the Haar wavelet (Haar, 1910), as used for invertible downsampling in FrEIA and in
    Ardizzone et al., 2019, "Guided Image Generation with Conditional Invertible Neural Networks".

    Args:
        dims_in: one image shape (C, H, W) with even H and W.
        dims_c: unused; must be empty.
        order_by_wavelet: False orders the output a_1, v_1, h_1, d_1, a_2, ... (four coefficients per
            input channel); True orders it a_1, a_2, ..., v_1, v_2, ..., so that a :class:`Split` of the
            first quarter isolates the averages.
        rebalance: the factor :math:`r` (non-zero) that scales the coefficients; < 1 can stabilise
            training.

    Differences from FrEIA: the reverse pass does not modify its input in place; the log-det uses
    :math:`\log|r|`, so a negative ``rebalance`` works.

    Example:
        >>> haar = HaarDownsampling([(1, 2, 2)], rebalance=0.5)
        >>> (z,), log_det = haar([torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])])
        >>> z.flatten().tolist(), round(log_det, 4)
        ([2.5, -0.5, -1.0, 0.0], -2.7726)
    """

    _memory_saving_vetted = True

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        order_by_wavelet: bool = False,
        rebalance: float = 1.0,
    ):
        super().__init__(dims_in, dims_c)
        self.rebalance = _check_rebalance(rebalance)
        self.order_by_wavelet = bool(order_by_wavelet)
        self._down_log_det_per_element = math.log(abs(self.rebalance))
        self.register_buffer("haar_weights", _haar_filters(self.channels))

    def _down(self, x: Tensor) -> Tensor:
        z = F.conv2d(x, self.haar_weights, stride=2, groups=self.channels) * (0.5 * self.rebalance)
        return _group_by_position(z, self.channels) if self.order_by_wavelet else z

    def _up(self, z: Tensor) -> Tensor:
        if self.order_by_wavelet:
            z = _group_by_channel(z, self.channels)
        x = F.conv_transpose2d(z, self.haar_weights, stride=2, groups=self.channels)
        return x * (0.5 / self.rebalance)

    def _down_gain(self) -> float:
        return self.rebalance


class HaarUpsampling(HaarDownsampling):
    r"""The inverse Haar wavelet transform (4C, H, W) -> (C, 2H, 2W), undoing :class:`HaarDownsampling`.

    .. math:: \log|\det J| = -D \log|r| \quad (D = C H W \text{ elements per sample}).

    From the Haar wavelet (Haar, 1910), as used for invertible resampling in FrEIA.

    Args:
        dims_in: one image shape (C, H, W) with C a multiple of 4.
        dims_c: unused; must be empty.
        order_by_wavelet: the input's channel order, as in :class:`HaarDownsampling`.
        rebalance: the factor :math:`r` of the matching :class:`HaarDownsampling`.

    Example:
        >>> up = HaarUpsampling([(4, 1, 1)])
        >>> (x,), log_det = up([torch.tensor([5.0, -1.0, -2.0, 0.0]).reshape(1, 4, 1, 1)])
        >>> x.tolist(), log_det == 0
        ([[[[1.0, 2.0], [3.0, 4.0]]]], True)
    """

    upsamples = True
