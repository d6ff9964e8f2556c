r"""AllInOneBlock: affine coupling, global affine transformation (ActNorm-like) and permutation in one."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._coupling_tools import (
    append_condition,
    build_subnet,
    check_condition_dims,
    check_number,
    scale_and_shift,
    single_input,
)
from ._state_dict_compat import Entries, index_from_permutation_matrix, matrix_or_index, register_layout_conversion
from .base import InvertibleModule, Shape, normalize_shapes

__all__ = ["AllInOneBlock"]

_CHANNEL_MAPS: dict[int, Callable[[Tensor, Tensor], Tensor]] = {
    0: F.linear,
    1: F.conv1d,
    2: F.conv2d,
    3: F.conv3d,
}

# The subnet's output is multiplied by this before use, as in FrEIA, so the same weights give the
# same block.
_COEFFICIENT_SCALE = 0.1


def _softplus_scale(a: Tensor) -> Tensor:
    return 0.1 * F.softplus(a, beta=0.5)


def _sigmoid_scale(a: Tensor) -> Tensor:
    return 10.0 * torch.sigmoid(a - 2.0)


def _softplus_scale_inverse(scale: float) -> float:
    # 2 log(exp(5 s) - 1), written to stay finite for large s.
    return 10.0 * scale + 2.0 * math.log(-math.expm1(-5.0 * scale))


def _sigmoid_scale_inverse(scale: float) -> float:
    if scale >= 10.0:
        raise ValueError(f"global_affine_init must be in (0, 10) for global_affine_type='SIGMOID', got {scale}")
    return 2.0 - math.log(10.0 / scale - 1.0)


# type -> (activation giving the scale, inverse of the activation for the initial value)
_GLOBAL_AFFINE_TYPES: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[float], float]]] = {
    "SOFTPLUS": (_softplus_scale, _softplus_scale_inverse),
    "SIGMOID": (_sigmoid_scale, _sigmoid_scale_inverse),
    "EXP": (torch.exp, math.log),
}


def _check_reflection_count(count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(
            f"AllInOneBlock: learned_householder_permutation must be an int (the number of reflections), "
            f"got {type(count).__name__} {count!r}"
        )
    if count < 0:
        raise ValueError(f"AllInOneBlock: learned_householder_permutation must be >= 0, got {count}")


def _random_rotation(channels: int) -> Tensor:
    """A random rotation, uniform (Haar) on SO(channels), from the QR decomposition of a Gaussian."""
    q, r = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _select_channels(x: Tensor, index: Tensor) -> Tensor:
    """``x[:, index]``: a hard permutation, FrEIA HEAD's form, cheaper than multiplying by its matrix."""
    return x.index_select(1, index)


def _random_permutation_matrix(channels: int) -> Tensor:
    return torch.eye(channels, dtype=torch.float64)[torch.randperm(channels)]


class AllInOneBlock(InvertibleModule):
    r"""Affine coupling, global affine transformation and permutation in one block (FrEIA's
    AllInOneBlock, Ardizzone et al., https://github.com/vislearn/FrEIA).

    The input is split along the channels into :math:`x_1` (the larger half) and :math:`x_2`; with
    :math:`[a_s, a_t] = 0.1\,\mathrm{subnet}(x_1, c)` the block computes

    .. math::

        u = [x_1,\; x_2 \odot e^{\alpha \tanh(a_s)} + a_t], \qquad
        y = V R\,\big(\Psi(g) \odot u + o\big),

    where :math:`\alpha` is ``affine_clamping``, :math:`\Psi(g)` a learned per-channel scale and
    :math:`o` a learned per-channel offset (like ActNorm), :math:`R` a fixed random permutation (hard)
    or rotation (soft), and :math:`V` an optional product of learned Householder reflections. The
    log-det is :math:`\sum \alpha\tanh(a_s) + n_\mathrm{pixels} \sum_\mathrm{channels} \log\Psi(g)`.
    With ``reverse_permutation`` the input is first multiplied by :math:`(VR)^{-1}`. With ``gin_block``
    the clamped log-scale has its mean subtracted and :math:`\Psi = 1`: the block preserves volume
    (log-det exactly 0), as in GIN (Sorrenson et al., 2020).

    Args:
        dims_in: one input shape with at least 2 channels: ``(D,)``, ``(C, L)``, ``(C, H, W)`` or
            ``(C, D, H, W)``.
        dims_c: condition shapes; all dims but the first must equal the input's.
        subnet_constructor: ``f(c_in, c_out) -> nn.Module``, predicting :math:`[a_s, a_t]`.
        affine_clamping: :math:`\alpha`, the largest absolute log-scale of the coupling.
        gin_block: make the coupling volume preserving and drop the global scale.
        global_affine_init: initial value of the global scale :math:`\Psi(g)`.
        global_affine_type: activation :math:`\Psi`: ``"SOFTPLUS"`` (:math:`0.1\,\mathrm{softplus}_{\beta=0.5}`),
            ``"SIGMOID"`` (:math:`10\,\mathrm{sigmoid}(g - 2)`) or ``"EXP"``.
        permute_soft: draw :math:`R` uniformly from the rotations SO(C) instead of the permutations.
        learned_householder_permutation: number of learned Householder reflections in :math:`V`
            (0: none).
        reverse_permutation: also apply :math:`(VR)^{-1}` before the coupling (Putzky & Welling, 2019).
        freia_head_clamp: clamp the coupling's log-scale as FrEIA HEAD does (since 2023),
            :math:`\alpha \tanh(a_s / \alpha)`, instead of :math:`\alpha \tanh(a_s)` as FrEIA 0.2 (the
            release on PyPI, used e.g. by anomalib). Default False; set it to reproduce blocks trained with
            FrEIA HEAD (their outputs differ by up to ~6e-2 otherwise).
        subnet_init_scale: factor applied to the subnet's last layer after construction (see
            :mod:`freia_graph.modules.coupling`). The default 1 keeps it as built: the fixed factor 0.1 on
            the subnet's output already keeps deep chains tame (32 blocks with a 512-wide subnet give
            ``|z| < 10``).

    Differences from FrEIA:
        * Learned Householder reflections (with a hard or a soft permutation) keep no state between
          calls: :math:`V R` is computed once per call and :math:`(VR)^{-1} = (VR)^T`. FrEIA stores the
          matrix on the module with its autograd graph attached, so a block that has run holds on to
          that graph and cannot be deep-copied.
        * ``w_perm``, ``w_perm_inv``, ``w_0`` are buffers, not parameters (same state-dict keys); random
          draws use torch's generator (``torch.manual_seed``), soft permutations come from a QR
          decomposition instead of scipy. A hard permutation without reflections is stored as FrEIA HEAD
          stores it, as index vectors ``w_perm``, ``w_perm_inv`` of shape ``(C,)``, and applied by indexing;
          FrEIA 0.2's permutation matrices (and earlier freia_graph's) are converted when loading.
        * Every condition's shape is checked, not only the first; with ``gin_block`` there is no
          unused ``global_scale`` parameter (its initial value is still saved, and ignored when loading,
          so checkpoints move both ways), and the log-det is exactly 0.
        * ``subnet_init_scale`` (not in FrEIA) can scale the subnet's last layer after construction.

    Example:
        >>> torch.manual_seed(0)
        <torch._C.Generator object at ...>
        >>> subnet = lambda i, o: nn.Sequential(nn.Linear(i, 16), nn.ReLU(), nn.Linear(16, o))
        >>> block = AllInOneBlock([(6,)], subnet_constructor=subnet, learned_householder_permutation=2)
        >>> x = torch.randn(4, 6)
        >>> (z,), log_det = block([x])
        >>> (x_back,), _ = block([z], rev=True)
        >>> z.shape, log_det.shape, torch.allclose(x_back, x, atol=1e-5)
        (torch.Size([4, 6]), torch.Size([4]), True)
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        subnet_constructor: Callable[[int, int], nn.Module] | None = None,
        affine_clamping: float = 2.0,
        gin_block: bool = False,
        global_affine_init: float = 1.0,
        global_affine_type: str = "SOFTPLUS",
        permute_soft: bool = False,
        learned_householder_permutation: int = 0,
        reverse_permutation: bool = False,
        subnet_init_scale: float = 1.0,
        freia_head_clamp: bool = False,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input(self.dims_in, "AllInOneBlock")
        check_condition_dims(shape, self.dims_c, "AllInOneBlock")
        channels, self.input_rank = shape[0], len(shape) - 1
        if channels < 2:
            raise ValueError(f"AllInOneBlock needs at least 2 channels to split, got dims_in {self.dims_in}")
        if self.input_rank not in _CHANNEL_MAPS:
            raise ValueError(f"AllInOneBlock supports inputs with 1 to 4 dims, got dims_in {self.dims_in}")
        _check_reflection_count(learned_householder_permutation)
        self.in_channels = channels
        self.splits = [channels - channels // 2, channels // 2]
        self.sum_dims = tuple(range(1, 2 + self.input_rank))
        self.conditional = bool(self.dims_c)
        self.condition_channels = sum(dims[0] for dims in self.dims_c)
        self.clamp = check_number(affine_clamping, "affine_clamping", "AllInOneBlock")
        # 0-dim tensors multiply faster than Python floats, which are wrapped anew on every call
        self.register_buffer("_clamp_factor", torch.tensor(self.clamp), persistent=False)
        self.register_buffer("_negative_clamp_factor", torch.tensor(-self.clamp), persistent=False)
        self.register_buffer("_coefficient_scale", torch.tensor(_COEFFICIENT_SCALE), persistent=False)
        if not isinstance(freia_head_clamp, bool):
            raise TypeError(f"AllInOneBlock: freia_head_clamp must be a bool, got {freia_head_clamp!r}")
        self.freia_head_clamp = freia_head_clamp
        self.register_buffer("_inverse_clamp", torch.tensor(1 / self.clamp), persistent=False)
        self.GIN = bool(gin_block)
        self.reverse_pre_permute = bool(reverse_permutation)
        self.householder = learned_householder_permutation
        self._pixels = math.prod(shape[1:])
        self._channel_map = _CHANNEL_MAPS[self.input_rank]
        self._init_global_affine(global_affine_type, global_affine_init)
        self._init_permutation(permute_soft)
        self.subnet = build_subnet(
            subnet_constructor,
            self.splits[0] + self.condition_channels,
            2 * self.splits[1],
            subnet_init_scale,
            "AllInOneBlock",
        )

    def _init_global_affine(self, global_affine_type: str, global_affine_init: float) -> None:
        if global_affine_type not in _GLOBAL_AFFINE_TYPES:
            raise ValueError(
                f"global_affine_type must be one of {sorted(_GLOBAL_AFFINE_TYPES)}, got {global_affine_type!r}"
            )
        self.global_affine_type = global_affine_type
        self.global_scale_activation, inverse = _GLOBAL_AFFINE_TYPES[global_affine_type]
        per_channel = (1, self.in_channels) + (1,) * self.input_rank
        global_affine_init = check_number(global_affine_init, "global_affine_init", "AllInOneBlock")
        if not self.GIN:
            self.global_scale = nn.Parameter(torch.full(per_channel, inverse(global_affine_init)))
        else:
            # FrEIA keeps an unused global_scale in GIN mode: save a value of that shape so FrEIA can load ours
            self._unused_global_scale = torch.zeros(per_channel)
        self.global_offset = nn.Parameter(torch.zeros(per_channel))

    def _init_permutation(self, permute_soft: bool) -> None:
        self.permute_soft = bool(permute_soft)
        w = _random_rotation(self.in_channels) if permute_soft else _random_permutation_matrix(self.in_channels)
        dtype = torch.get_default_dtype()
        if self.householder:
            self.vk_householder = nn.Parameter(0.2 * torch.randn(self.householder, self.in_channels))
            self.register_buffer("w_0", w.to(dtype))
        elif permute_soft:
            kernel = (self.in_channels, self.in_channels) + (1,) * self.input_rank
            self.register_buffer("w_perm", w.reshape(kernel).to(dtype))
            self.register_buffer("w_perm_inv", w.T.reshape(kernel).to(dtype))
        else:
            index = index_from_permutation_matrix(w)
            self.register_buffer("w_perm", index)
            self.register_buffer("w_perm_inv", torch.argsort(index))
            self._channel_map = _select_channels
        register_layout_conversion(self, load=self._convert_layout, save=self._add_unused_global_scale)

    def _apply(self, fn: Callable, recurse: bool = True) -> AllInOneBlock:
        # A rotation rounded to float32 at construction is orthogonal only to ~1e-7. Once the block holds
        # float64 (e.g. after .double()), restore exact orthogonality so that the transpose is the exact
        # inverse and the rotation's log-det exactly 0.
        super()._apply(fn, recurse)
        if self.permute_soft:
            self._orthogonalize_rotation()
        return self

    def _orthogonalize_rotation(self) -> None:
        w = self.w_0 if self.householder else self.w_perm
        if w.dtype != torch.float64:
            return
        u, _, vh = torch.linalg.svd(w.reshape(self.in_channels, self.in_channels))
        rotation = u @ vh
        with torch.no_grad():
            w.copy_(rotation.reshape(w.shape))
            if not self.householder:
                self.w_perm_inv.copy_(rotation.T.reshape(w.shape))

    def _add_unused_global_scale(self, entries: Entries) -> Entries:
        if self.GIN:
            entries["global_scale"] = self._unused_global_scale.to(self.global_offset)
        return entries

    def _convert_layout(self, entries: Entries) -> Entries:
        if self.GIN:
            # FrEIA keeps an unused global_scale in GIN mode: accept its checkpoints
            entries.pop("global_scale", None)
        for name in ("w_perm", "w_perm_inv"):
            if name in entries and hasattr(self, name):
                entries[name] = matrix_or_index(entries[name], getattr(self, name))
        return entries

    def _permutation(self) -> tuple[Tensor, Tensor]:
        """The channel map :math:`VR` and its inverse, as kernels for ``self._channel_map``."""
        if not self.householder:
            return self.w_perm, self.w_perm_inv
        w = self.w_0
        for v in self.vk_householder:
            # w @ (I - 2 v v^T / |v|^2) without building the reflection matrix
            w = w - torch.outer(w @ v, v * (2.0 / torch.dot(v, v)))
        kernel = w.shape + (1,) * self.input_rank
        return w.reshape(kernel), w.T.reshape(kernel)

    def _coupling(self, x: Tensor, c: Sequence[Tensor] | None, rev: bool, jac: bool) -> tuple[Tensor, Tensor | None]:
        x1, x2 = x.split(self.splits, 1)
        u = append_condition(x1, c, "AllInOneBlock") if self.conditional else x1
        raw_scale, shift = (self.subnet(u) * self._coefficient_scale).chunk(2, 1)
        if self.freia_head_clamp:
            raw_scale = raw_scale * self._inverse_clamp
        log_scale = torch.tanh(raw_scale) * (self._negative_clamp_factor if rev else self._clamp_factor)
        if self.GIN:
            log_scale = log_scale - log_scale.mean(self.sum_dims, keepdim=True)
        y2 = scale_and_shift(x2, log_scale, shift, rev)
        log_det = log_scale.sum(self.sum_dims) if jac and not self.GIN else None
        return torch.cat((x1, y2), 1), log_det

    def forward(
        self,
        x_or_z: Sequence[Tensor],
        c: Sequence[Tensor] | None = None,
        rev: bool = False,
        jac: bool = True,
    ) -> tuple[tuple[Tensor], Tensor | None]:
        w, w_inv = self._permutation()
        scale = None if self.GIN else self.global_scale_activation(self.global_scale)
        if rev:
            y, log_det = self._coupling(self._undo_global_affine(x_or_z[0], w_inv, scale), c, rev, jac)
            if self.reverse_pre_permute:
                y = self._channel_map(y, w)
        else:
            x = self._channel_map(x_or_z[0], w_inv) if self.reverse_pre_permute else x_or_z[0]
            y, log_det = self._coupling(x, c, rev, jac)
            y = self._global_affine(y, w, scale)
        if not jac:
            return (y,), None
        if self.GIN:
            return (y,), y.new_zeros(())
        global_log_det = self._global_log_det(scale)
        return (y,), (log_det - global_log_det if rev else log_det + global_log_det)

    def _global_affine(self, u: Tensor, w: Tensor, scale: Tensor | None) -> Tensor:
        if scale is None:
            return self._channel_map(u + self.global_offset, w)
        return self._channel_map(torch.addcmul(self.global_offset, u, scale), w)

    def _undo_global_affine(self, y: Tensor, w_inv: Tensor, scale: Tensor | None) -> Tensor:
        u = self._channel_map(y, w_inv) - self.global_offset
        return u if scale is None else u / scale

    def _global_log_det(self, scale: Tensor) -> Tensor:
        # log(exp(g)) is g itself: skip the round trip
        log_scale = self.global_scale if self.global_affine_type == "EXP" else torch.log(scale)
        log_scale_sum = log_scale.sum()
        return log_scale_sum * self._pixels if self._pixels != 1 else log_scale_sum

    def output_dims(self, input_dims: list[Shape]) -> list[Shape]:
        """The output has the input's shape."""
        return [single_input(normalize_shapes(input_dims), "AllInOneBlock")]

