"""Invertible building blocks. Every block honours the :class:`InvertibleModule` contract."""

from . import (
    all_in_one,
    base,
    coupling,
    deprecated,
    elementwise,
    inverse,
    invertible_autoencoders,
    iresnet,
    mixtures,
    normalization,
    orthogonal,
    permutations,
    reshapes,
    splines,
    topology,
)
from .all_in_one import *  # noqa: F403
from .base import *  # noqa: F403
from .coupling import *  # noqa: F403
from .deprecated import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .inverse import *  # noqa: F403
from .invertible_autoencoders import *  # noqa: F403
from .iresnet import *  # noqa: F403
from .mixtures import *  # noqa: F403
from .normalization import *  # noqa: F403
from .orthogonal import *  # noqa: F403
from .permutations import *  # noqa: F403
from .reshapes import *  # noqa: F403
from .splines import *  # noqa: F403
from .splines.binned import BinnedSpline, BinnedSplineBase  # noqa: F401  (FrEIA.modules offers them, outside __all__)
from .topology import *  # noqa: F403

__all__ = [
    name
    for family in (
        base, coupling, all_in_one, splines, permutations, normalization, reshapes, topology,
        elementwise, orthogonal, iresnet, mixtures, invertible_autoencoders, inverse, deprecated,
    )
    for name in family.__all__
]
