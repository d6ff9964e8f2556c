"""FrEIA's deprecated names for Split and Concat: thin subclasses that warn when built."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence

from .topology import Concat, Split

__all__ = ["Split1D", "SplitChannel", "Concat1d", "ConcatChannel"]


def _warn_deprecated(old_name: str, new_name: str) -> None:
    warnings.warn(f"{old_name} is deprecated; use {new_name}, which takes the same arguments",
                  DeprecationWarning, stacklevel=3)


class Split1D(Split):
    r"""Deprecated name of :class:`Split`; warns with DeprecationWarning when built.

    .. math:: (z_1, \dots, z_k) = \text{sections of } x \text{ along } dim, \qquad \log|\det J| = 0

    From FrEIA (Ardizzone et al., 2018), where it is a deprecated alias of ``Split``.

    Takes the arguments of :class:`Split` (``dims_in``, ``dims_c``, ``section_sizes``, ``n_sections``, ``dim``).

    Args:
        split_size_or_sections: the old name of ``section_sizes``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     split = Split1D([(6,)], split_size_or_sections=[2, 4])
        >>> caught[0].category.__name__, split.output_dims(split.dims_in)
        ('DeprecationWarning', [(2,), (4,)])
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        section_sizes: int | Sequence[int] | None = None,
        n_sections: int = 2,
        dim: int = 0,
        split_size_or_sections: int | Sequence[int] | None = None,
    ):
        _warn_deprecated(type(self).__name__, "Split")
        if split_size_or_sections is not None:
            if section_sizes is not None:
                raise ValueError(f"{type(self).__name__} got both section_sizes={section_sizes!r} and its "
                                 f"old name split_size_or_sections={split_size_or_sections!r}; pass one")
            section_sizes = split_size_or_sections
        super().__init__(dims_in, dims_c, section_sizes=section_sizes, n_sections=n_sections, dim=dim)


class SplitChannel(Split1D):
    r"""Deprecated name of :class:`Split` (by default into two halves along the channels); warns when built.

    .. math:: (z_1, z_2) = (x_{[0, \lceil C/2 \rceil)}, x_{[\lceil C/2 \rceil, C)}), \qquad \log|\det J| = 0

    From FrEIA (Ardizzone et al., 2018), where it is a deprecated alias of ``Split``.

    Takes the arguments of :class:`Split1D` (``dims_in``, ``dims_c``, ``section_sizes``, ``n_sections``, ``dim``,
    ``split_size_or_sections``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     split = SplitChannel([(4, 2, 2)])
        >>> caught[0].category.__name__, split.output_dims(split.dims_in)
        ('DeprecationWarning', [(2, 2, 2), (2, 2, 2)])
    """


class Concat1d(Concat):
    r"""Deprecated name of :class:`Concat`; warns with DeprecationWarning when built.

    .. math:: z = (x_1, \dots, x_k) \text{ joined along } dim, \qquad \log|\det J| = 0

    From FrEIA (Ardizzone et al., 2018), where it is a deprecated alias of ``Concat``.

    Takes the arguments of :class:`Concat` (``dims_in``, ``dims_c``, ``dim``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     concat = Concat1d([(2,), (4,)])
        >>> caught[0].category.__name__, concat.output_dims(concat.dims_in)
        ('DeprecationWarning', [(6,)])
    """

    def __init__(
        self,
        dims_in: Iterable[Iterable[int]],
        dims_c: Iterable[Iterable[int]] | None = None,
        dim: int = 0,
    ):
        _warn_deprecated(type(self).__name__, "Concat")
        super().__init__(dims_in, dims_c, dim=dim)


class ConcatChannel(Concat1d):
    r"""Deprecated name of :class:`Concat` (by default along the channels); warns when built.

    .. math:: z = (x_1, \dots, x_k) \text{ joined along the channels}, \qquad \log|\det J| = 0

    From FrEIA (Ardizzone et al., 2018), where it is a deprecated alias of ``Concat``.

    Takes the arguments of :class:`Concat` (``dims_in``, ``dims_c``, ``dim``).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     concat = ConcatChannel([(1, 2, 2), (3, 2, 2)])
        >>> caught[0].category.__name__, concat.output_dims(concat.dims_in)
        ('DeprecationWarning', [(4, 2, 2)])
    """
