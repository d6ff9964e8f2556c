"""Registry cases for the Gaussian mixture block (see tests/modules/registry.py).

The suite passes random tensors as conditions, so the cases use the two modes that need no component
index: the most probable component (``dims_in=[(D,)]``) and every component at once (``[(K, D)]``).
Explicit indices and seeds are tested in tests/modules/test_mixtures.py.
"""

from freia_graph.modules.mixtures import GaussianMixtureModel
from tests.modules.registry import BlockCase


def _conditions(components: int, features: int) -> list[tuple[int, ...]]:
    return [(components,), (components, features), (components, features * (features + 1) // 2)]


CASES: list[BlockCase] = [
    BlockCase(GaussianMixtureModel, [(3,)], _conditions(4, 3), name="argmax"),
    BlockCase(GaussianMixtureModel, [(2,)], _conditions(5, 2), name="argmax"),
    BlockCase(
        GaussianMixtureModel,
        [(4, 3)],
        _conditions(4, 3),
        name="all_components",
        check_kwargs={"skip": {"conditions_used": "with every component mapped, the weights w are not used"}},
    ),
]
