r"""Coupling blocks: NICE, RealNVP, Glow, GIN, one-sided and condition-only affine couplings.

Every block splits its single input along the channel dim (dim 1 with batch), so it works on vectors
``(D,)`` with fully connected subnets and on images ``(C, H, W)`` with convolutional subnets. Conditions
(``dims_c``) are concatenated to each subnet's input along the channels; their other dims must equal the
input's.

Initialisation: after building each subnet, the parameters of its last layer (the last module that
owns parameters) are multiplied by ``subnet_init_scale`` (default 0.1). Every coupling then starts close
to, but not exactly at, the identity: deep chains of default blocks stay numerically tame (FrEIA's
32-block Glow chain reaches ``|z| ~ 1e15``), while every parameter still receives a gradient from the
first step on (Glow's zero initialisation, ``subnet_init_scale=0``, leaves the inner layers without
gradient until the last layer has moved). ``subnet_init_scale=1`` opts out and keeps the subnet as built.

Differences from FrEIA (all blocks of this file):

* ``subnet_init_scale`` (above) is new; its default 0.1 makes fresh blocks start nearer the identity.
* ``split_len`` must leave at least one channel in each half (FrEIA accepts an empty half and fails
  later); a condition whose non-channel dims differ from the input's raises ``ValueError`` naming both
  shapes (FrEIA: a bare ``assert``); a conditional block called without conditions says so.
* With ``jac=False`` no log-det is computed and ``None`` is returned. NICE and GIN return an exact
  0-dim zero tensor as log-det.
* Each coupling's scale sign and clamp constants are folded into one multiplication, and the input is
  split with a single ``chunk``/``split``: fewer kernels, the same function. Subnets keep FrEIA's
  attribute names, so FrEIA state dicts load and give the same outputs (to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from ._coupling_tools import (
    DEFAULT_SUBNET_INIT_SCALE,
    append_condition,
    build_subnet,
    check_condition_dims,
    resolve_clamp,
    resolve_split_len,
    scale_and_shift,
    single_input,
)
from .base import InvertibleModule, Shape, normalize_shapes

__all__ = [
    "AffineCouplingOneSided",
    "ConditionalAffineTransform",
    "GINCouplingBlock",
    "GLOWCouplingBlock",
    "NICECouplingBlock",
    "RNVPCouplingBlock",
]

SubnetConstructor = Callable[..., nn.Module]
ClampActivation = str | Callable[[Tensor], Tensor]


class _Coupling(InvertibleModule):
    """Shape checks, channel split and conditioning shared by all coupling blocks."""

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None,
        split_len: float | int | None,
        subnet_init_scale: float,
        subnet_kwargs: dict | None,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input(self.dims_in, type(self).__name__)
        check_condition_dims(shape, self.dims_c, type(self).__name__)
        self.channels = shape[0]
        self.ndims = len(shape)
        self.conditional = bool(self.dims_c)
        self.condition_length = sum(dims[0] for dims in self.dims_c)
        if split_len is not None:
            self.split_len1, self.split_len2 = resolve_split_len(split_len, self.channels, type(self).__name__)
        self._sum_dims = tuple(range(1, self.ndims + 1))
        self._subnet_init_scale = subnet_init_scale
        self._subnet_kwargs = subnet_kwargs

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # chunk is the cheapest split when both halves are equal
        if self.split_len1 == self.split_len2:
            return x.chunk(2, 1)
        return x.split((self.split_len1, self.split_len2), 1)

    def _subnet(self, subnet_constructor: SubnetConstructor | None, c_in: int, c_out: int) -> nn.Module:
        return build_subnet(
            subnet_constructor,
            c_in,
            c_out,
            self._subnet_init_scale,
            type(self).__name__,
            self._subnet_kwargs,
        )

    def _subnet_input(self, u: Tensor, c: Sequence[Tensor] | None) -> Tensor:
        return append_condition(u, c, type(self).__name__) if self.conditional else u

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The output has the input's shape."""
        return [single_input(normalize_shapes(input_dims), type(self).__name__)]


class _AffineCoupling(_Coupling):
    """Soft-clamped affine transformation ``y = x * exp(s) + t`` with exact log-det ``sum(s)``."""

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None,
        clamp: float,
        clamp_activation: ClampActivation,
        split_len: float | int | None,
        subnet_init_scale: float,
        subnet_kwargs: dict | None,
    ):
        super().__init__(dims_in, dims_c, split_len, subnet_init_scale, subnet_kwargs)
        self.clamp = clamp
        self._bounded, factor = resolve_clamp(clamp, clamp_activation, type(self).__name__)
        # 0-dim tensors multiply faster than Python floats, which are wrapped anew on every call; the
        # reverse pass uses the negated factor, sparing a negation.
        self.register_buffer("_clamp_factor", torch.tensor(factor), persistent=False)
        self.register_buffer("_negative_clamp_factor", torch.tensor(-factor), persistent=False)

    def _log_scale(self, raw_scale: Tensor, rev: bool) -> Tensor:
        return self._bounded(raw_scale) * (self._negative_clamp_factor if rev else self._clamp_factor)

    def _affine(
        self, x: Tensor, raw_scale: Tensor, shift: Tensor, rev: bool, jac: bool
    ) -> tuple[Tensor, Tensor | None]:
        log_scale = self._log_scale(raw_scale, rev)
        y = scale_and_shift(x, log_scale, shift, rev)
        return y, (log_scale.sum(self._sum_dims) if jac else None)


class _TwoSidedCoupling(_Coupling):
    """Transforms the first half from the second, then the second from the new first half."""

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        x1, x2 = self._split(x_or_z[0])
        if rev:
            y2, log_det2 = self._transform2(x2, self._subnet_input(x1, c), rev, jac)
            y1, log_det1 = self._transform1(x1, self._subnet_input(y2, c), rev, jac)
        else:
            y1, log_det1 = self._transform1(x1, self._subnet_input(x2, c), rev, jac)
            y2, log_det2 = self._transform2(x2, self._subnet_input(y1, c), rev, jac)
        return (torch.cat((y1, y2), 1),), (log_det1 + log_det2 if jac else None)

    def _transform1(self, x1: Tensor, u2: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _transform2(self, x2: Tensor, u1: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError


class NICECouplingBlock(_Coupling):
    r"""Additive coupling of NICE (Dinh et al., 2014, "NICE: Non-linear Independent Components Estimation").

    With the input split along the channels into :math:`x_1, x_2`:

    .. math::

        y_1 = x_1 + F(x_2, c), \qquad y_2 = x_2 + G(y_1, c), \qquad \log|\det J| = 0.

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``; builds ``F`` and ``G``.
        split_len: channels of :math:`x_1`, as a fraction of the channels or an int count.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to each subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = NICECouplingBlock([(6,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
        >>> (z,), log_det = block([torch.randn(4, 6)])
        >>> z.shape, float(log_det)
        (torch.Size([4, 6]), 0.0)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        split_len: float | int = 0.5,
        subnet_kwargs: dict | None = None,
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
    ):
        super().__init__(dims_in, dims_c, split_len, subnet_init_scale, subnet_kwargs)
        self.F = self._subnet(subnet_constructor, self.split_len2 + self.condition_length, self.split_len1)
        self.G = self._subnet(subnet_constructor, self.split_len1 + self.condition_length, self.split_len2)

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        # Written out rather than through _TwoSidedCoupling's per-half hooks: additive halves need no
        # per-half log-dets, so the call makes one zero instead of two zeros and their sum.
        x1, x2 = self._split(x_or_z[0])
        if rev:
            y2 = x2 - self.G(self._subnet_input(x1, c))
            y1 = x1 - self.F(self._subnet_input(y2, c))
        else:
            y1 = x1 + self.F(self._subnet_input(x2, c))
            y2 = x2 + self.G(self._subnet_input(y1, c))
        return (torch.cat((y1, y2), 1),), (y1.new_zeros(()) if jac else None)


class RNVPCouplingBlock(_TwoSidedCoupling, _AffineCoupling):
    r"""Two-sided affine coupling of RealNVP (Dinh et al., 2016, "Density estimation using Real NVP").

    With the input split along the channels into :math:`x_1, x_2` and the soft clamp
    :math:`\sigma(u) = \mathrm{clamp}\cdot\mathrm{activation}(u)`:

    .. math::

        y_1 = x_1 \odot e^{\sigma(s_2(x_2, c))} + t_2(x_2, c), \qquad
        y_2 = x_2 \odot e^{\sigma(s_1(y_1, c))} + t_1(y_1, c),

    and :math:`\log|\det J|` is the sum of both clamped log-scales. Scales and shifts come from four
    separate subnets (``subnet_s1``, ``subnet_t1``, ``subnet_s2``, ``subnet_t2``).

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``.
        clamp: largest absolute log-scale; each dimension is scaled by at most ``exp(±clamp)``.
        clamp_activation: ``"ATAN"`` (:math:`0.636\arctan`), ``"TANH"``, ``"SIGMOID"``
            (:math:`2\,\mathrm{sigmoid}(u) - 1`) or a callable mapping into [-1, 1].
        split_len: channels of :math:`x_1`, as a fraction of the channels or an int count.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to each subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = RNVPCouplingBlock([(6,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
        >>> x = torch.randn(4, 6)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> log_det.shape, torch.allclose(x_back, x, atol=1e-6)
        (torch.Size([4]), True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        clamp_activation: ClampActivation = "ATAN",
        split_len: float | int = 0.5,
        subnet_kwargs: dict | None = None,
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
    ):
        super().__init__(
            dims_in, dims_c, clamp, clamp_activation, split_len, subnet_init_scale, subnet_kwargs
        )
        in1, in2 = self.split_len1 + self.condition_length, self.split_len2 + self.condition_length
        self.subnet_s1 = self._subnet(subnet_constructor, in1, self.split_len2)
        self.subnet_t1 = self._subnet(subnet_constructor, in1, self.split_len2)
        self.subnet_s2 = self._subnet(subnet_constructor, in2, self.split_len1)
        self.subnet_t2 = self._subnet(subnet_constructor, in2, self.split_len1)

    def _transform1(self, x1: Tensor, u2: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        return self._affine(x1, self.subnet_s2(u2), self.subnet_t2(u2), rev, jac)

    def _transform2(self, x2: Tensor, u1: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        return self._affine(x2, self.subnet_s1(u1), self.subnet_t1(u1), rev, jac)


class GLOWCouplingBlock(_TwoSidedCoupling, _AffineCoupling):
    r"""Two-sided affine coupling of Glow (Kingma & Dhariwal, 2018, "Glow: Generative Flow with
    Invertible 1x1 Convolutions").

    Like :class:`RNVPCouplingBlock`, but one subnet per half predicts scale and shift together:

    .. math::

        [s_2, t_2] = \mathrm{subnet2}(x_2, c), \quad y_1 = x_1 \odot e^{\sigma(s_2)} + t_2, \qquad
        [s_1, t_1] = \mathrm{subnet1}(y_1, c), \quad y_2 = x_2 \odot e^{\sigma(s_1)} + t_1,

    with the soft clamp :math:`\sigma(u) = \mathrm{clamp}\cdot\mathrm{activation}(u)` and
    :math:`\log|\det J| = \sum \sigma(s_1) + \sum \sigma(s_2)`. Only the coupling: combine it with
    permutations or use :class:`AllInOneBlock` for ActNorm and permutation in one block.

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``.
        clamp: largest absolute log-scale; each dimension is scaled by at most ``exp(±clamp)``.
        clamp_activation: ``"ATAN"`` (:math:`0.636\arctan`), ``"TANH"``, ``"SIGMOID"``
            (:math:`2\,\mathrm{sigmoid}(u) - 1`) or a callable mapping into [-1, 1].
        split_len: channels of :math:`x_1`, as a fraction of the channels or an int count.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to each subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> conv = lambda i, o: nn.Conv2d(i, o, 3, padding=1)
        >>> block = GLOWCouplingBlock([(4, 6, 6)], [(2, 6, 6)], subnet_constructor=conv)
        >>> x, c = torch.randn(3, 4, 6, 6), torch.randn(3, 2, 6, 6)
        >>> (z,), log_det = block([x], [c])
        >>> (x_back,), log_det_rev = block([z], [c], rev=True)
        >>> z.shape, torch.allclose(x_back, x, atol=1e-6), torch.allclose(log_det, -log_det_rev)
        (torch.Size([3, 4, 6, 6]), True, True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        clamp_activation: ClampActivation = "ATAN",
        split_len: float | int = 0.5,
        subnet_kwargs: dict | None = None,
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
    ):
        super().__init__(
            dims_in, dims_c, clamp, clamp_activation, split_len, subnet_init_scale, subnet_kwargs
        )
        in1, in2 = self.split_len1 + self.condition_length, self.split_len2 + self.condition_length
        self.subnet1 = self._subnet(subnet_constructor, in1, 2 * self.split_len2)
        self.subnet2 = self._subnet(subnet_constructor, in2, 2 * self.split_len1)

    def _transform1(self, x1: Tensor, u2: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        raw_scale, shift = self.subnet2(u2).chunk(2, 1)
        return self._affine(x1, raw_scale, shift, rev, jac)

    def _transform2(self, x2: Tensor, u1: Tensor, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        raw_scale, shift = self.subnet1(u1).chunk(2, 1)
        return self._affine(x2, raw_scale, shift, rev, jac)


class GINCouplingBlock(GLOWCouplingBlock):
    r"""Volume-preserving Glow coupling of GIN (Sorrenson et al., 2020, "Disentanglement by Nonlinear
    ICA with General Incompressible-flow Networks (GIN)").

    As :class:`GLOWCouplingBlock`, but each clamped log-scale has its mean over the channels
    subtracted, :math:`\tilde s = \sigma(s) - \mathrm{mean}_\mathrm{channels}\,\sigma(s)`, so every
    position keeps its volume and :math:`\log|\det J| = 0` exactly. The block still rescales
    individual dimensions, which makes it more expressive than NICE.

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``.
        clamp: bound of the clamped log-scale before centring.
        clamp_activation: ``"ATAN"``, ``"TANH"``, ``"SIGMOID"`` or a callable mapping into [-1, 1].
        split_len: channels of :math:`x_1`, as a fraction of the channels or an int count.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to each subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = GINCouplingBlock([(6,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
        >>> (z,), log_det = block([torch.randn(4, 6)])
        >>> z.shape, float(log_det)
        (torch.Size([4, 6]), 0.0)
    """

    def _log_scale(self, raw_scale: Tensor, rev: bool) -> Tensor:
        log_scale = super()._log_scale(raw_scale, rev)
        return log_scale - log_scale.mean(1, keepdim=True)

    def _affine(
        self, x: Tensor, raw_scale: Tensor, shift: Tensor, rev: bool, jac: bool
    ) -> tuple[Tensor, Tensor | None]:
        y, _ = super()._affine(x, raw_scale, shift, rev, jac=False)
        return y, (x.new_zeros(()) if jac else None)


class AffineCouplingOneSided(_AffineCoupling):
    r"""One-sided affine coupling: half of a :class:`GLOWCouplingBlock`, as in RealNVP (Dinh et al., 2016).

    .. math::

        [s, t] = \mathrm{subnet}(x_1, c), \qquad y_1 = x_1, \qquad
        y_2 = x_2 \odot e^{\sigma(s)} + t, \qquad \log|\det J| = \sum \sigma(s).

    Follow it with a permutation so that every dimension gets transformed.

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``.
        clamp: largest absolute log-scale; each dimension is scaled by at most ``exp(±clamp)``.
        clamp_activation: ``"ATAN"``, ``"TANH"``, ``"SIGMOID"`` or a callable mapping into [-1, 1].
        split_len: channels of the passive half :math:`x_1`, as a fraction or an int count.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to the subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = AffineCouplingOneSided([(5,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
        >>> x = torch.randn(2, 5)
        >>> (z,), log_det = block([x])
        >>> torch.equal(z[:, :2], x[:, :2]), log_det.shape
        (True, torch.Size([2]))
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        clamp_activation: ClampActivation = "ATAN",
        split_len: float | int = 0.5,
        subnet_kwargs: dict | None = None,
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
    ):
        super().__init__(
            dims_in, dims_c, clamp, clamp_activation, split_len, subnet_init_scale, subnet_kwargs
        )
        self.subnet = self._subnet(
            subnet_constructor, self.split_len1 + self.condition_length, 2 * self.split_len2
        )

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        x1, x2 = self._split(x_or_z[0])
        raw_scale, shift = self.subnet(self._subnet_input(x1, c)).chunk(2, 1)
        y2, log_det = self._affine(x2, raw_scale, shift, rev, jac)
        return (torch.cat((x1, y2), 1),), log_det


class ConditionalAffineTransform(_AffineCoupling):
    r"""Affine map of the whole input whose scale and shift come from the condition only, as the
    conditioning layers of SPADE (Park et al., 2019, "Semantic Image Synthesis with Spatially-Adaptive
    Normalization").

    .. math::

        [s, t] = \mathrm{subnet}(c), \qquad y = x \odot e^{\sigma(s)} + t, \qquad
        \log|\det J| = \sum \sigma(s).

    Args:
        dims_in: one input shape, ``(D,)`` or ``(C, H, W)``.
        dims_c: condition shapes (required); all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``, called with the condition channels and
            twice the input channels.
        clamp: largest absolute log-scale; each dimension is scaled by at most ``exp(±clamp)``.
        clamp_activation: ``"ATAN"``, ``"TANH"``, ``"SIGMOID"`` or a callable mapping into [-1, 1].
        split_len: accepted for compatibility with FrEIA and unused: the whole input is transformed.
        subnet_kwargs: extra keyword arguments for ``subnet_constructor``.
        subnet_init_scale: factor applied to the subnet's last layer (see the module docstring).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = ConditionalAffineTransform([(4,)], [(3,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
        >>> (z,), log_det = block([torch.randn(2, 4)], [torch.randn(2, 3)])
        >>> z.shape, log_det.shape
        (torch.Size([2, 4]), torch.Size([2]))
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        clamp_activation: ClampActivation = "ATAN",
        split_len: float | int = 0.5,
        subnet_kwargs: dict | None = None,
        subnet_init_scale: float = DEFAULT_SUBNET_INIT_SCALE,
    ):
        super().__init__(dims_in, dims_c, clamp, clamp_activation, None, subnet_init_scale, subnet_kwargs)
        if not self.conditional:
            raise ValueError(
                "ConditionalAffineTransform computes its scale and shift from the condition only, "
                "so it needs dims_c, e.g. dims_c=[(3,)]; got none"
            )
        self.subnet = self._subnet(subnet_constructor, self.condition_length, 2 * self.channels)

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        if not c:
            raise ValueError("ConditionalAffineTransform was called without conditions c")
        condition = c[0] if len(c) == 1 else torch.cat(tuple(c), 1)
        raw_scale, shift = self.subnet(condition).chunk(2, 1)
        y, log_det = self._affine(x_or_z[0], raw_scale, shift, rev, jac)
        return (y,), log_det
