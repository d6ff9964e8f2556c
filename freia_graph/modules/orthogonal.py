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


# FrEIA rounds 2/pi in its clamp to this.
_FREIA_CLAMP_FACTOR = 0.636
_PARAMETRIZATIONS = ("exponential", "freia")


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
    rounded ``0.636``. The learned matrix is read through :attr:`weights`; by default it is not a parameter itself, and
    it is always a rotation (:math:`\det R = +1`), where FrEIA's random start may be a reflection.
    The bias and scaling start at zero (FrEIA: small random values).

    **FrEIA's maths** (``parametrization="freia"``): ``weights`` is then the free matrix parameter itself,
    as in FrEIA (0.2 and HEAD alike), re-orthonormalised in place by Gram-Schmidt after every
    ``correction_interval`` backward passes through it; the log-det ignores :math:`\log|\det R|` and the
    clamp uses FrEIA's ``0.636``. The state dict is then FrEIA's (``weights``, ``bias`` and ``scaling`` of
    shapes ``(D, D)``, ``(1, D)``, ``(1, D)``), and FrEIA-trained weights reproduce FrEIA's outputs exactly.

    **Checkpoints.** Either parametrisation loads the other's state dict and FrEIA's. Into the default one,
    FrEIA's matrix is projected onto the nearest orthogonal matrix (polar decomposition) and its logarithm
    taken, and the scaling is converted for the different clamp constant: the outputs equal FrEIA's wherever
    FrEIA's matrix is orthogonal (as it is right after each correction), and a reflection
    (:math:`\det = -1`), which the exponential cannot reach, raises a ValueError that names the option.

    Speed: a training step (forward + backward, batch 64, 16 features, one CPU thread) takes about 430 µs
    against FrEIA's 250 µs (1.7x). The difference is the exact exponential and its gradient, computed on
    every call (the rest matches FrEIA's cost); FrEIA's plain matrix is cheaper only because it is not
    kept orthogonal between corrections, which would make the log-det inexact.

    Args:
        dims_in: one vector shape, e.g. ``[(8,)]``.
        dims_c: must be empty; the block is unconditional.
        correction_interval: FrEIA's re-orthogonalisation interval; used only with ``parametrization="freia"``.
        clamp: bound :math:`\alpha > 0` on the absolute log-scale of each feature.
        parametrization: ``"exponential"`` (default: exactly orthogonal, exact log-det) or ``"freia"``
            (FrEIA's free matrix and maths, for FrEIA-trained weights).

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
        parametrization: str = "exponential",
    ):
        super().__init__(dims_in, dims_c)
        width = _vector_width(self, allow_conditions=False)
        if parametrization not in _PARAMETRIZATIONS:
            raise ValueError(f"OrthogonalTransform parametrization must be one of {_PARAMETRIZATIONS}, "
                             f"got {parametrization!r}")
        if not isinstance(correction_interval, int) or isinstance(correction_interval, bool):
            raise TypeError(f"correction_interval must be an int, got {correction_interval!r}")
        if correction_interval < 1:
            raise ValueError(f"correction_interval must be >= 1, got {correction_interval}")
        self.correction_interval = correction_interval
        self.clamp = check_number(clamp, "clamp", "OrthogonalTransform")
        self.parametrization = parametrization
        self.freia = parametrization == "freia"
        skew = torch.randn(width, width) / math.sqrt(width)
        vector_shape = (1, width) if self.freia else (width,)
        if self.freia:
            # Registered directly: the class attribute ``weights`` (the property below) would refuse it.
            self._parameters["weights"] = nn.Parameter(torch.linalg.matrix_exp(skew - skew.T))
            self._backward_passes = 0
        else:
            self.skew = nn.Parameter(skew)
        self.bias = nn.Parameter(torch.zeros(vector_shape))
        self.scaling = nn.Parameter(torch.zeros(vector_shape))
        # 0-dim tensors multiply faster than Python floats, which are wrapped anew on every call; in float64
        # so that a float64 block keeps the constants' precision (0-dim tensors do not promote float32 inputs).
        self.register_buffer("_inverse_clamp", torch.tensor(1 / self.clamp, dtype=torch.float64), persistent=False)
        factor = _FREIA_CLAMP_FACTOR if self.freia else 2 / math.pi
        log_scale_factor = torch.tensor(self.clamp * factor, dtype=torch.float64)
        self.register_buffer("_log_scale_factor", log_scale_factor, persistent=False)

    @property
    def weights(self) -> Tensor:
        """The matrix :math:`R = \\exp(A - A^\\top)` (with ``parametrization="freia"``: the free parameter)."""
        if self.freia:
            return self._parameters["weights"]
        return _SkewExp.apply(self.skew - self.skew.T)

    def _count_backward_pass(self) -> None:
        """FrEIA's schedule: re-orthonormalise the free matrix after every ``correction_interval`` training calls."""
        self._backward_passes += 1
        if self._backward_passes >= self.correction_interval:
            self._backward_passes = 0
            with torch.no_grad():
                self.weights.copy_(_gram_schmidt_rows(self.weights))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        _convert_orthogonal_layout(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _log_scale(self) -> Tensor:
        return torch.atan(self.scaling * self._inverse_clamp) * self._log_scale_factor

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor], Tensor]:
        (x,) = x_or_z
        if self.freia and self.training and torch.is_grad_enabled():
            self._count_backward_pass()
        log_scale = self._log_scale()
        log_det = log_scale.sum()
        if rev:
            return ((x * torch.exp(-log_scale) - self.bias) @ self.weights.T,), -log_det
        return (torch.addmm(self.bias, x, self.weights) * torch.exp(log_scale),), log_det

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        return list(input_dims)


def _gram_schmidt_rows(matrix: Tensor) -> Tensor:
    """The rows of ``matrix`` orthonormalised in order (Gram-Schmidt), through a QR decomposition.

    Example:
        >>> q = _gram_schmidt_rows(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))
        >>> torch.equal(q.abs(), torch.eye(2))
        True
    """
    q, r = torch.linalg.qr(matrix.T)
    return (q * torch.sign(torch.diagonal(r))).T


def _orthogonal_logarithm(matrix: Tensor, name: str) -> Tensor:
    """A real logarithm ``L`` (skew-symmetric) of the orthogonal matrix nearest to ``matrix`` (polar factor).

    Raises a ValueError naming ``name`` for a reflection (determinant -1), which has no real logarithm.

    Example:
        >>> rotation = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
        >>> _orthogonal_logarithm(rotation, "R").mul(2 / math.pi).round().tolist()
        [[0.0, 1.0], [-1.0, 0.0]]
    """
    u, _, vh = torch.linalg.svd(matrix.double())
    nearest = u @ vh
    if torch.linalg.det(nearest) < 0:
        raise ValueError(f"{name} is a reflection (determinant -1), which exp(A - A^T) cannot represent; "
                         "build OrthogonalTransform with parametrization='freia' to load it")
    values, vectors = torch.linalg.eig(nearest)
    logarithm = (vectors * values.log()) @ torch.linalg.inv(vectors)
    logarithm = (logarithm.real - logarithm.real.T) / 2
    if not torch.allclose(torch.linalg.matrix_exp(logarithm), nearest, atol=1e-8):
        raise ValueError(f"{name}: could not take the logarithm of this rotation (an angle of pi); build "
                         "OrthogonalTransform with parametrization='freia' to load it")
    return logarithm


def _rescale_clamped(scaling: Tensor, clamp: float, ratio: float) -> Tensor:
    """Scaling parameters whose clamped log-scale, with a clamp factor ``ratio`` times smaller, is unchanged."""
    angle = torch.atan(scaling.double() / clamp) * ratio
    return clamp * torch.tan(angle.clamp(-math.pi / 2 + 1e-12, math.pi / 2 - 1e-12))


def _convert_orthogonal_layout(block: OrthogonalTransform, state_dict: dict, prefix: str) -> None:
    """Rewrite ``block``'s entries in ``state_dict`` from any known layout to the block's own, in place.

    Layouts: FrEIA's (0.2 and HEAD: ``weights``, ``(1, D)`` vectors) and earlier freia_graph's (``skew``,
    ``(D,)`` vectors). The matrix and the scaling are converted between the parametrisations.
    """
    keys = {name: prefix + name for name in ("weights", "skew", "bias", "scaling")}
    has_matrix, has_skew = keys["weights"] in state_dict, keys["skew"] in state_dict
    ratio = (2 / math.pi) / _FREIA_CLAMP_FACTOR
    if block.freia and has_skew and not has_matrix:
        skew = state_dict.pop(keys["skew"])
        state_dict[keys["weights"]] = torch.linalg.matrix_exp(skew - skew.T)
        if keys["scaling"] in state_dict:
            state_dict[keys["scaling"]] = _rescale_clamped(state_dict[keys["scaling"]], block.clamp, ratio)
    elif not block.freia and has_matrix and not has_skew:
        matrix = state_dict.pop(keys["weights"])
        state_dict[keys["skew"]] = _orthogonal_logarithm(matrix, keys["weights"]).to(matrix.dtype) / 2
        if keys["scaling"] in state_dict:
            state_dict[keys["scaling"]] = _rescale_clamped(state_dict[keys["scaling"]], block.clamp, 1 / ratio)
    for name in ("bias", "scaling"):
        value, own = state_dict.get(keys[name]), getattr(block, name)
        if isinstance(value, Tensor) and value.numel() == own.numel():
            state_dict[keys[name]] = value.reshape(own.shape)


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
