"""Graph topology: split one tensor into several, concatenate several into one."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from ._coupling_tools import BackpropFn, FastBackward, fast_backward_fits
from .base import InvertibleModule, Shape, _is_int, normalize_shapes
from .permutations import single_input_shape

__all__ = ["Split", "Concat"]


def one_input_shape(input_dims: Sequence[Iterable[int]], owner: str) -> Shape:
    """The single shape in ``input_dims`` (an ``output_dims`` argument); ValueError if there are more."""
    shapes = normalize_shapes(input_dims, "input_dims")
    if len(shapes) != 1:
        raise ValueError(f"{owner} takes exactly one input, got input_dims={shapes}")
    return shapes[0]


def _check_dim(dim: object, shape: Shape, owner: str) -> int:
    """``dim`` (0 = first non-batch dimension, negative counts from the end) as a non-negative index."""
    if not _is_int(dim):
        raise TypeError(f"{owner}: dim must be an int, got {dim!r}")
    if not -len(shape) <= dim < len(shape):
        raise ValueError(
            f"{owner}: dim={dim} is out of range for input shape {shape} "
            f"(expected {-len(shape)} <= dim < {len(shape)}, not counting the batch dimension)"
        )
    return dim % len(shape)


def _sections_from_count(n_sections: object, length: int) -> list[int]:
    """``n_sections`` parts that differ in size by at most one, larger ones first (numpy.array_split)."""
    if not _is_int(n_sections):
        raise TypeError(f"Split: n_sections must be an int, got {n_sections!r}")
    if not 1 <= n_sections <= length:
        raise ValueError(f"Split: n_sections must be between 1 and the split dimension's size {length}, "
                         f"got {n_sections}")
    base, extra = divmod(length, n_sections)
    return [base + 1] * extra + [base] * (n_sections - extra)


def _sections_from_sizes(section_sizes: object, length: int) -> list[int]:
    """Explicit section sizes: an int size per section (the last takes the rest), or a list of sizes."""
    if _is_int(section_sizes):
        if not 1 <= section_sizes <= length:
            raise ValueError(f"Split: an int section_sizes must be between 1 and the split dimension's "
                             f"size {length}, got {section_sizes}")
        full, rest = divmod(length, section_sizes)
        return [section_sizes] * full + ([rest] if rest else [])
    if isinstance(section_sizes, (str, bytes)) or not isinstance(section_sizes, Iterable):
        raise TypeError(f"Split: section_sizes must be an int or a list of ints, got {section_sizes!r}")
    sizes = list(section_sizes)
    if not sizes or not all(_is_int(size) and size > 0 for size in sizes):
        raise ValueError(f"Split: section_sizes must be positive ints, got {section_sizes!r}")
    total = sum(sizes)
    if total > length:
        raise ValueError(f"Split: section_sizes {sizes} add up to {total}, more than the split "
                         f"dimension's size {length}")
    if total < length:
        warnings.warn(f"Split: section_sizes {sizes} add up to {total} < {length}; adding a section of "
                      f"size {length - total} for the rest", stacklevel=3)
        sizes.append(length - total)
    return sizes


def _replace(shape: Shape, dim: int, size: int) -> Shape:
    return shape[:dim] + (size,) + shape[dim + 1:]


def _split_shapes(shape: Shape, dim: int, sizes: Sequence[int], owner: str) -> list[Shape]:
    """The shapes of the pieces of ``shape`` cut along ``dim`` into ``sizes``."""
    if len(shape) <= dim or shape[dim] != sum(sizes):
        raise ValueError(f"{owner}: cannot cut input shape {shape} along dim {dim} into sections "
                         f"{list(sizes)}, which need size {sum(sizes)} there")
    return [_replace(shape, dim, size) for size in sizes]


def _concat_shape(shapes: Sequence[Shape], dim: int, owner: str) -> Shape:
    """The shape of ``shapes`` joined along ``dim``; all other dimensions must agree."""
    first = shapes[0]
    for index, shape in enumerate(shapes):
        if len(shape) != len(first) or _replace(shape, dim, 0) != _replace(first, dim, 0):
            raise ValueError(
                f"{owner}: input {index} has shape {shape}, input 0 has {first}; every dimension but "
                f"dim {dim} must agree to concatenate"
            )
    return _replace(first, dim, sum(shape[dim] for shape in shapes))


class _Sections:
    """What Split and Concat share: ``section_sizes`` along ``dim``, cut apart in one direction and joined in
    the other (``cuts_forward``: whether the forward pass cuts)."""

    cuts_forward: bool
    section_sizes: list[int]
    dim: int

    def _cut(self, x: Tensor) -> tuple[Tensor, ...]:
        return x.split_with_sizes(self.section_sizes, dim=self.dim + 1)

    def _join(self, pieces: Sequence[Tensor]) -> Tensor:
        return torch.cat(pieces, dim=self.dim + 1)

    def memory_saving_backward(
        self,
        outputs: Sequence[Tensor],
        c: Sequence[Tensor] | None,
        rev: bool,
        output_grads: Sequence[Tensor | None],
        log_det_grad: Tensor | None,
        backprop: BackpropFn,
    ) -> FastBackward | None:
        """Memory-saving backprop's fast path: the pieces and their gradients are joined again (a joined
        tensor and its gradient cut again), with no recomputation. See
        ``GLOWCouplingBlock.memory_saving_backward`` for the protocol; None (the generic path) for a subclass
        that changes ``forward``.

        Example:
            >>> split = Split([(3,)], section_sizes=[1, 2])
            >>> (x,), (grad_x,), _ = split.memory_saving_backward(
            ...     [torch.zeros(1, 1), torch.ones(1, 2)], None, False, [None, torch.ones(1, 2)], None, None)
            >>> x.tolist(), grad_x.tolist()
            ([[0.0, 1.0, 1.0]], [[0.0, 1.0, 1.0]])
        """
        if not fast_backward_fits(self, ("forward", "memory_saving_backward", "_cut", "_join")):
            return None
        if self.cuts_forward == rev:  # the step joined: cut the joined tensor and its gradient again
            grad = output_grads[0]
            grads = [None] * len(self.section_sizes) if grad is None else list(self._cut(grad))
            return list(self._cut(outputs[0])), grads, []
        if all(grad is None for grad in output_grads):
            return [self._join(outputs)], [None], []
        grads = [torch.zeros_like(piece) if grad is None else grad for piece, grad in zip(outputs, output_grads)]
        return [self._join(outputs)], [self._join(grads)], []


class Split(_Sections, InvertibleModule):
    r"""Cut one tensor into several along a dimension; the inverse concatenates them again.

    .. math:: (z_1, \dots, z_k) = (x_{[0, s_1)}, x_{[s_1, s_1 + s_2)}, \dots), \qquad \log|\det J| = 0

    A topology operation from FrEIA (Ardizzone et al., 2018, "Analyzing Inverse Problems with
    Invertible Neural Networks").

    Args:
        dims_in: one input shape, without batch.
        dims_c: unused; must be empty.
        section_sizes: takes precedence over ``n_sections``. An int ``s`` cuts sections of size ``s``
            with the remainder as a last, smaller section (like :func:`torch.split`); a list gives each
            section's size, and if it sums to less than the dimension a last section takes the rest.
        n_sections: used when ``section_sizes`` is None: that many parts of equal size, or sizes
            differing by one with the larger first (like ``numpy.array_split``).
        dim: dimension to cut, not counting batch (0 = channels for images).

    Differences from FrEIA: the slack section for a short ``section_sizes`` list works (FrEIA's
    ``list.append`` returns None and breaks it); bad arguments raise ValueError/TypeError instead of
    asserting; one-section splits are allowed; no warning for unequal ``n_sections`` parts.

    Example:
        >>> split = Split([(3, 4, 4)], section_sizes=[1, 2])
        >>> split.output_dims(split.dims_in)
        [(1, 4, 4), (2, 4, 4)]
        >>> (a, b), log_det = split([torch.randn(5, 3, 4, 4)])
        >>> a.shape, b.shape, log_det
        (torch.Size([5, 1, 4, 4]), torch.Size([5, 2, 4, 4]), 0.0)
    """

    _memory_saving_vetted = True
    cuts_forward = True

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        section_sizes: int | Sequence[int] | None = None,
        n_sections: int = 2,
        dim: int = 0,
    ):
        super().__init__(dims_in, dims_c)
        shape = single_input_shape(self)
        self.dim = _check_dim(dim, shape, "Split")
        length = shape[self.dim]
        if section_sizes is None:
            self.section_sizes = _sections_from_count(n_sections, length)
        else:
            self.section_sizes = _sections_from_sizes(section_sizes, length)

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor, ...], float]:
        if rev:
            return (self._join(x_or_z),), 0.0
        return self._cut(x_or_z[0]), 0.0

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        shape = one_input_shape(input_dims, "Split")
        return _split_shapes(shape, self.dim, self.section_sizes, "Split")


class Concat(_Sections, InvertibleModule):
    r"""Join several tensors into one along a dimension; the inverse cuts them apart again.

    .. math:: z = (x_1, \dots, x_k) \text{ stacked along } dim, \qquad \log|\det J| = 0

    A topology operation from FrEIA (Ardizzone et al., 2018, "Analyzing Inverse Problems with
    Invertible Neural Networks").

    Args:
        dims_in: the input shapes, without batch; they must agree in every dimension but ``dim``.
        dims_c: unused; must be empty.
        dim: dimension to join along, not counting batch (0 = channels for images).

    Differences from FrEIA: shape mismatches raise ValueError naming the shapes instead of asserting;
    a single input is allowed.

    Example:
        >>> concat = Concat([(1, 4, 4), (2, 4, 4)])
        >>> concat.output_dims(concat.dims_in)
        [(3, 4, 4)]
        >>> (z,), log_det = concat([torch.zeros(5, 1, 4, 4), torch.ones(5, 2, 4, 4)])
        >>> z.shape, log_det
        (torch.Size([5, 3, 4, 4]), 0.0)
    """

    _memory_saving_vetted = True
    cuts_forward = False

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        dim: int = 0,
    ):
        super().__init__(dims_in, dims_c)
        if not self.dims_in:
            raise ValueError("Concat needs at least one input, got dims_in=[]")
        if self.dims_c:
            raise ValueError(f"Concat takes no conditions, but dims_c is {self.dims_c}; pass dims_c=None")
        self.dim = _check_dim(dim, self.dims_in[0], "Concat")
        _concat_shape(self.dims_in, self.dim, "Concat")
        self.section_sizes = [shape[self.dim] for shape in self.dims_in]

    def forward(
        self, x_or_z: Sequence[Tensor], c: Sequence[Tensor] | None = None, rev: bool = False, jac: bool = True
    ) -> tuple[tuple[Tensor, ...], float]:
        if rev:
            return self._cut(x_or_z[0]), 0.0
        return (self._join(x_or_z),), 0.0

    def output_dims(self, input_dims: Sequence[Iterable[int]]) -> list[Shape]:
        shapes = normalize_shapes(input_dims, "input_dims")
        sizes = [shape[self.dim] if len(shape) > self.dim else None for shape in shapes]
        if sizes != self.section_sizes:
            raise ValueError(f"Concat was built for sizes {self.section_sizes} along dim {self.dim}, "
                             f"got input_dims={shapes}")
        return [_concat_shape(shapes, self.dim, "Concat")]
