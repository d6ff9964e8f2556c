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
from typing import Any

import torch
from torch import Tensor, nn

from ._coupling_tools import (
    DEFAULT_SUBNET_INIT_SCALE,
    BackpropFn,
    FastBackward,
    StageClosedForm,
    append_condition,
    build_subnet,
    cast,
    check_condition_dims,
    coupling_stage_backward,
    fast_backward_fits,
    resolve_clamp,
    resolve_split_len,
    scale_and_shift,
    single_input,
)
from .base import InvertibleModule, Shape, normalize_shapes, set_plain_attributes

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

# What the memory-saving fast path re-derives the block's maths from: a subclass overriding any of
# these (or forward) gets the generic path (see fast_backward_fits).
_FAST_BACKWARD_METHODS = (
    "forward", "memory_saving_backward", "_split", "_halves", "_join", "_subnet_input", "_stage_order",
    "_stage_coefficients", "_coefficients1", "_coefficients2", "_transform", "_prepare", "_couple", "_invert",
    "_couple_gradients", "_log_scale", "_log_det", "_join_log_dets",
)


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
        set_plain_attributes(self, channels=shape[0], ndims=len(shape), conditional=bool(self.dims_c),
                             condition_length=sum(dims[0] for dims in self.dims_c),
                             _sum_dims=tuple(range(1, len(shape) + 1)), _subnet_init_scale=subnet_init_scale,
                             _subnet_kwargs=subnet_kwargs)
        if split_len is not None:
            len1, len2 = resolve_split_len(split_len, self.channels, type(self).__name__)
            set_plain_attributes(self, split_len1=len1, split_len2=len2)

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

    def _halves(self, x: Tensor) -> tuple[Tensor, ...]:
        return self._split(x)

    def _join(self, halves: Sequence[Tensor]) -> Tensor:
        return torch.cat(tuple(halves), 1)

    def _stage_order(self, rev: bool) -> tuple[int, ...]:
        """The halves transformed, in the order a call in direction ``rev`` transforms them."""
        raise NotImplementedError

    def _stage_coefficients(self, target: int, rev: bool) -> Callable[[Tensor | None, list[Tensor]], Any]:
        """``(u, c) -> prepared coefficients`` for half ``target`` from the other half ``u`` and conditions."""
        subnet = self._coefficients1 if target == 0 else self._coefficients2
        return lambda u, c: self._prepare(subnet(self._subnet_input(u, c)), rev)

    def _coefficients1(self, u2: Tensor) -> Any:
        """The subnet output that transforms the first half, from the second (and the conditions)."""
        raise NotImplementedError

    def _coefficients2(self, u1: Tensor) -> Any:
        """The subnet output that transforms the second half, from the first (and the conditions)."""
        raise NotImplementedError

    def _prepare(self, coefficients: Any, rev: bool) -> Any:
        """What :meth:`_couple` needs from the subnet output in direction ``rev`` (e.g. the clamped log-scale)."""
        return coefficients

    def _couple(self, x: Tensor, prepared: Any, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError

    def _invert(self, prepared: Any) -> Any:
        """Prepared coefficients of direction ``rev`` turned into those of ``not rev`` (no subnet call)."""
        return prepared

    def _couple_gradients(self, y: Tensor, prepared: Any, rev: bool, grad_y: Tensor | None,
                          grad_log_det: Tensor | None) -> StageClosedForm | None:
        """``y, log_det = _couple(x, prepared, rev)`` undone and differentiated in closed form: ``x``, its
        gradient, and the roots to backpropagate into the subnet with their gradients; None to let autograd
        re-apply ``_couple`` to the ``x`` that ``_invert`` rebuilds."""
        return None

    def _transform(self, x: Tensor, coefficients: Any, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        return self._couple(x, self._prepare(coefficients, rev), rev, jac)

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        """Memory-saving backprop's fast path: rebuild the inputs and get every gradient from the outputs.

        Each stage of the coupling (a half transformed from the other half and the conditions) is undone
        last stage first with :func:`coupling_stage_backward`: its subnet runs once, with grad, and serves
        both the inversion and the recomputation, where the generic path runs it twice.

        Args:
            outputs: the block's outputs (of a call in direction ``rev``).
            c: the conditions, or None.
            rev: the direction of the call being differentiated.
            output_grads: the loss's gradient w.r.t. each output (None: zero).
            log_det_grad: the gradient w.r.t. the per-sample log-det (None: the log-det is not used).
            backprop: ``backprop(roots, root_grads, leaves, module)`` backpropagates a recomputed stage,
                returning the leaves' gradients and handling the block's parameter gradients
                (``freia_graph.framework.memory_saving.Backprop``).

        Returns:
            ``(inputs, input_grads, condition_grads)`` with ``inputs`` detached, or None where the fast path
            does not fit this block (a subclass overriding the maths, forward hooks, missing conditions):
            the caller then takes the generic path.

        Example:
            >>> from freia_graph.framework.memory_saving import Backprop
            >>> torch.manual_seed(0)
            <torch._C.Generator object at ...>
            >>> block = GLOWCouplingBlock([(4,)], subnet_constructor=lambda i, o: nn.Linear(i, o))
            >>> x = torch.randn(3, 4)
            >>> (y,), log_det = block([x])
            >>> backprop = Backprop()
            >>> inputs, input_grads, _ = block.memory_saving_backward(
            ...     [y.detach()], None, False, [torch.ones_like(y)], torch.ones(3), backprop)
            >>> torch.allclose(inputs[0], x, atol=1e-6), input_grads[0].shape, len(backprop.parameter_grads)
            (True, torch.Size([3, 4]), 4)
        """
        if not fast_backward_fits(self, _FAST_BACKWARD_METHODS) or self.conditional != bool(c):
            return None
        c = list(c or ())
        halves = list(self._halves(outputs[0]))
        grads = list(self._halves(output_grads[0])) if output_grads[0] is not None else [None] * len(halves)
        condition_grads: list[Tensor | None] = [None] * len(c)
        for target in reversed(self._stage_order(rev)):
            source = 1 - target if len(halves) == 2 else None
            x, grad_x, grad_u, grads_c = coupling_stage_backward(
                self._stage_coefficients(target, rev), self._couple, self._invert, halves[target],
                None if source is None else halves[source], c, rev, grads[target], log_det_grad, backprop, self,
                self._couple_gradients)
            halves[target], grads[target] = x, grad_x
            if source is not None:
                grads[source] = _add(grads[source], grad_u)
            condition_grads = [_add(a, b) for a, b in zip(condition_grads, grads_c)]
        input_grad = self._join([torch.zeros_like(h) if g is None else g for h, g in zip(halves, grads)])
        return [self._join(halves)], [input_grad], condition_grads

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The output has the input's shape."""
        return [single_input(normalize_shapes(input_dims), type(self).__name__)]


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


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
        bounded, factor = resolve_clamp(clamp, clamp_activation, type(self).__name__)
        set_plain_attributes(self, clamp=clamp, _bounded=bounded)
        # 0-dim tensors multiply faster than Python floats, which are wrapped anew on every call; the
        # reverse pass uses the negated factor, sparing a negation.
        self.register_buffer("_clamp_factor", torch.tensor(factor), persistent=False)
        self.register_buffer("_negative_clamp_factor", torch.tensor(-factor), persistent=False)

    def _log_scale(self, raw_scale: Tensor, rev: bool) -> Tensor:
        return self._bounded(raw_scale) * (self._negative_clamp_factor if rev else self._clamp_factor)

    def _prepare(self, coefficients: tuple[Tensor, Tensor], rev: bool) -> tuple[Tensor, Tensor]:
        raw_scale, shift = coefficients
        return self._log_scale(raw_scale, rev), shift

    def _couple(self, x: Tensor, prepared: tuple[Tensor, Tensor], rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        log_scale, shift = prepared
        return scale_and_shift(x, log_scale, shift, rev), (self._log_det(log_scale, x) if jac else None)

    def _invert(self, prepared: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        # exact: the reverse log-scale is the forward one times the negated factor
        log_scale, shift = prepared
        return -log_scale, shift

    def _couple_gradients(self, y: Tensor, prepared: tuple[Tensor, Tensor], rev: bool, grad_y: Tensor | None,
                          grad_log_det: Tensor | None) -> StageClosedForm | None:
        """``y = x e^s + t`` (reverse: ``(x - t) e^s``, ``s`` already negated) undone and differentiated in
        closed form, sharing ``e^s`` and ``y - t`` between the two. Forward: ``x = (y - t) / e^s``; ``x`` gets
        ``g e^s``, ``t`` gets ``g``, ``s`` gets ``g (y - t)``. Reverse: ``x = t + y / e^s``; ``x`` gets
        ``g e^s``, ``t`` gets ``-g e^s``, ``s`` gets ``g y``. Where the log-det is the plain sum of ``s`` (and
        ``s`` is in ``y``'s precision), its gradient is added to ``s``'s directly; otherwise it reaches ``s``
        through autograd on ``_log_det``. Autograd then runs only through the subnet and the clamp: the affine
        map is neither re-applied nor recorded."""
        log_scale, shift = prepared
        if not log_scale.shape == shift.shape == y.shape:  # broadcast coefficients: let autograd reduce
            return None
        # the log-det's gradient added to s's here, where that is what autograd does: not under autocast, where
        # the normal mode adds the two in s's low precision
        summed = type(self)._log_det is _AffineCoupling._log_det and log_scale.dtype == y.dtype
        with torch.no_grad():
            scale = torch.exp(cast(log_scale, y.dtype))
            if rev:
                x = torch.addcdiv(cast(shift, y.dtype), y, scale)
            else:
                offset = y - cast(shift, y.dtype)
                x = offset / scale
            roots, root_grads = [], []
            grad_x = grad_log_scale = None
            per_sample = grad_log_det.view(-1, *([1] * (y.dim() - 1))) if grad_log_det is not None and summed else None
            if grad_y is not None:
                grad_x = grad_y * scale
                roots.append(shift)
                root_grads.append(cast(-grad_x if rev else grad_y, shift.dtype))
                source = y if rev else offset
                grad_log_scale = grad_y * source if per_sample is None else torch.addcmul(per_sample, grad_y, source)
            elif per_sample is not None:
                grad_log_scale = per_sample.expand_as(y)
            if grad_log_scale is not None:
                roots.append(log_scale)
                root_grads.append(cast(grad_log_scale, log_scale.dtype))
        if grad_log_det is not None and not summed:
            log_det = self._log_det(log_scale, x)
            if log_det.requires_grad:
                roots.append(log_det.expand_as(grad_log_det))
                root_grads.append(grad_log_det)
        return x, grad_x, roots, root_grads

    def _log_det(self, log_scale: Tensor, x: Tensor) -> Tensor:
        return log_scale.sum(self._sum_dims)

    def _join_log_dets(self, log_det1: Tensor | None, log_det2: Tensor | None, y: Tensor, jac: bool) -> Tensor | None:
        return log_det1 + log_det2 if jac else None


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
            y2, log_det2 = self._transform(x2, self._coefficients2(self._subnet_input(x1, c)), rev, jac)
            y1, log_det1 = self._transform(x1, self._coefficients1(self._subnet_input(y2, c)), rev, jac)
        else:
            y1, log_det1 = self._transform(x1, self._coefficients1(self._subnet_input(x2, c)), rev, jac)
            y2, log_det2 = self._transform(x2, self._coefficients2(self._subnet_input(y1, c)), rev, jac)
        return (torch.cat((y1, y2), 1),), self._join_log_dets(log_det1, log_det2, y1, jac)

    def _stage_order(self, rev: bool) -> tuple[int, ...]:
        return (1, 0) if rev else (0, 1)


class NICECouplingBlock(_TwoSidedCoupling):
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

    _memory_saving_vetted = True

    def _coefficients1(self, u2: Tensor) -> Tensor:
        return self.F(u2)

    def _coefficients2(self, u1: Tensor) -> Tensor:
        return self.G(u1)

    def _couple(self, x: Tensor, shift: Tensor, rev: bool, jac: bool) -> tuple[Tensor, None]:
        # additive halves have no per-half log-det: the call makes one zero (below), not two and a sum
        return (x - shift if rev else x + shift), None

    def _join_log_dets(self, log_det1: Tensor | None, log_det2: Tensor | None, y: Tensor, jac: bool) -> Tensor | None:
        return y.new_zeros(()) if jac else None


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

    _memory_saving_vetted = True

    def _coefficients1(self, u2: Tensor) -> tuple[Tensor, Tensor]:
        return self.subnet_s2(u2), self.subnet_t2(u2)

    def _coefficients2(self, u1: Tensor) -> tuple[Tensor, Tensor]:
        return self.subnet_s1(u1), self.subnet_t1(u1)


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

    _memory_saving_vetted = True

    def _coefficients1(self, u2: Tensor) -> tuple[Tensor, ...]:
        return self.subnet2(u2).chunk(2, 1)

    def _coefficients2(self, u1: Tensor) -> tuple[Tensor, ...]:
        return self.subnet1(u1).chunk(2, 1)


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

    _memory_saving_vetted = True

    def _log_scale(self, raw_scale: Tensor, rev: bool) -> Tensor:
        log_scale = super()._log_scale(raw_scale, rev)
        return log_scale - log_scale.mean(1, keepdim=True)

    def _log_det(self, log_scale: Tensor, x: Tensor) -> Tensor:
        return x.new_zeros(())


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
        y2, log_det = self._transform(x2, self._coefficients2(self._subnet_input(x1, c)), rev, jac)
        return (torch.cat((x1, y2), 1),), log_det

    _memory_saving_vetted = True

    def _coefficients2(self, u1: Tensor) -> tuple[Tensor, ...]:
        return self.subnet(u1).chunk(2, 1)

    def _stage_order(self, rev: bool) -> tuple[int, ...]:
        return (1,)


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
        y, log_det = self._transform(x_or_z[0], self._coefficients1(self._subnet_input(None, c)), rev, jac)
        return (y,), log_det

    _memory_saving_vetted = True

    def _subnet_input(self, u: Tensor | None, c: Sequence[Tensor] | None) -> Tensor:
        # the condition alone: the whole input is transformed, no half conditions the other
        return c[0] if len(c) == 1 else torch.cat(tuple(c), 1)

    def _coefficients1(self, u: Tensor) -> tuple[Tensor, ...]:
        return self.subnet(u).chunk(2, 1)

    def _halves(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x,)

    def _join(self, halves: Sequence[Tensor]) -> Tensor:
        return halves[0]

    def _stage_order(self, rev: bool) -> tuple[int, ...]:
        return (0,)
