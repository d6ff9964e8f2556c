"""Channel permutations and linear maps: random permutations, fixed linear maps, learned 1x1 convolutions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._coupling_tools import BackpropFn, FastBackward, fast_backward_fits, single_input
from ._state_dict_compat import Entries, register_layout_conversion, reshape_entries
from .base import InvertibleModule, Shape

__all__ = ["PermuteRandom", "FixedLinearTransform", "Fixed1x1Conv", "InvertibleConv1x1", "InvertibleLinear"]

# Matrices whose condition number exceeds this cannot be inverted reliably in float32 or float64.
_MAX_CONDITION_NUMBER = 1e12


def single_input_shape(block: InvertibleModule, allow_conditions: bool = False) -> Shape:
    """The one input shape of a block that takes exactly one tensor (and, unless allowed, no condition).

    Raises:
        ValueError: if the block got several inputs, or conditions it does not use.
    """
    name = type(block).__name__
    if block.dims_c and not allow_conditions:
        raise ValueError(f"{name} takes no conditions, but dims_c is {block.dims_c}; pass dims_c=None")
    return single_input(block.dims_in, name)


def check_optional_int(value: object, what: str) -> None:
    """Raise TypeError unless ``value`` is None or an int (bools are refused)."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise TypeError(f"{what} must be an int or None, got {value!r}")


def seeded_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded by ``seed``; with ``seed=None`` the seed is one draw from torch's global RNG.

    Drawing exactly one number keeps results reproducible under ``torch.manual_seed`` while disturbing
    the global stream as little as possible.
    """
    if seed is None:
        seed = int(torch.randint(2**62, (), dtype=torch.int64).item())
    return torch.Generator().manual_seed(seed)


class PermuteRandom(InvertibleModule):
    r"""A fixed random permutation of the channels (dimension 0 without batch) of vectors or images.

    :math:`z_{:, i} = x_{:, \pi(i)}` with a permutation :math:`\pi` drawn once at construction, as used
    between couplings since RealNVP (Dinh et al. 2017, "Density estimation using Real NVP"). The
    log-det is 0; it is returned as the Python float ``0.0`` so the hot path allocates nothing for it.

    The permutation is drawn with a private ``torch.Generator`` seeded by ``seed``, so the global random
    state is left untouched. With ``seed=None`` the seed is one integer drawn from torch's global RNG,
    which makes the permutation reproducible under ``torch.manual_seed``.

    The permutation and its inverse are buffers (``perm``, ``perm_inv``): they move with ``.to()`` and are
    saved in the ``state_dict``, so a loaded model uses the permutation it was trained with.

    Differences from FrEIA: FrEIA draws the permutation with numpy's global RNG (reseeding it when a seed
    is given) and stores it as a frozen ``nn.Parameter``; here the global RNG states are not reseeded, and
    the permutation is a buffer, so it does not show up in ``parameters()``. The same seed therefore
    gives a different permutation than in FrEIA.

    Args:
        dims_in: one shape, ``[(C,)]`` or ``[(C, H, W)]`` (any number of trailing dimensions).
        dims_c: must be empty; the block takes no conditions.
        seed: seed of the permutation, an int, or None to draw one from torch's global RNG.

    Example:
        >>> block = PermuteRandom([(4,)], seed=0)
        >>> x = torch.arange(8.0).reshape(2, 4)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> sorted(z[0].tolist()), torch.equal(x_back, x), log_det
        ([0.0, 1.0, 2.0, 3.0], True, 0.0)
    """

    perm: Tensor
    perm_inv: Tensor

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        seed: int | None = None,
    ):
        super().__init__(dims_in, dims_c)
        channels = single_input_shape(self)[0]
        check_optional_int(seed, "PermuteRandom seed")
        perm = torch.randperm(channels, generator=seeded_generator(seed))
        self.register_buffer("perm", perm)
        self.register_buffer("perm_inv", torch.argsort(perm))

    _memory_saving_vetted = True

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], float]:
        index = self.perm_inv if rev else self.perm
        return (x_or_z[0].index_select(1, index),), 0.0

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        """Memory-saving backprop's fast path: the input and its gradient are the output and its gradient
        permuted back (no recomputation, no autograd call; the log-det is constant). See
        ``GLOWCouplingBlock.memory_saving_backward`` for the protocol; None (the generic path) for a subclass
        that changes ``forward``.

        Example:
            >>> block = PermuteRandom([(3,)], seed=0)
            >>> x = torch.randn(2, 3)
            >>> (y,), _ = block([x])
            >>> (x_back,), (grad_x,), _ = block.memory_saving_backward([y], None, False, [torch.ones(2, 3)], None,
            ...                                                        backprop=None)
            >>> torch.equal(x_back, x), grad_x.shape
            (True, torch.Size([2, 3]))
        """
        if not fast_backward_fits(self, ("forward", "memory_saving_backward")):
            return None
        undo = self.perm if rev else self.perm_inv
        grad = output_grads[0]
        return [outputs[0].index_select(1, undo)], [None if grad is None else grad.index_select(1, undo)], []

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


def check_rank(block: InvertibleModule, shape: Shape, vectors: bool) -> None:
    """Raise ValueError unless ``shape`` is a vector shape (``vectors=True``) or an image-like shape."""
    name = type(block).__name__
    if vectors and len(shape) != 1:
        raise ValueError(f"{name} takes vectors, dims_in [(C,)], but got {[shape]}; for images use the 1x1 "
                         "convolution counterpart")
    if not vectors and len(shape) < 2:
        raise ValueError(f"{name} takes images, dims_in [(C, H, W)], but got {[shape]}; for vectors use the "
                         "linear counterpart")


def mix_channels(x: Tensor, matrix: Tensor) -> Tensor:
    """Multiply the channel vector (dim 1) of every sample and position by ``matrix``: ``z_c = x_c @ M^T``."""
    return (x.movedim(1, -1) @ matrix.mT).movedim(-1, 1)


def _summed_outer_product(a: Tensor, b: Tensor) -> Tensor:
    """``sum over samples and positions of a_c b_d``, a ``(C, C)`` matrix: the gradient of the matrix in
    :func:`mix_channels` given the output's gradient ``a`` and the input ``b``.

    Example:
        >>> a, b = torch.ones(2, 1, 3), torch.arange(6.0).reshape(2, 1, 3)
        >>> _summed_outer_product(a, b).item()
        15.0
    """
    if a.dim() == 2:
        return a.mT @ b
    return (a.flatten(2) @ b.flatten(2).mT).sum(0)


def as_invertible_matrix(matrix: object, channels: int, what: str) -> Tensor:
    """Check that ``matrix`` is a well-conditioned ``(channels, channels)`` tensor; return it as float."""
    if not isinstance(matrix, Tensor):
        raise TypeError(f"{what} must be a torch.Tensor of shape ({channels}, {channels}), got {matrix!r}")
    if matrix.shape != (channels, channels):
        raise ValueError(f"{what} must have shape ({channels}, {channels}), got {tuple(matrix.shape)}")
    dtype = matrix.dtype if matrix.is_floating_point() else torch.get_default_dtype()
    matrix = matrix.detach().to(dtype)
    if not torch.isfinite(matrix).all() or torch.linalg.cond(matrix.double()) > _MAX_CONDITION_NUMBER:
        raise ValueError(f"{what} must be an invertible matrix, but it is singular or nearly so")
    return matrix


def as_offset(offset: object, channels: int, dtype: torch.dtype) -> Tensor:
    """Check an optional offset of ``channels`` entries; return it as FrEIA HEAD stores it, shape ``(1, C)``,
    or a 0-dim zero for None."""
    if offset is None:
        return torch.zeros((), dtype=dtype)
    if not isinstance(offset, Tensor):
        raise TypeError(f"FixedLinearTransform b must be a torch.Tensor of shape ({channels},), "
                        f"got {offset!r}")
    if offset.numel() != channels:
        raise ValueError(f"FixedLinearTransform b must have shape ({channels},), got {tuple(offset.shape)}")
    return offset.detach().to(dtype).reshape(1, channels)


class _FixedChannelMatrix(InvertibleModule):
    r"""A fixed invertible map ``z_c = W x_c + b`` on the channel vector, inverse and log-det precomputed.

    The state dict holds FrEIA's buffers: ``M`` (:math:`W^T` for vectors, which FrEIA multiplies from the
    right; :math:`W` as a 1x1 convolution kernel for images), ``M_inv`` (the same for :math:`W^{-1}`),
    ``logDetM`` (:math:`\log|\det W|`) and, for vectors, ``b``.
    The forward pass reads non-persistent copies in the form it computes with
    (``weight``, ``weight_inverse``, ``bias``, ``log_det`` including the number of positions), derived once
    at construction and after every ``load_state_dict`` (change the FrEIA buffers only through it).
    Earlier freia_graph state dicts (which saved those copies) and FrEIA 0.2's (no ``b`` when none was
    given) load too.
    """

    M: Tensor
    M_inv: Tensor
    logDetM: Tensor
    weight: Tensor
    weight_inverse: Tensor
    bias: Tensor | None
    log_det: Tensor

    # FrEIA's ``M`` is ``weight`` transposed for vectors (it computes ``x @ M``) and ``weight`` itself as a
    # convolution kernel for images
    _stores_transpose: ClassVar[bool] = True

    def _to_or_from_stored(self, matrix: Tensor) -> Tensor:
        return matrix.mT if self._stores_transpose else matrix

    def _register_map(self, weight: Tensor, bias: Tensor | None) -> None:
        """Register FrEIA's buffers for ``z_c = weight @ x_c + bias`` (``bias`` None: no ``b`` entry)."""
        shape = self.dims_in[0]
        kernel = (shape[0], shape[0]) + (1,) * (len(shape) - 1)
        inverse = torch.linalg.inv(weight.double()).to(weight.dtype)
        self.register_buffer("M", self._to_or_from_stored(weight).reshape(kernel).contiguous())
        self.register_buffer("M_inv", self._to_or_from_stored(inverse).reshape(kernel).contiguous())
        if bias is not None:
            self.register_buffer("b", bias)
        self.register_buffer("logDetM", torch.linalg.slogdet(weight.double()).logabsdet.to(weight.dtype))
        self._derive_computing_form()
        register_layout_conversion(self, load=self._convert_layout)
        self.register_load_state_dict_post_hook(_derive_after_loading)

    def _derive_computing_form(self) -> None:
        channels, positions = self.dims_in[0][0], math.prod(self.dims_in[0][1:])
        weight, inverse = (self._to_or_from_stored(m.reshape(channels, channels)) for m in (self.M, self.M_inv))
        self.register_buffer("weight", weight.contiguous(), persistent=False)
        self.register_buffer("weight_inverse", inverse.contiguous(), persistent=False)
        own_bias = getattr(self, "b", None)
        bias = None if own_bias is None else own_bias.expand(1, channels).reshape(channels).clone()
        self.register_buffer("bias", bias, persistent=False)
        self.register_buffer("log_det", self.logDetM * positions, persistent=False)

    def _convert_layout(self, entries: Entries) -> Entries:
        if "weight" in entries and "M" not in entries:  # earlier freia_graph: the computing form itself
            entries = self._from_computing_form(entries)
        if hasattr(self, "b") and "b" not in entries:  # FrEIA 0.2 keeps no b when none was given
            entries["b"] = torch.zeros_like(self.b)
        return reshape_entries(entries, self, ("M", "M_inv", "b"))

    def _from_computing_form(self, entries: Entries) -> Entries:
        weight, weight_inverse = entries.pop("weight"), entries.pop("weight_inverse")
        bias, log_det = entries.pop("bias", None), entries.pop("log_det")
        entries.update(M=self._to_or_from_stored(weight), M_inv=self._to_or_from_stored(weight_inverse),
                       logDetM=log_det / math.prod(self.dims_in[0][1:]))
        if hasattr(self, "b") and bias is not None:
            if self.b.numel() == 1 and bias.numel() > 1 and bias.any():
                raise ValueError(f"{type(self).__name__}: the state dict has a non-zero offset b, but this block "
                                 "was built without one; build it with b=")
            entries["b"] = bias.reshape(-1)[: self.b.numel()].reshape(self.b.shape)
        return entries

    def _mix(self, matrix: Tensor, x: Tensor, bias: Tensor | None) -> Tensor:
        """``matrix @ x_c (+ bias)`` for the channel vector of every sample and position.

        Vectors take one fused ``addmm``; images are viewed as ``(N, C, positions)`` and take one batched
        product, several times faster than moving the channels last (or a 1x1 convolution) and back.
        """
        if x.dim() == 2:
            return F.linear(x, matrix, bias)
        rows = x.reshape(x.shape[0], x.shape[1], -1)
        if bias is None:
            return torch.matmul(matrix, rows).view(x.shape)
        return torch.baddbmm(bias.view(-1, 1), matrix.expand(x.shape[0], -1, -1), rows).view(x.shape)

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        if rev:
            z = x_or_z[0] if self.bias is None else x_or_z[0] - self.bias
            return (self._mix(self.weight_inverse, z, None),), -self.log_det
        return (self._mix(self.weight, x_or_z[0], self.bias),), self.log_det

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


def _derive_after_loading(module: _FixedChannelMatrix, incompatible_keys: object) -> None:
    module._derive_computing_form()


class FixedLinearTransform(_FixedChannelMatrix):
    r"""A fixed (not learned) invertible affine map of vectors, :math:`z = M x + b`.

    In batch form :math:`Z = X M^\top + b`, as in FrEIA. The inverse :math:`M^{-1}` (computed once in
    float64) and the log-det :math:`\log|\det M|` are buffers, so a call costs one matrix product. Useful
    e.g. for whitening data with a known covariance, as in FrEIA (Ardizzone et al. 2018, "Analyzing
    inverse problems with invertible neural networks").

    The state dict is FrEIA HEAD's (``M`` :math:`= M^\top`, ``M_inv``, ``b`` of shape ``(1, C)`` or a 0-dim
    zero when not given, ``logDetM``); FrEIA 0.2's (no ``b`` when not given) loads too.

    Differences from FrEIA: ``M`` is checked to be a square, well-conditioned matrix (``ValueError``
    otherwise); the matrices are buffers (as in FrEIA HEAD), not frozen parameters (FrEIA 0.2).

    Args:
        dims_in: one vector shape ``[(C,)]``.
        dims_c: must be empty.
        M: invertible matrix of shape ``(C, C)``.
        b: offset of shape ``(C,)``, or None for zero.

    Example:
        >>> M = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
        >>> block = FixedLinearTransform([(2,)], M=M, b=torch.tensor([0.0, 1.0]))
        >>> (z,), log_det = block([torch.tensor([[1.0, 2.0]])])
        >>> z.tolist(), round(log_det.item(), 4)
        ([[2.0, 4.0]], 0.6931)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        M: Tensor | None = None,
        b: Tensor | None = None,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        check_rank(self, shape, vectors=True)
        matrix = as_invertible_matrix(M, shape[0], "FixedLinearTransform M")
        self._register_map(matrix, as_offset(b, shape[0], matrix.dtype))


class Fixed1x1Conv(_FixedChannelMatrix):
    r"""A fixed (not learned) invertible 1x1 convolution, :math:`z_{:, i, j} = M^\top x_{:, i, j}`.

    The same matrix mixes the channels at every position. FrEIA's convention is kept: the convolution
    weight is :math:`M^\top`. The inverse and the log-det :math:`H W \log|\det M|` are buffers.
    1x1 convolutions come from Glow (Kingma & Dhariwal 2018, "Glow: Generative flow with invertible 1x1
    convolutions").

    The state dict is FrEIA's (``M`` as the ``(C, C, 1, 1)`` kernel :math:`M^\top`, ``M_inv``, ``logDetM``).

    Differences from FrEIA: any number of spatial dimensions (FrEIA: exactly two); ``M`` is validated.

    Args:
        dims_in: one image shape ``[(C, H, W)]`` (any number of spatial dimensions).
        dims_c: must be empty.
        M: invertible matrix of shape ``(C, C)``.

    Example:
        >>> M = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
        >>> block = Fixed1x1Conv([(2, 3, 3)], M=M)
        >>> (z,), log_det = block([torch.ones(1, 2, 3, 3)])
        >>> z[0, :, 0, 0].tolist(), round(log_det.item(), 4)
        ([1.0, 3.0], 6.2383)
    """

    _stores_transpose = False

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        M: Tensor | None = None,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        check_rank(self, shape, vectors=False)
        matrix = as_invertible_matrix(M, shape[0], "Fixed1x1Conv M")
        self._register_map(matrix.mT.contiguous(), None)


def random_orthogonal(size: int, generator: torch.Generator) -> Tensor:
    """A random orthogonal matrix (QR of a Gaussian matrix, signs fixed so it is Haar distributed)."""
    q, r = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class _LearnedChannelMatrix(InvertibleModule):
    """A learned invertible channel-mixing matrix ``W``, LU-parametrised or dense."""

    _memory_saving_vetted = True

    permutation: Tensor
    sign_s: Tensor
    identity: Tensor
    _vectors: bool

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        LU_decomposed: bool = True,
        seed: int | None = None,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        check_rank(self, shape, vectors=self._vectors)
        if not isinstance(LU_decomposed, bool):
            raise TypeError(f"{type(self).__name__} LU_decomposed must be a bool, got {LU_decomposed!r}")
        check_optional_int(seed, f"{type(self).__name__} seed")
        self.LU_decomposed = LU_decomposed
        self.positions = math.prod(shape[1:])
        dtype = torch.get_default_dtype()
        weight = random_orthogonal(shape[0], seeded_generator(seed))
        if LU_decomposed:
            self._init_lu(weight, dtype)
        else:
            self.weight = nn.Parameter(weight.to(dtype))

    def _init_lu(self, weight: Tensor, dtype: torch.dtype) -> None:
        permutation, lower, upper = torch.linalg.lu(weight)
        diagonal = torch.diagonal(upper)
        self.register_buffer("permutation", permutation.to(dtype))
        self.register_buffer("sign_s", torch.sign(diagonal).to(dtype))
        self.register_buffer("identity", torch.eye(len(diagonal), dtype=dtype))
        self.lower = nn.Parameter(lower.tril(-1).to(dtype))
        self.upper = nn.Parameter(upper.triu(1).to(dtype))
        self.log_s = nn.Parameter(diagonal.abs().log().to(dtype))

    def _lu_factors(self) -> tuple[Tensor, Tensor]:
        lower = self.lower.tril(-1) + self.identity
        upper = self.upper.triu(1) + torch.diag(self.sign_s * self.log_s.exp())
        return lower, upper

    def _weight(self) -> Tensor:
        """The matrix ``W`` (with grad)."""
        return self._lu_weight(*self._lu_factors()) if self.LU_decomposed else self.weight

    def _inverse_weight(self) -> Tensor:
        """``W^-1`` (with grad)."""
        return self._lu_inverse(*self._lu_factors()) if self.LU_decomposed else torch.linalg.inv(self.weight)

    def _lu_weight(self, lower: Tensor, upper: Tensor) -> Tensor:
        return self.permutation @ lower @ upper

    def _lu_inverse(self, lower: Tensor, upper: Tensor) -> Tensor:
        # U^-1 L^-1 P^T from two triangular solves on C x C matrices, then one product: solving at every
        # position instead costs about five times as much on CPU
        inverse = torch.linalg.solve_triangular(lower, self.permutation.mT, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, inverse, upper=True)

    def _log_det(self) -> Tensor:
        r""":math:`\log|\det W|` times the number of positions (with grad)."""
        if self.LU_decomposed:
            return self.log_s.sum() * self.positions
        return torch.linalg.slogdet(self.weight).logabsdet * self.positions

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor, ...], Tensor]:
        if rev:
            return (mix_channels(x_or_z[0], self._inverse_weight()),), -self._log_det()
        return (mix_channels(x_or_z[0], self._weight()),), self._log_det()

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        r"""Memory-saving backprop's fast path, in closed form, with no recomputation and no autograd call.

        The step is :math:`y = M x` at every position (:math:`M = W`, or :math:`W^{-1}` in reverse), so
        :math:`x = M^{-1} y`, the input's gradient is :math:`M^\top g`, and :math:`M`'s is :math:`G = \sum g
        x^\top` over samples and positions: three products over the activations, as in the normal mode's
        forward and backward. :math:`W`'s gradient is then :math:`G`, or :math:`-M^\top G M^\top` in reverse,
        plus :math:`\pm H W\, W^{-\top}` times the log-det's summed gradient; see :meth:`_lu_gradients` for
        the LU factors'. See ``GLOWCouplingBlock.memory_saving_backward`` for the protocol; None (the generic
        path) for a subclass that changes the maths, or under autocast (whose low-precision products this does
        not replay).

        Example:
            >>> from freia_graph.framework.memory_saving import Backprop
            >>> block = InvertibleConv1x1([(3, 2, 2)], seed=0)
            >>> x = torch.randn(2, 3, 2, 2)
            >>> (y,), _ = block([x])
            >>> backprop = Backprop()
            >>> (x_back,), (grad_x,), _ = block.memory_saving_backward([y], None, False, [torch.ones_like(y)],
            ...                                                        None, backprop)
            >>> torch.allclose(x_back, x, atol=1e-6), backprop.parameter_grads[id(block.lower)].shape
            (True, torch.Size([3, 3]))
        """
        methods = ("forward", "memory_saving_backward", "_weight", "_inverse_weight", "_log_det", "_lu_factors",
                   "_lu_weight", "_lu_inverse", "_lu_gradients")
        y, grad_y = outputs[0], output_grads[0]
        if not fast_backward_fits(self, methods) or torch.is_autocast_enabled(y.device.type):
            return None
        with torch.no_grad():
            if self.LU_decomposed:
                factors = self._lu_factors()
                weight, inverse = self._lu_weight(*factors), self._lu_inverse(*factors)
            else:
                weight, inverse = self.weight, torch.linalg.inv(self.weight)
            matrix, undo = (inverse, weight) if rev else (weight, inverse)
            x = mix_channels(y, undo)
            grad_x = grad_weight = None
            if grad_y is not None:
                grad_x = mix_channels(grad_y, matrix.mT)
                grad_matrix = _summed_outer_product(grad_y, x)
                grad_weight = -(matrix.mT @ grad_matrix @ matrix.mT) if rev else grad_matrix
            # the step's log-det is +-log|det W| H W
            grad_log_det = None if log_det_grad is None else log_det_grad.sum() * (-1 if rev else 1)
            if self.LU_decomposed:
                gradients = self._lu_gradients(factors, grad_weight, grad_log_det)
            else:
                if grad_log_det is not None:  # d log|det W| / dW = W^-T
                    from_log_det = inverse.mT * (grad_log_det * self.positions)
                    grad_weight = from_log_det if grad_weight is None else grad_weight + from_log_det
                gradients = [(self.weight, grad_weight)]
        for parameter, grad in gradients:
            backprop.accumulate(parameter, grad)
        return [x], [grad_x], []

    def _lu_gradients(self, factors: tuple[Tensor, Tensor], grad_weight: Tensor | None,
                      grad_log_det: Tensor | None) -> list[tuple[Tensor, Tensor | None]]:
        r"""The LU parameters' gradients, given the factors ``(L, U)``, :math:`W`'s gradient and the summed
        gradient of :math:`\log|\det W|`.

        :math:`W = P L U` gives :math:`\partial L = P^\top G U^\top` and :math:`\partial U = (P L)^\top G`;
        ``lower`` and ``upper`` take their strictly lower and upper parts, ``log_s`` the diagonal of
        :math:`\partial U` times :math:`\operatorname{sign}(s) e^{\log|s|}`, plus :math:`H W` times the
        log-det's gradient.
        """
        grad_lower = grad_upper = grad_log_s = None
        if grad_weight is not None:
            lower, upper = factors
            grad_lower = (self.permutation.mT @ grad_weight @ upper.mT).tril(-1)
            grad_u = (self.permutation @ lower).mT @ grad_weight
            grad_upper = grad_u.triu(1)
            grad_log_s = torch.diagonal(grad_u) * self.sign_s * self.log_s.exp()
        if grad_log_det is not None:
            from_log_det = (grad_log_det * self.positions).expand_as(self.log_s)
            grad_log_s = from_log_det.clone() if grad_log_s is None else grad_log_s + from_log_det
        return [(self.lower, grad_lower), (self.upper, grad_upper), (self.log_s, grad_log_s)]

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The shapes are unchanged."""
        return list(input_dims)


class InvertibleConv1x1(_LearnedChannelMatrix):
    r"""Glow's learned invertible 1x1 convolution, :math:`z_{:, i, j} = W x_{:, i, j}`.

    With ``LU_decomposed=True`` (the default) :math:`W = P L (U + \operatorname{diag}(\operatorname{sign}(s)
    e^{\log|s|}))` with a fixed permutation :math:`P`, a learned unit lower triangular :math:`L`, a learned
    strictly upper triangular :math:`U` and learned :math:`\log|s|` (Kingma & Dhariwal 2018, "Glow:
    Generative flow with invertible 1x1 convolutions"). Then :math:`\log|\det J| = H W \sum \log|s|`
    costs a sum, and the reverse pass inverts :math:`W` by two triangular solves of :math:`C \times C`
    matrices. With ``LU_decomposed=False``, :math:`W` is a dense parameter, the log-det uses ``slogdet`` and
    the reverse a matrix inverse, each per call. :math:`W` starts as a random orthogonal matrix (log-det 0), drawn with
    a private generator seeded by ``seed`` (None: one draw from torch's global RNG).

    Not in FrEIA (which has only the fixed :class:`Fixed1x1Conv`).

    Args:
        dims_in: one image shape ``[(C, H, W)]`` (any number of spatial dimensions).
        dims_c: must be empty.
        LU_decomposed: use the LU parametrisation.
        seed: seed of the initial orthogonal matrix, or None.

    Example:
        >>> block = InvertibleConv1x1([(3, 4, 4)], seed=0)
        >>> x = torch.randn(2, 3, 4, 4)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z.shape, torch.allclose(x_back, x, atol=1e-5), round(log_det.item(), 4)
        (torch.Size([2, 3, 4, 4]), True, 0.0)
    """

    _vectors = False


class InvertibleLinear(_LearnedChannelMatrix):
    r"""A learned invertible linear map of vectors, :math:`z = W x`, the dense counterpart of
    :class:`InvertibleConv1x1`.

    Same parametrisation as :class:`InvertibleConv1x1` (Kingma & Dhariwal 2018): with ``LU_decomposed=True``
    :math:`W = P L (U + \operatorname{diag}(\operatorname{sign}(s) e^{\log|s|}))`, log-det
    :math:`\sum \log|s|`, inverse by triangular solves. Initialised as a random orthogonal matrix.

    Not in FrEIA.

    Args:
        dims_in: one vector shape ``[(C,)]``.
        dims_c: must be empty.
        LU_decomposed: use the LU parametrisation.
        seed: seed of the initial orthogonal matrix, or None.

    Example:
        >>> block = InvertibleLinear([(5,)], seed=0)
        >>> (z,), log_det = block([torch.ones(2, 5)])
        >>> z.shape, round(z.norm(dim=1)[0].item(), 4), round(log_det.item(), 4)
        (torch.Size([2, 5]), 2.2361, 0.0)
    """

    _vectors = True
