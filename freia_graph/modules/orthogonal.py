"""Orthogonal maps: a learned rotation with scaling and bias, and products of Householder reflections."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from ._coupling_tools import check_number
from ._state_dict_compat import Entries, register_layout_conversion
from .base import InvertibleModule, Shape
from .permutations import single_input_shape

__all__ = ["OrthogonalTransform", "HouseholderPerm"]


def _vector_width(block: InvertibleModule, allow_conditions: bool) -> int:
    """The width of the block's single vector input, or a ValueError naming the block."""
    shape = single_input_shape(block, allow_conditions)
    if len(shape) != 1:
        raise ValueError(f"{type(block).__name__} takes vectors, dims_in [(D,)], but got {block.dims_in}")
    return shape[0]


class _SkewExp(torch.autograd.Function):
    r"""The exponential :math:`R = e^S` of a real skew-symmetric matrix :math:`S`, through its eigenvalues.

    :math:`S` is normal with eigenvalues :math:`i\theta_k`: the Hermitian :math:`-iS = U \operatorname{diag}(\theta)
    U^H` gives :math:`e^S = U \operatorname{diag}(e^{i\theta}) U^H` with a unitary :math:`U`, as accurate as
    ``torch.linalg.matrix_exp`` (both to rounding). The gradient is the adjoint Fréchet derivative,
    :math:`U (\Phi \circ U^H G U) U^H` with the divided differences :math:`\Phi_{jk}` of :math:`e^{-i\theta}`,
    written as :math:`e^{-i(\theta_j + \theta_k)/2} \operatorname{sinc}((\theta_j - \theta_k)/2)` so that
    equal eigenvalues need no special case. One small ``eigh`` replaces the scaling-and-squaring series of
    ``matrix_exp`` and, in backward, the exponential of a doubled block matrix: 1.8x faster for 16x16.
    """

    @staticmethod
    def forward(ctx, skew: Tensor) -> Tensor:  # noqa: D102 - documented on the class
        theta, vectors = torch.linalg.eigh(skew * -1j)
        ctx.save_for_backward(theta, vectors)
        return ((vectors * torch.polar(torch.ones_like(theta), theta)) @ vectors.mH).real

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102 - documented on the class
        theta, vectors = ctx.saved_tensors
        column, row = theta[:, None], theta[None, :]
        divided_differences = torch.polar(torch.sinc((column - row) * (0.5 / math.pi)), (column + row) * -0.5)
        inner = vectors.mH @ grad.to(vectors.dtype) @ vectors
        return (vectors @ (divided_differences * inner) @ vectors.mH).real


class OrthogonalTransform(InvertibleModule):
    r"""A learned orthogonal matrix followed by a bias and a clamped, learned per-feature scaling.

    .. math::

        z = \left(x R + b\right) \odot \exp\!\left(\tfrac{2\alpha}{\pi}\arctan(s / \alpha)\right),
        \qquad \log|\det J| = \sum_i \tfrac{2\alpha}{\pi}\arctan(s_i / \alpha),

    with row vectors :math:`x`, bias :math:`b`, scaling parameters :math:`s` and :math:`\alpha` = ``clamp``,
    which bounds each log-scale to :math:`(-\alpha, \alpha)`. The matrix is parametrised exactly orthogonal,
    :math:`R = \exp(A - A^\top)` with a learned :math:`A` (Lezcano-Casado & Martinez-Rubio 2019, "Cheap
    orthogonal constraints in neural networks"), drawn at random (entries of variance :math:`1/d`) so that
    :math:`R` starts as a random rotation. :math:`|\det R| = 1` at every step and in every dtype, so the
    log-det above is exact. The block itself comes from FrEIA.

    Differences from FrEIA: FrEIA learns :math:`R` as a free matrix and re-orthogonalises it in place by
    Gram-Schmidt from a backward hook every ~``correction_interval`` steps, so between corrections the
    returned log-det ignores :math:`\log|\det R| \neq 0`. Here :math:`R` is orthogonal by construction, which
    leaves ``correction_interval`` without effect (it is accepted and validated so FrEIA programs run), keeps
    state out of ``forward`` and makes the block traceable. The clamp uses :math:`2/\pi` instead of FrEIA's
    rounded ``0.636``. The learned matrix is read through :attr:`weights`; it is not a parameter itself, and
    it is always a rotation (:math:`\det R = +1`), where FrEIA's random start may be a reflection.
    The bias and scaling start at zero (FrEIA: small random values).

    Speed: a training step (forward + backward, batch 64, 16 features, one CPU thread) takes about 430 µs
    against FrEIA's 250 µs (1.7x). The difference is the exact exponential and its gradient, computed on
    every call (the rest matches FrEIA's cost); FrEIA's plain matrix is cheaper only because it is not
    kept orthogonal between corrections, which would make the log-det inexact.

    Args:
        dims_in: one vector shape, e.g. ``[(8,)]``.
        dims_c: must be empty; the block is unconditional.
        correction_interval: FrEIA's re-orthogonalisation interval; no effect here (see above).
        clamp: bound :math:`\alpha > 0` on the absolute log-scale of each feature.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = OrthogonalTransform([(4,)])
        >>> x = torch.randn(3, 4)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z.shape, torch.allclose(x, x_back, atol=1e-6), log_det.item()
        (torch.Size([3, 4]), True, 0.0)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        correction_interval: int = 256,
        clamp: float = 5.0,
    ):
        super().__init__(dims_in, dims_c)
        width = _vector_width(self, allow_conditions=False)
        if not isinstance(correction_interval, int) or isinstance(correction_interval, bool):
            raise TypeError(f"correction_interval must be an int, got {correction_interval!r}")
        if correction_interval < 1:
            raise ValueError(f"correction_interval must be >= 1, got {correction_interval}")
        self.correction_interval = correction_interval
        self.clamp = check_number(clamp, "clamp", "OrthogonalTransform")
        self.skew = nn.Parameter(torch.randn(width, width) / math.sqrt(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.scaling = nn.Parameter(torch.zeros(width))
        # 0-dim tensors multiply faster than Python floats, which are wrapped anew on every call.
        self.register_buffer("_inverse_clamp", torch.tensor(1 / self.clamp), persistent=False)
        self.register_buffer("_log_scale_factor", torch.tensor(self.clamp * 2 / math.pi), persistent=False)

    @property
    def weights(self) -> Tensor:
        """The current orthogonal matrix :math:`R = \\exp(A - A^\\top)`."""
        return _SkewExp.apply(self.skew - self.skew.T)

    def _log_scale(self) -> Tensor:
        return torch.atan(self.scaling * self._inverse_clamp) * self._log_scale_factor

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x,) = x_or_z
        log_scale = self._log_scale()
        log_det = log_scale.sum()
        if rev:
            return ((x * torch.exp(-log_scale) - self.bias) @ self.weights.T,), -log_det
        return (torch.addmm(self.bias, x, self.weights) * torch.exp(log_scale),), log_det

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return list(input_dims)


def _reflect_all(x: Tensor, vectors: Tensor, rev: bool) -> Tensor:
    """Apply the reflections ``I - 2 v v^T / |v|^2`` for each ``v`` in ``vectors`` (shape ``(..., n, d)``).

    Forward applies them first to last, which is ``x @ H_1 @ ... @ H_n`` for row vectors; reverse applies
    them last to first, the transpose and hence the inverse.
    """
    order = range(vectors.shape[-2] - 1, -1, -1) if rev else range(vectors.shape[-2])
    for index in order:
        v = vectors[..., index, :]
        x = x - v * (2 * (x * v).sum(-1, keepdim=True) / (v * v).sum(-1, keepdim=True))
    return x


def _drop_householder_matrix(entries: Entries) -> Entries:
    entries.pop("W", None)
    entries.pop("weight", None)
    return entries


class HouseholderPerm(InvertibleModule):
    r"""An orthogonal map built as a product of Householder reflections, learned, fixed or conditional.

    .. math::

        z = x H_1 H_2 \cdots H_n, \qquad H_j = I - 2 \frac{v_j v_j^\top}{\|v_j\|^2},
        \qquad \log|\det J| = 0,

    for row vectors :math:`x` (Tomczak & Welling 2016, "Improving variational auto-encoders using Householder
    flow"; Mathiasen et al. 2020, "Faster orthogonal parameterization with Householder matrices"). Each reflection is
    applied directly, at :math:`O(n d)` per sample, never forming the matrix. The reflection vectors
    :math:`v_j` are

    * learned parameters ``Vs`` of shape ``(n_reflections, d)``, initialised near the first unit vectors
      (unconditional, ``fixed=False``);
    * random and frozen, a buffer ``Vs`` (``fixed=True``);
    * read from the single condition, whose ``d * n_reflections`` entries are reshaped to
      ``(d, n_reflections)``, one vector per column (conditional; there are no parameters then).

    Reflection vectors must be non-zero.

    Differences from FrEIA: FrEIA requires ``n_reflections >= 2`` although its default is 1, so
    ``HouseholderPerm([(8,)])`` raises there; any ``n_reflections >= 1`` works here. FrEIA's conditional
    variant builds one matrix per sample and then calls ``mm`` on it, which fails; here each sample is
    reflected by its own vectors. With ``fixed=True`` FrEIA still registers the unused ``Vs`` as a trainable
    parameter; here the frozen vectors are a buffer and the block has no parameters. FrEIA's fixed block
    also saves the product matrix as ``W`` and ``weight``: they are saved here too (computed from ``Vs``) so
    FrEIA can load the state, and ignored when loading (in FrEIA they always equal the product of ``Vs``).

    Args:
        dims_in: one vector shape, e.g. ``[(8,)]``.
        dims_c: empty, or one condition with ``d * n_reflections`` entries holding the reflection vectors.
        n_reflections: number of reflections, ``>= 1``.
        fixed: draw the vectors at random once and never train them (unconditional only).

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> block = HouseholderPerm([(8,)])
        >>> x = torch.randn(2, 8)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> torch.allclose(z.norm(dim=1), x.norm(dim=1)), torch.allclose(x, x_back, atol=1e-6), log_det.item()
        (True, True, 0.0)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        n_reflections: int = 1,
        fixed: bool = False,
    ):
        super().__init__(dims_in, dims_c)
        self.width = _vector_width(self, allow_conditions=True)
        if not isinstance(n_reflections, int) or isinstance(n_reflections, bool):
            raise TypeError(f"n_reflections must be an int, got {n_reflections!r}")
        if n_reflections < 1:
            raise ValueError(f"n_reflections must be >= 1, got {n_reflections}")
        if not isinstance(fixed, bool):
            raise TypeError(f"fixed must be a bool, got {fixed!r}")
        self.n_reflections = n_reflections
        self.fixed = fixed
        self.conditional = bool(self.dims_c)
        if self.conditional:
            self._check_condition()
        elif fixed:
            self.register_buffer("Vs", torch.randn(n_reflections, self.width))
            # FrEIA also saves the product matrix, twice (W and weight): save it, ignore it when loading
            register_layout_conversion(self, load=_drop_householder_matrix, save=self._add_householder_matrix)
        else:
            near_unit_vectors = torch.eye(n_reflections, self.width) + 0.1 * torch.randn(n_reflections, self.width)
            self.Vs = nn.Parameter(near_unit_vectors)

    def _add_householder_matrix(self, entries: Entries) -> Entries:
        matrix = _reflect_all(torch.eye(self.width, dtype=self.Vs.dtype, device=self.Vs.device), self.Vs, False)
        entries.update(W=matrix, weight=matrix)
        return entries

    def _check_condition(self) -> None:
        if len(self.dims_c) != 1:
            raise ValueError(f"HouseholderPerm takes at most one condition, got dims_c={self.dims_c}")
        if self.fixed:
            raise ValueError("HouseholderPerm cannot be fixed and conditional at once: pass fixed=False")
        expected = self.width * self.n_reflections
        if math.prod(self.dims_c[0]) != expected:
            raise ValueError(
                f"HouseholderPerm condition must hold width * n_reflections = {self.width} * "
                f"{self.n_reflections} = {expected} entries, got shape {self.dims_c[0]}"
            )

    def _vectors(self, c: Sequence[Tensor] | None) -> Tensor:
        if self.conditional:
            return c[0].reshape(-1, self.width, self.n_reflections).transpose(-1, -2)
        return self.Vs

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x,) = x_or_z
        return (_reflect_all(x, self._vectors(c), rev),), x.new_zeros(())

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return list(input_dims)
